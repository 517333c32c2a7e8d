"""The simulated world behind the ``demo`` source.

A deterministic, physically plausible archive of Sentinel-2 L2A (B04, B08 with
BOA_ADD_OFFSET, SCL at 20 m) and Sentinel-1 GRD backscatter (VV, VH linear on a
geographic grid) as COGs with a static STAC catalog, plus the ground truth
(landcover, parcels with mowing dates, clean NDVI per acquisition and per 6-day
bin, haze that SCL missed). Modules: :mod:`.spec` (what and when),
:mod:`.landscape` (parcels), :mod:`.phenology` (seasons, mowing, weather),
:mod:`.optics` (reflectance, clouds, SCL), :mod:`.radar` (backscatter, speckle),
:mod:`.catalog` (STAC), :mod:`.archive` (writing). The numbers and where they were
measured on real Slovak grassland plots are in :mod:`.calibration`.
"""

from pipeline.simulate.archive import write_archive
from pipeline.simulate.spec import WorldSpec, default_world

__all__ = ["WorldSpec", "default_world", "write_archive"]
