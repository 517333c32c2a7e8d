"""Scenes from the Sentinel Hub Process API on the Copernicus Data Space Ecosystem.

The source downloads what the pipeline needs on the run's own grid and hands
ingestion ordinary STAC items that point at local GeoTIFFs, so nothing downstream
knows the data came from Sentinel Hub:

1. acquisition dates from the Catalog API (one scene = one UTC day for S2, one
   day and orbit direction for S1);
2. one Process API request per scene and tile: the run's UTM 10 m GeoBox cut into
   tiles of at most 2500 x 2500 px (the Process API limit);
   S2 L2A ``B04``, ``B08`` (DN, harmonised: no BOA offset) and ``SCL``, zero where
   ``dataMask`` is 0; S1 IW GRD ``VV``, ``VH`` as gamma0 terrain-corrected,
   orthorectified linear backscatter, NaN outside ``dataMask``;
3. each response is cached under ``cache/sentinelhub/tiles/<request hash>.tif``
   (written atomically, validated before it counts), tiles are assembled into one
   GeoTIFF per band and scene under ``cache/sentinelhub/scenes/``; a rerun downloads
   nothing twice and a failed run resumes from what it cached;
4. items carry ``raster:bands`` scale/offset (scale 1e-4, offset 0: harmonised DN)
   and, for S1, ``sat:orbit_state``.

Retries: 429 waits as the service says (``Retry-After``) and 5xx/connection errors
back off exponentially, both inside the ``sentinelhub`` client and bounded. A 401
is an authentication error; 5xx after the last retry a :class:`SentinelHubError`;
a response that arrives but is not a readable GeoTIFF skips its scene (recorded).
Credentials come from ``SH_CLIENT_ID``/``SH_CLIENT_SECRET`` or a sentinelhub config
profile and are never logged or written anywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.io import MemoryFile
from rasterio.windows import Window
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

from pipeline.blocks import blocks, even_edges
from pipeline.errors import InputError, request_failure
from pipeline.storage import atomic_dir, atomic_write

log = logging.getLogger(__name__)

CDSE_BASE_URL = "https://sh.dataspace.copernicus.eu"
CDSE_TOKEN_URL = (
    "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
)
#: sentinelhub's own default, replaced by the CDSE URLs unless a profile says otherwise.
_SH_DEFAULT_BASE_URL = "https://services.sentinel-hub.com"
#: Largest tile edge one Process API request may return.
MAX_TILE_PX = 2500
#: A download estimated above this many processing units is announced as a warning.
LARGE_PU = 100.0
#: Monthly processing units of a CDSE general user (Sentinel Hub APIs).
CDSE_MONTHLY_PU = 10_000

S2_EVALSCRIPT = """//VERSION=3
function setup() {
  return {
    input: [{bands: ["B04", "B08", "SCL", "dataMask"], units: "DN"}],
    output: {id: "default", bands: 3, sampleType: "UINT16"}
  };
}
function evaluatePixel(s) {
  if (s.dataMask == 0) { return [0, 0, 0]; }
  return [s.B04, s.B08, s.SCL];
}
"""

S1_EVALSCRIPT = """//VERSION=3
function setup() {
  return {
    input: [{bands: ["VV", "VH", "dataMask"]}],
    output: {id: "default", bands: 2, sampleType: "FLOAT32"}
  };
}
function evaluatePixel(s) {
  if (s.dataMask == 0) { return [NaN, NaN]; }
  return [s.VV, s.VH];
}
"""


class SentinelHubError(RuntimeError):
    """The service kept failing after the bounded retries (CLI exit 1)."""


class SentinelHubAuthError(InputError):
    """The service rejected the credentials (HTTP 401/403): the user must fix them."""


@dataclass(frozen=True)
class Product:
    """What is requested for one sensor: evalscript, output bands and their files.

    Attributes:
        sensor: ``sentinel-2`` or ``sentinel-1``.
        collection: catalog/process collection id on Sentinel Hub.
        evalscript: the Process API script.
        files: one (asset key, dtype, nodata) per output band, in band order.
        input_bands: collection bands read, dataMask excluded (for the PU estimate).
        pu_factor: PU multiplier besides area and bands (FLOAT32 x2, orthorectify x2).
        processing: the input's ``processing`` options.
    """

    sensor: str
    collection: str
    evalscript: str
    files: tuple[tuple[str, str, float], ...]
    input_bands: int
    pu_factor: float
    processing: dict[str, Any] = field(default_factory=dict)

    @property
    def dtype(self) -> str:
        """The response's sample type."""
        return self.files[0][1]


S2_PRODUCT = Product(
    sensor="sentinel-2",
    collection="sentinel-2-l2a",
    evalscript=S2_EVALSCRIPT,
    files=(("B04", "uint16", 0), ("B08", "uint16", 0), ("SCL", "uint8", 0)),
    input_bands=3,
    pu_factor=1.0,
    processing={"harmonizeValues": True},
)
S1_PRODUCT = Product(
    sensor="sentinel-1",
    # calibrated backscatter, not raw GRD products (ingestion treats those differently)
    collection="sentinel-1-grd-backscatter",
    evalscript=S1_EVALSCRIPT,
    files=(("vv", "float32", math.nan), ("vh", "float32", math.nan)),
    input_bands=2,
    pu_factor=2.0 * 2.0,
    processing={
        "backCoeff": "GAMMA0_TERRAIN",
        "orthorectify": True,
        "demInstance": "COPERNICUS",
        "speckleFilter": {"type": "NONE"},
    },
)


def estimate_pu(width: int, height: int, product: Product) -> float:
    """Processing units of one Process API request (Sentinel Hub's published rules).

    ``max(0.01, w*h / 512²) * bands / 3 * factor``, at least 0.005 per request, where
    factor is 2 for FLOAT32 output times 2 for orthorectification (S1), 1 for S2.
    """
    area = max(0.01, width * height / (512.0 * 512.0))
    return max(0.005, area * product.input_bands / 3.0 * product.pu_factor)


def make_tiles(geobox: GeoBox, max_px: int = MAX_TILE_PX) -> list[tuple[int, int, int, int]]:
    """(row0, col0, height, width) tiles covering the grid, none larger than ``max_px``."""
    h, w = geobox.shape
    return [(b.rows.start, b.cols.start, *b.shape)
            for b in blocks(even_edges(h, max_px), even_edges(w, max_px))]


def load_config(profile: str | None = None, *, base_url: str | None = None,
                token_url: str | None = None) -> Any:
    """A ``SHConfig`` for CDSE with credentials; InputError naming what is missing.

    Credentials: ``SH_CLIENT_ID``/``SH_CLIENT_SECRET`` (they win), else the profile
    (``--sh-profile``, ``$SH_PROFILE`` or sentinelhub's default profile) of an existing
    sentinelhub config file. Nothing is written: sentinelhub would create a default
    config file on first load, so a missing file is never loaded.
    URLs: arguments, else ``$SH_BASE_URL``/``$SH_TOKEN_URL``, else the profile's if it
    names a service other than sentinelhub's default, else the CDSE endpoints.
    """
    from sentinelhub import SHConfig

    env = {
        k: v
        for k, v in (
            ("sh_client_id", os.environ.get("SH_CLIENT_ID")),
            ("sh_client_secret", os.environ.get("SH_CLIENT_SECRET")),
        )
        if v
    }
    cfg_file = Path(SHConfig.get_config_location())
    if profile is not None and not cfg_file.is_file():
        raise InputError(
            f"--sh-profile {profile}: no sentinelhub config file at {cfg_file}; create the "
            "profile with 'sentinelhub.config --profile NAME ...' or set SH_CLIENT_ID and "
            "SH_CLIENT_SECRET"
        )
    if cfg_file.is_file():
        try:
            config = SHConfig(profile, **env)  # type: ignore[arg-type]
        except KeyError:
            if profile is not None:
                raise InputError(
                    f"--sh-profile {profile}: no such profile in {cfg_file}; pass an existing "
                    "profile or set SH_CLIENT_ID and SH_CLIENT_SECRET"
                ) from None
            config = SHConfig(use_defaults=True, **env)
    else:
        config = SHConfig(use_defaults=True, **env)
    if not (config.sh_client_id and config.sh_client_secret):
        raise InputError(
            "Sentinel Hub credentials missing: set SH_CLIENT_ID and SH_CLIENT_SECRET (an OAuth "
            "client from the CDSE dashboard) or pass --sh-profile NAME"
        )
    default_service = config.sh_base_url.rstrip("/") == _SH_DEFAULT_BASE_URL
    config.sh_base_url = (
        base_url or os.environ.get("SH_BASE_URL")
        or (CDSE_BASE_URL if default_service else config.sh_base_url)
    )
    config.sh_token_url = (
        token_url or os.environ.get("SH_TOKEN_URL")
        or (CDSE_TOKEN_URL if default_service else config.sh_token_url)
    )
    return config


def _cdse_collections(base_url: str) -> tuple[Any, Any]:
    """S2 L2A and S1 IW collections re-defined on the given service URL."""
    from sentinelhub import DataCollection

    tag = "CDSE" if base_url.rstrip("/") == CDSE_BASE_URL else hashlib.sha1(
        base_url.encode()).hexdigest()[:10].upper()
    s2 = DataCollection.SENTINEL2_L2A.define_from(f"SENTINEL2_L2A_{tag}", service_url=base_url)
    s1 = DataCollection.SENTINEL1_IW.define_from(f"SENTINEL1_IW_{tag}", service_url=base_url)
    return s2, s1


_ORBIT_SHORT = {"ascending": "asc", "descending": "desc"}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Scene:
    """One scene to download: a day (and for S1 an orbit direction).

    Attributes:
        item_id: id of the STAC item handed to ingestion.
        product: what is requested.
        day: UTC acquisition day.
        when: datetime of the first catalog product of the scene.
        orbit_state: ``ascending``/``descending`` (S1) or None.
        products: catalog ids of the products the scene mosaics.
    """

    item_id: str
    product: Product
    day: dt.date
    when: dt.datetime
    orbit_state: str | None
    products: tuple[str, ...]


@dataclass
class _Tile:
    scene: Scene
    window: tuple[int, int, int, int]
    key: str
    request: Any  # sentinelhub DownloadRequest

    @property
    def pu(self) -> float:
        return estimate_pu(self.window[3], self.window[2], self.scene.product)


@dataclass
class SentinelHubSource:
    """Sentinel Hub (CDSE) Process + Catalog API, downloading onto the run's grid.

    Attributes:
        config: a ``sentinelhub.SHConfig`` with credentials and URLs (:func:`load_config`).
        geobox: the run's grid; requests are made on it, tile by tile.
        cache: folder of the download cache (``<cache>/sentinelhub``).
        max_attempts: attempts per request on 5xx / connection errors (None: the
            config's ``max_download_attempts``, 4 by default).
        backoff_s: first wait between attempts, x3 each further attempt (None: the
            config's ``download_sleep_time``, 5 s by default).
        max_rate_limited: 429 answers tolerated per request before giving up (None:
            the config's ``max_retries``, else 20).
        threads: parallel requests.
        max_tile_px: largest tile edge per request (the Process API allows 2500).
        name: source name (``sentinelhub``).
        skipped: scenes that could not be delivered, with the reason (to run.json).
    """

    config: Any
    geobox: GeoBox
    cache: Path
    max_attempts: int | None = None
    backoff_s: float | None = None
    max_rate_limited: int | None = None
    threads: int = 2
    max_tile_px: int = MAX_TILE_PX
    name: str = "sentinelhub"
    skipped: list[dict[str, str]] = field(default_factory=list)
    _client: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        cfg = self.config
        if self.max_attempts is not None:
            cfg.max_download_attempts = self.max_attempts
        if self.backoff_s is not None:
            cfg.download_sleep_time = self.backoff_s
        if self.max_rate_limited is not None:
            cfg.max_retries = self.max_rate_limited
        elif cfg.max_retries is None:  # sentinelhub would wait out 429s forever
            cfg.max_retries = 20
        self.root = Path(self.cache) / "sentinelhub"

    # -- session, catalog -------------------------------------------------------------
    def _get_client(self) -> Any:
        if self._client is None:
            from sentinelhub import SentinelHubDownloadClient, SentinelHubSession

            _redact_secret_in_oauth_logs(self.config.sh_client_secret)
            try:
                session = SentinelHubSession(config=self.config)
            except Exception as exc:
                raise self._translate(exc, self.config.sh_token_url) from None
            self._client = SentinelHubDownloadClient(config=self.config, session=session)
        return self._client

    def _translate(self, exc: Exception, url: str) -> Exception:
        """A clear, one-line, secret-free error for what the client raised."""
        from oauthlib.oauth2.rfc6749.errors import InsecureTransportError, OAuth2Error

        status = _status_of(exc)
        if isinstance(exc, InsecureTransportError):
            return InputError(f"SH_TOKEN_URL: {url} is not https; pass an https token URL")
        if isinstance(exc, OAuth2Error) or status in (401, 403):
            return SentinelHubAuthError(
                f"Sentinel Hub rejected the credentials (HTTP {status or 401}) at {url}; check "
                "SH_CLIENT_ID and SH_CLIENT_SECRET (an OAuth client of your CDSE account)"
            )
        if status is not None and status < 500 and status != 429:
            return SentinelHubError(f"Sentinel Hub refused a request (HTTP {status}) at {url}")
        what = f"HTTP {status}" if status else request_failure(_root_cause(exc))
        return SentinelHubError(
            f"Sentinel Hub failed ({what}) at {url} after "
            f"{self.config.max_download_attempts} attempts; finished downloads are cached: "
            "run the same command again to resume"
        )

    def _catalog_search(self, collection: Any, aoi: BaseGeometry, start: dt.date,
                        end: dt.date) -> list[dict[str, Any]]:
        from sentinelhub import CRS, BBox, SentinelHubCatalog

        catalog = SentinelHubCatalog(config=self.config)
        catalog.client = self._get_client()
        try:
            found = list(
                catalog.search(
                    collection,
                    bbox=BBox(aoi.bounds, crs=CRS.WGS84),
                    time=(start.isoformat(), f"{end.isoformat()}T23:59:59"),
                    fields={"include": ["id", "properties.datetime", "properties.sat:orbit_state",
                                        "properties.eo:cloud_cover"], "exclude": []},
                )
            )
        except InputError:
            raise
        except Exception as exc:
            raise self._translate(exc, catalog.service_url) from None
        log.info("Sentinel Hub catalog: %d %s products", len(found), collection.catalog_id)
        return found

    def _scenes(self, product: Product, features: list[dict[str, Any]]) -> list[Scene]:
        groups: dict[tuple[dt.date, str | None], list[tuple[dt.datetime, str]]] = {}
        for feat in features:
            props = feat.get("properties", {})
            when = dt.datetime.fromisoformat(str(props["datetime"]).replace("Z", "+00:00"))
            when = when.astimezone(dt.UTC)
            orbit = props.get("sat:orbit_state") if product is S1_PRODUCT else None
            if product is S1_PRODUCT and orbit not in ("ascending", "descending"):
                self.skipped.append({"id": str(feat.get("id")),
                                     "reason": f"catalog sat:orbit_state is {orbit!r}"})
                continue
            groups.setdefault((when.date(), orbit), []).append((when, str(feat.get("id"))))
        scenes = []
        short = "s2l2a" if product is S2_PRODUCT else "s1grd"
        def order(kv: tuple[tuple[dt.date, str | None], Any]) -> tuple[dt.date, str]:
            return kv[0][0], kv[0][1] or ""

        for (day, orbit), members in sorted(groups.items(), key=order):
            members.sort()
            suffix = f"-{_ORBIT_SHORT[orbit]}" if orbit else ""
            scenes.append(Scene(
                item_id=f"sentinelhub-{short}-{day:%Y%m%d}{suffix}",
                product=product, day=day, when=members[0][0], orbit_state=orbit,
                products=tuple(m[1] for m in members),
            ))
        return scenes

    # -- requests -----------------------------------------------------------------------
    def _tiles(self, scene: Scene, collection: Any) -> list[_Tile]:
        from sentinelhub import CRS, BBox, MimeType, MosaickingOrder, SentinelHubRequest

        gb = self.geobox
        assert gb.crs is not None and gb.crs.epsg is not None, "the run grid has an EPSG code"
        a = gb.affine
        start = dt.datetime.combine(scene.day, dt.time(0, 0), dt.UTC)
        end = dt.datetime.combine(scene.day, dt.time(23, 59, 59), dt.UTC)
        other: dict[str, Any] = {"processing": scene.product.processing}
        if scene.orbit_state:
            other["dataFilter"] = {"orbitDirection": scene.orbit_state.upper()}
        tiles = []
        for row0, col0, h, w in make_tiles(gb, self.max_tile_px):
            x0, y1 = a.c + col0 * a.a, a.f + row0 * a.e
            x1, y0 = x0 + w * a.a, y1 + h * a.e
            req = SentinelHubRequest(
                evalscript=scene.product.evalscript,
                input_data=[SentinelHubRequest.input_data(
                    collection,
                    time_interval=(start, end),
                    mosaicking_order=MosaickingOrder.MOST_RECENT,
                    other_args=other,
                )],
                responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
                bbox=BBox((x0, y0, x1, y1), crs=CRS(gb.crs.epsg)),
                size=(w, h),
                config=self.config,
            )
            dl = req.download_list[0]
            tiles.append(_Tile(scene, (row0, col0, h, w), _digest(dl.post_values), dl))
        return tiles

    def _tile_path(self, key: str) -> Path:
        return self.root / "tiles" / key[:2] / f"{key}.tif"

    def _scene_dir(self, tiles: list[_Tile]) -> Path:
        scene = tiles[0].scene
        key = _digest([t.key for t in tiles])[:16]
        return self.root / "scenes" / f"{scene.item_id}-{key}"

    def _download(self, tile: _Tile) -> str | None:
        """Fetch one tile into the cache; the reason if its bytes are unusable."""
        from sentinelhub.exceptions import DownloadFailedException

        try:
            [resp] = self._get_client().download([tile.request], decode_data=False)
        except DownloadFailedException as exc:
            if _is_truncation(exc):
                n = self.config.max_download_attempts
                return f"Sentinel Hub response incomplete after {n} attempts"
            raise self._translate(exc, str(tile.request.url)) from None
        except InputError:
            raise
        except Exception as exc:
            raise self._translate(exc, str(tile.request.url)) from None
        reason = _check_tiff(resp.content, tile.window[2], tile.window[3],
                             len(tile.scene.product.files))
        if reason:
            return f"Sentinel Hub response is not a readable GeoTIFF ({reason})"
        path = self._tile_path(tile.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp:
            tmp.write_bytes(resp.content)
        return None

    def _fetch(self, scenes: list[Scene], collection: Any,
               progress: Callable[[int, int], None] | None = None) -> list[pystac.Item]:
        plans = []
        for scene in scenes:
            tiles = self._tiles(scene, collection)
            plans.append((scene, tiles, self._scene_dir(tiles)))
        todo = [t for _, tiles, d in plans if not (d / "done").exists() for t in tiles
                if not self._tile_path(t.key).exists()]
        if todo:
            pu = sum(t.pu for t in todo)
            cached = sum(len(tiles) for _, tiles, _ in plans) - len(todo)
            msg = (f"Sentinel Hub: {len(todo)} {scenes[0].product.sensor} requests to download "
                   f"(~{pu:.1f} processing units of the {CDSE_MONTHLY_PU:,} PU/month of a CDSE "
                   f"account), {cached} cached")
            log.log(logging.WARNING if pu >= LARGE_PU else logging.INFO, msg)
        failed: dict[str, str] = {}
        errors: list[Exception] = []
        with ThreadPoolExecutor(max_workers=max(1, self.threads)) as pool:
            futures = [(t, pool.submit(self._download, t)) for t in todo]
            for tile, fut in futures:
                try:
                    reason = fut.result()
                except Exception as exc:  # kept: other tiles still land in the cache
                    errors.append(exc)
                    continue
                if reason:
                    failed[tile.scene.item_id] = reason
        if errors:
            auth = [e for e in errors if isinstance(e, InputError)]
            raise (auth or errors)[0]
        items = []
        for scene, tiles, scene_dir in plans:
            if scene.item_id in failed:
                log.warning("skipping scene %s: %s", scene.item_id, failed[scene.item_id])
                self.skipped.append({"id": scene.item_id, "reason": failed[scene.item_id]})
                continue
            if not (scene_dir / "done").exists():
                self._assemble(scene, tiles, scene_dir)
            items.append(self._item(scene, scene_dir))
        return items

    def _assemble(self, scene: Scene, tiles: list[_Tile], scene_dir: Path) -> None:
        """One GeoTIFF per band on the whole grid from the cached tiles (atomic)."""
        with atomic_dir(scene_dir) as tmp:
            self._write_scene(scene, tiles, tmp)
        for tile in tiles:  # the assembled scene is the cache from now on
            self._tile_path(tile.key).unlink(missing_ok=True)

    def _write_scene(self, scene: Scene, tiles: list[_Tile], tmp: Path) -> None:
        gb = self.geobox
        h, w = gb.shape
        profiles = {
            key: dict(driver="GTiff", width=w, height=h, count=1, dtype=dtype, nodata=nodata,
                      crs=gb.crs.to_wkt() if gb.crs else None, transform=gb.affine,
                      tiled=True, blockxsize=256, blockysize=256, compress="deflate")
            for key, dtype, nodata in scene.product.files
        }
        outs = {key: rasterio.open(tmp / f"{key}.tif", "w", **prof)
                for key, prof in profiles.items()}
        try:
            for tile in tiles:
                row0, col0, th, tw = tile.window
                with rasterio.open(self._tile_path(tile.key)) as src:
                    for band, (key, dtype, _) in enumerate(scene.product.files, start=1):
                        outs[key].write(src.read(band).astype(dtype),
                                        1, window=Window(col0, row0, tw, th))
        finally:
            for dst in outs.values():
                dst.close()
        (tmp / "done").write_text(json.dumps({"products": scene.products}))

    def _item(self, scene: Scene, scene_dir: Path) -> pystac.Item:
        gb = self.geobox
        footprint = box(*gb.extent.to_crs("EPSG:4326").boundingbox)
        props: dict[str, Any] = {
            "platform": "sentinel-2" if scene.product is S2_PRODUCT else "sentinel-1",
            "sentinelhub:products": list(scene.products),
            "proj:code": f"EPSG:{gb.crs.epsg}" if gb.crs else None,
        }
        if scene.orbit_state:
            props["sat:orbit_state"] = scene.orbit_state
        item = pystac.Item(scene.item_id, mapping(footprint), list(footprint.bounds), scene.when,
                           props, collection=scene.product.collection)
        for key, dtype, nodata in scene.product.files:
            band: dict[str, Any] = {"data_type": dtype, "nodata": "nan" if dtype == "float32"
                                    else nodata}
            if key in ("B04", "B08"):
                # harmonised DN: reflectance = DN * 1e-4, the BOA offset is already removed
                band.update(scale=0.0001, offset=0.0)
            item.add_asset(key, pystac.Asset(str(scene_dir / f"{key}.tif"), roles=["data"],
                                             media_type=pystac.MediaType.GEOTIFF,
                                             extra_fields={"raster:bands": [band]}))
        return item

    # -- Source protocol ------------------------------------------------------------------
    def search_s2(self, aoi: BaseGeometry, start: dt.date, end: dt.date) -> list[pystac.Item]:
        """Sentinel-2 L2A scenes of the period, downloaded on the run grid (cached)."""
        s2, _ = _cdse_collections(self.config.sh_base_url)
        scenes = self._scenes(S2_PRODUCT, self._catalog_search(s2, aoi, start, end))
        return self._fetch(scenes, s2) if scenes else []

    def search_s1(self, aoi: BaseGeometry, start: dt.date, end: dt.date) -> list[pystac.Item]:
        """Sentinel-1 IW gamma0 scenes per day and orbit direction, downloaded (cached)."""
        _, s1 = _cdse_collections(self.config.sh_base_url)
        scenes = self._scenes(S1_PRODUCT, self._catalog_search(s1, aoi, start, end))
        return self._fetch(scenes, s1) if scenes else []


class _Redact(logging.Filter):
    """Replaces a secret in log records (requests-oauthlib logs token request bodies)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if self.secret and self.secret in text:
            record.msg, record.args = text.replace(self.secret, "***"), ()
        return True


def _redact_secret_in_oauth_logs(secret: str) -> None:
    """Keep the client secret out of every OAuth library log record, at any level."""
    import oauthlib.oauth2  # noqa: F401  (registers the loggers)
    import requests_oauthlib  # noqa: F401

    names = [n for n in logging.root.manager.loggerDict
             if n.split(".")[0] in ("requests_oauthlib", "oauthlib")]
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Redact) and f.secret == secret for f in logger.filters):
            logger.addFilter(_Redact(secret))


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while True:
        nxt = getattr(seen, "request_exception", None) or seen.__cause__
        if nxt is None or nxt is seen:
            return seen
        seen = nxt


def _status_of(exc: BaseException) -> int | None:
    cur: BaseException | None = exc
    for _ in range(6):
        if cur is None:
            return None
        resp = getattr(cur, "response", None)
        code = getattr(resp, "status_code", None)
        if isinstance(code, int):
            return code
        cur = getattr(cur, "request_exception", None) or cur.__cause__
    return None


def _is_truncation(exc: BaseException) -> bool:
    import requests

    root = _root_cause(exc)
    return isinstance(root, requests.exceptions.ChunkedEncodingError)


def _check_tiff(data: bytes, height: int, width: int, count: int) -> str | None:
    """None if ``data`` is a complete GeoTIFF of the requested shape, else the reason."""
    try:
        with MemoryFile(data) as mem, mem.open() as src:
            if (src.height, src.width, src.count) != (height, width, count):
                return f"shape {src.count}x{src.height}x{src.width}, asked {count}x{height}x{width}"
            src.read()
    except Exception as exc:  # rasterio raises several types for broken files
        return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:200]
    return None
