"""Physical constants of the simulated world, calibrated on real plot and field data.

Sources: Slovak plot series, a real GRD cube and real grassland parcels (below, each
with its figures). First ``shared/data/slovak-grassland/train`` (123 Slovak grassland
plots, 2021-2023; S1 relative orbit 175 ascending; S2 with the authors' Cloud Score+
mask, ``mask == 1`` clear; ``-9999`` missing). Numbers measured with pandas over all files:

Sentinel-2, ``train/S2/ts_*_GMI_S2_*.csv`` (13,726 clear plot-acquisitions):

* grassland NDVI by month, median (10th-90th percentile): March 0.25 (-0.06-0.43),
  April 0.39 (0.08-0.63), May 0.73 (0.37-0.88), June 0.82 (0.66-0.89), July 0.73,
  August 0.74, September 0.77, October 0.70 (0.51-0.83), November 0.58.
* mowing (``train/mowing_events.gpkg``, type ``k``, 140 events, 91 % one cut per
  plot-year; months June 53, July 66, August 15, September 6): last clear NDVI within
  10 days before 0.83, lowest within 10 days after 0.52; drop median 0.26
  (quartiles 0.18-0.39); 3-5 weeks later 0.68 (regrowth of ~3-4 weeks).
* red / nir reflectance at NDVI 0.2-0.4: 0.135 / 0.265; 0.4-0.6: 0.091 / 0.283;
  0.6-0.75: 0.062 / 0.340; 0.75-0.9: 0.042 / 0.430 (the mixing endmembers below).
* plot-level temporal noise, consecutive clear acquisitions <= 5 days apart:
  std(diff)/sqrt(2) = 0.063, robust (MAD) 0.027 NDVI.
* clear share of plot-acquisitions per month, Apr-Oct: 0.59-0.73 (Slovakia; Lithuania
  is cloudier, see ``WorldSpec.cloudy_share``).

Sentinel-1, ``train/S1/ts_*_GMI_S1_*.csv`` (15,006 plot-acquisitions, ascending 175):

* VV median -11.35 dB (5th-95th percentile -16.3 to -6.5), VH -18.1 dB (-24.6 to -13.1).
* monthly medians: VV -11.9 (Jan-Mar) to -10.6 (Aug); VH -19.3 (Jan-Mar) to -16.9 (Aug):
  a seasonal amplitude of ~1.3 dB in VV and ~2.4 dB in VH.
* per plot-year Apr-Oct range (p95-p5): VV 6.2 dB, VH 7.8 dB (speckle dominated).
* spread of plot means across plots: 1.85 dB (VV and VH).
* VH-NDVI (S2 clear within 3 days, Apr-Oct, monthly plot means, n=2507): slope
  3.0 dB per NDVI unit (intercept -19.8 dB, r=0.22); within plot-year 2.5 dB/NDVI.
  VV-NDVI: 1.8 dB/NDVI pooled, 1.0 within plot-year.
* temporal noise, consecutive acquisitions <= 6 days apart: std(diff)/sqrt(2) = 2.07 dB
  (VV) and 2.61 dB (VH); robust 2.0 / 2.55 dB. The series are point samples, so this is
  single-pixel speckle: gamma speckle with ENL 4.4 gives 2.19 dB, ENL 5 gives 2.04 dB.
  VH is noisier than VV because of the residual thermal noise at low backscatter.
  The pooled regressions above mix plots and months; the within-series response of a
  grassland field is taken from field-level data instead (next section).

Sentinel-1 speckle, ``shared/data/cdse-cubes/gfmap_cdse_sentinel1_grd.nc`` (a real CDSE
GRD sigma0 cube, 64 x 66 px at 10 m, 10 dates in April 2023; measured with
:mod:`pipeline.simulate.measure`, ``benchmarks/demo_radar.py --real``):

* per-pixel ENL from the log ratios of the six 12-day same-orbit pairs (static texture
  cancels): VV 4.86, VH 3.13 (VH lowered by thermal noise); the nominal ENL of IW GRDH
  is 4.4, the simulator's ``WorldSpec.s1_enl``.
* speckle autocorrelation (each pixel's temporal mean dB removed) at lag 1 / 2 pixels:
  VV 0.80 / 0.50, VH 0.71 / 0.36: geocoded GRD speckle is far from white (GRD pixels
  are 10 m, its resolution about 20 x 22 m, and geocoding resamples it again).
* in the quarter of 8 x 8 blocks with the lowest NDVI spread: ENL (mean^2/var of linear
  power) VV 5.41, VH 3.75; dB std 1.91 / 2.47 (correlation makes a block hold fewer
  independent looks than pixels, so block ENL exceeds the per-pixel ENL).
* VH 0.1th percentile -35.4 dB (``VH_FLOOR_LINEAR``).

The simulator draws speckle as a Gaussian field with the Lorentzian amplitude
spectrum ``SPECKLE_CORNER`` (0.1 cycles per pixel, the corner that reproduces the lag
1 / 2 / 3 correlations 0.80 / 0.50 / 0.29 of the VV cube) mapped to a gamma(4.4)
marginal, and VH thermal noise half correlated, half white. Result on the default
world's fields (same estimators): per-pixel ENL VV 4.26, VH 3.24; lag 1 / 2 VV
0.81 / 0.55, VH 0.72 / 0.49; 8 x 8 block ENL VV 6.06, VH 5.47. The VH block figures
stay above the cube's: its low VH has more noise than the Slovak VH series allow.

Sentinel-1 at field level, grassland: ``shared/data/jrc-salms`` (ten real grassland
parcels of 0.8-2.1 ha, 2020; parcel statistics per date). Within-parcel r of the
parcel-median NDVI (S2 >= 90 % clear, within 5 days of the S1 date, April-October)
with the parcel-median backscatter in dB: VH -0.155, VV -0.232 (n = 259; the figures of
the data README), VH-VV +0.03; regression slopes -2.1 (VH) and -2.3 (VV) dB per NDVI;
within-parcel std 1.64 (VH) and 1.21 (VV) dB, the two correlated at 0.8; with 6-day
coherence VH -0.49, VV -0.35 (not simulated: the archive has no coherence). The
figures depend on the matching: a 3-day window gives VH -0.03 to -0.11 and VV -0.14 to
-0.19. One region and one year: its weather is one draw. So is the simulated world's:
on the default world (seed 0) the rain happens to fall when grassland NDVI is low:
with a near-flat VV slope (-0.2 dB per NDVI) the field-level r(VV, NDVI) is -0.28 there
(-0.04 without the vegetation-attenuated soil-moisture term) against -0.05 and -0.06
on seeds 1 and 2. The grassland slopes (VV -0.6, VH -0.75 dB per
NDVI, scene noise 0.4 dB, correlated 0.8 between VV and VH) are set so the default
world and the mean of seeds 0-2 bracket the jrc figures while the default world's
per-pixel r stays below 0.15 (the Slovak point series: below 0.1). Result, mown
grassland, within series (one field or pixel in one orbit direction), default world
(seed 0) / mean of seeds 0, 1, 2 / jrc-salms:

* per field (median 168 interior pixels): VV -0.31 / -0.18 / -0.23; VH -0.22 / -0.16 /
  -0.155; VH-VV +0.09 / +0.03 / +0.03.
* per pixel: VV -0.135 / -0.08; VH -0.08 / -0.06; VH-VV +0.03 / +0.01.
* grassland pixels, ascending: median VV -11.4 dB, VH -17.9 dB; temporal noise of
  6-day pairs 2.27 dB (VV) and 2.55 dB (VH) (Slovak points: 2.07 / 2.61; ENL 4.4
  alone gives 2.19 dB, the rest is the field-level scene noise jrc-salms asks for).

Pasture takes the grassland response (no real pasture series here).

Crops (winter and spring cereals, maize): no field-level series of crops with NDVI are
in the shared data, and no published figure of a within-series radar-NDVI correlation
of crops could be verified for this module. What could be verified: Vreugdenhil et
al. (2018), "Sensitivity of Sentinel-1 Backscatter to Vegetation Dynamics: An Austrian
Case Study", Remote Sensing 10(9), 1396: at field level the cross ratio VH/VV explains,
with an exponential model, 87 % of the variance of vegetation water content for corn
and 63 % for winter cereals (34 % for oilseed rape). The crop response below is
therefore an assumption with that order of magnitude: VH-VV rises with the canopy
(per field r with NDVI about 0.83 for cereals and maize on the default world, i.e.
r^2 about 0.69), cereal VV falls with NDVI (attenuation by vertical stems) and maize
VV rises a little. NDVI is not vegetation water content (it saturates while water
content still grows), so these are not the paper's numbers, only their order.

Simulated Sentinel-2 on the default world: 67 % of acquisitions > 50 % flagged, 12 %
< 5 %; clear-labelled pixels off the truth by a median |error| of 0.009 NDVI; haze SCL
misses covers ~7 % of clear-labelled pixels and biases their NDVI by -0.023 (median).

Partly clear fields, ``shared/data/jrc-salms`` SCL histograms (clear = SCL 4, 5, 6;
April-October 2020, ten parcels of 0.8-2.1 ha, 42 dates): 48.8 % of parcel-dates <= 10 %
clear, 5.0 % partly clear (10-90 %), 46.2 % >= 90 % clear; 10 of the 42 dates have a
partly clear parcel. The default world (same measure on its SCL, read at 10 m): fields
of 0.8-2.1 ha 68.3 / 10.4 / 21.4 %, all fields 66.7 / 12.0 / 21.3 %. Partial cover is
already there, about twice the jrc share (whose ten parcels lie close together, so its
42 dates are nearly one sample each); the cloud model is left as it is: Lithuania is
cloudier than the jrc region and one year of one small area does not pin a share.

Values below that are not in the tables (forest, water, built-up, crops, orbit offsets,
rain response) are typical C-band literature levels, chosen to sit inside the ranges above.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Landcover code -> name (written into ``truth/landcover.tif`` tags).
LANDCOVER: dict[int, str] = {
    1: "grassland_mown",
    2: "pasture",
    3: "winter_cereal",
    4: "spring_cereal",
    5: "maize",
    6: "forest",
    7: "water",
    8: "built_up",
    9: "hedgerow",
    10: "track",
}
GRASS, PASTURE, WCEREAL, SCEREAL, MAIZE, FOREST, WATER, BUILT, HEDGE, TRACK = range(1, 11)
#: Agricultural classes (their boundaries become hedgerows or tracks).
FIELD_CLASSES = (GRASS, PASTURE, WCEREAL, SCEREAL, MAIZE)
#: Shares of agricultural parcels by class (grassland-rich, as the product's focus).
FIELD_SHARES = {GRASS: 0.34, PASTURE: 0.16, WCEREAL: 0.2, SCEREAL: 0.12, MAIZE: 0.18}


@dataclass(frozen=True)
class Phenology:
    """Double-logistic NDVI season of a class (days of year; jittered per parcel)."""

    base: float
    """NDVI before green-up."""
    peak: float
    """NDVI at the top of the season."""
    late: float
    """NDVI the season decays to (end of senescence, before harvest)."""
    sos: float
    """Day of year of half green-up."""
    rise: float
    """Green-up time scale (days)."""
    eos: float
    """Day of year of half senescence."""
    fall: float
    """Senescence time scale (days)."""
    jitter: float
    """Std of the per-parcel shift of sos/eos (days)."""
    harvest: float | None = None
    """Mean harvest day of year (None: never harvested)."""


#: NDVI seasons. Grassland: 0.35 late March, 0.82-0.85 at the June peak, 0.70 by
#: late October (the Slovak medians above, shifted ~10 days later for Lithuania).
PHENOLOGY: dict[int, Phenology] = {
    GRASS: Phenology(0.33, 0.85, 0.62, 118, 9, 255, 30, 6),
    PASTURE: Phenology(0.33, 0.80, 0.60, 115, 9, 255, 30, 6),
    WCEREAL: Phenology(0.42, 0.86, 0.34, 105, 8, 180, 7, 5, harvest=212),
    SCEREAL: Phenology(0.19, 0.83, 0.35, 148, 7, 205, 7, 6, harvest=230),
    MAIZE: Phenology(0.17, 0.87, 0.40, 182, 8, 255, 8, 6, harvest=282),
    FOREST: Phenology(0.76, 0.88, 0.80, 128, 8, 290, 10, 4),
    WATER: Phenology(-0.30, -0.16, -0.25, 160, 15, 250, 15, 10),
    BUILT: Phenology(0.14, 0.26, 0.18, 125, 10, 280, 15, 5),
    HEDGE: Phenology(0.55, 0.84, 0.68, 125, 8, 285, 12, 4),
    TRACK: Phenology(0.16, 0.30, 0.22, 125, 10, 280, 15, 5),
}

#: NDVI after harvest (stubble) and its slow weedy regrowth (to +0.10, 30-day scale).
STUBBLE_NDVI = 0.24
#: Mowing: NDVI drop (uniform range) and regrowth time scale (days; 95 % in ~3.5 weeks).
MOW_DROP = (0.15, 0.40)
MOW_FLOOR = 0.30
MOW_REGROWTH_DAYS = 9.0
#: Cuts per season of mown grassland and their probabilities.
MOW_CUTS = {1: 0.45, 2: 0.4, 3: 0.15}
#: First cut day of year (uniform), gap between cuts (days, uniform).
FIRST_CUT_DOY = (155, 190)
CUT_GAP_DAYS = (38, 55)
#: Grazing dips: drop range, regrowth scale (days), rotation interval (days).
GRAZE_DROP = (0.04, 0.12)
GRAZE_REGROWTH_DAYS = 6.0
GRAZE_INTERVAL = (18, 30)

#: Reflectance endmembers (red, nir): background per class and green vegetation.
VEGETATION = (0.025, 0.46)
BACKGROUND: dict[int, tuple[float, float]] = {
    GRASS: (0.16, 0.24), PASTURE: (0.16, 0.24), WCEREAL: (0.17, 0.24),
    SCEREAL: (0.17, 0.24), MAIZE: (0.17, 0.24), FOREST: (0.16, 0.24),
    WATER: (0.045, 0.02), BUILT: (0.14, 0.17), HEDGE: (0.16, 0.24), TRACK: (0.15, 0.19),
}
#: Spectrum of cloud (red, nir): thin haze raises red more than nir, so NDVI drops.
CLOUD_SPECTRUM = (0.42, 0.39)


@dataclass(frozen=True)
class Backscatter:
    """C-band response of a class, ascending reference orbit, dB."""

    vv0: float
    """VV at NDVI 0 and dry soil."""
    vv_ndvi: float
    """VV change per NDVI unit."""
    vh0: float
    """VH at NDVI 0 and dry soil."""
    vh_ndvi: float
    """VH change per NDVI unit (biomass)."""
    wet: float
    """Soil-moisture sensitivity (1 = bare-field response)."""
    scene_db: float = 0.3
    """Std of the per-field, per-scene dB noise (everything a field's mean does not explain)."""


#: Grassland: field-level slopes from jrc-salms (see above), levels at NDVI 0.7 equal to
#: the Slovak medians (VV -11.7, VH -17.8 before the soil-moisture term). Crops: assumed.
BACKSCATTER: dict[int, Backscatter] = {
    GRASS: Backscatter(-11.3, -0.6, -17.3, -0.75, 1.0, 0.4),
    PASTURE: Backscatter(-11.1, -0.6, -17.2, -0.75, 1.0, 0.4),
    WCEREAL: Backscatter(-10.8, -2.5, -21.0, 5.0, 1.0),
    SCEREAL: Backscatter(-10.8, -2.5, -21.0, 5.0, 1.0),
    MAIZE: Backscatter(-12.0, 1.5, -21.5, 7.5, 1.0),
    FOREST: Backscatter(-7.6, 0.0, -13.2, 0.0, 0.2),
    WATER: Backscatter(-22.0, 0.0, -28.0, 0.0, 0.0),
    BUILT: Backscatter(-4.5, 0.0, -11.5, 0.0, 0.0),
    HEDGE: Backscatter(-8.5, 0.0, -14.5, 0.0, 0.3),
    TRACK: Backscatter(-13.5, 0.0, -22.0, 0.0, 0.8),
}
#: Descending minus ascending (steeper incidence on the descending pass), dB.
ORBIT_OFFSET_DB = {"ascending": (0.0, 0.0), "descending": (1.0, 0.6)}
#: VV / VH rise (dB) of bare wet soil at moisture index 1 (a ~10 mm rain day).
WET_DB = (1.8, 0.8)
#: Soil drying time scale (days).
DRYING_DAYS = 3.0
#: Static per-parcel and per-pixel dB offsets (std, dB); the per-scene noise is per class.
PARCEL_DB_STD = 1.2
PIXEL_DB_STD = 0.4
#: Correlation of the per-field scene noise between VV and VH.
SCENE_POL_CORR = 0.8
#: Corner frequency (cycles per pixel) of the speckle's Lorentzian amplitude spectrum.
SPECKLE_CORNER = 0.1
#: Residual thermal noise after denoising (linear gamma0 std) in VH.
VH_NOISE_LINEAR = 0.0021
#: Lowest VH after noise subtraction (-35 dB; the real CDSE cube's 0.1th percentile is -35.4).
VH_FLOOR_LINEAR = 10.0 ** -3.5
#: Share of that noise's variance that is white (the rest correlated like the speckle).
VH_NOISE_WHITE = 0.5
