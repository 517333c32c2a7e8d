"""How EODATA (the CDSE / CreoDIAS archive) and other remote assets are reached.

CDSE STAC items point at ``s3://eodata/Sentinel-2/...`` (JPEG2000 inside the SAFE
folders) and usually give an ``https`` alternate. Three ways to read them:

``mount``
    a CreoDIAS VM sees the archive under ``/eodata``: ``s3://eodata/X`` -> ``/eodata/X``.
    Fastest, no credentials, works only on CreoDIAS/CDSE cloud VMs.
``s3``
    GDAL's ``/vsis3/`` against ``eodata.dataspace.copernicus.eu`` with the S3 keys
    from the CDSE S3 credentials page in ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``.
``https``
    the asset's ``alternate.https`` href (or the href itself when already http),
    read through GDAL's ``/vsicurl/`` with range requests.

``auto`` picks ``mount`` when ``/eodata`` exists, else ``https``. GDAL options are
set as environment variables (``setdefault``: the user's own settings win), because
ingestion opens assets both with rasterio directly and inside odc-stac's dask tasks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pystac
from pystac.stac_io import DefaultStacIO

from pipeline.errors import InputError

log = logging.getLogger(__name__)

MODES = ("auto", "mount", "s3", "https")
EODATA_BUCKET = "eodata"
CDSE_S3_ENDPOINT = "eodata.dataspace.copernicus.eu"

#: GDAL settings for any remote COG/JP2 read (range requests, no directory listing).
GDAL_HTTP_ENV: dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MAX_RETRY": "4",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "VSI_CACHE": "TRUE",
}
#: Extra GDAL settings for the EODATA S3 endpoint (path-style, HTTPS).
GDAL_S3_ENV: dict[str, str] = {
    "AWS_S3_ENDPOINT": CDSE_S3_ENDPOINT,
    "AWS_VIRTUAL_HOSTING": "FALSE",
    "AWS_HTTPS": "YES",
}


@dataclass(frozen=True)
class EodataAccess:
    """A resolved access mode.

    Attributes:
        mode: ``mount``, ``s3`` or ``https`` (never ``auto``).
        mount: where the EODATA bucket is mounted (``/eodata`` on CreoDIAS VMs).
    """

    mode: str
    mount: str = "/eodata"


def resolve_access(mode: str, mount: str = "/eodata") -> EodataAccess:
    """The access for ``--eodata MODE``; InputError for unknown modes or missing S3 keys."""
    if mode not in MODES:
        raise InputError(f"--eodata: unknown mode {mode!r}; choose one of {MODES}")
    if mode == "auto":
        mode = "mount" if Path(mount).is_dir() else "https"
        log.info("EODATA access: %s", mode)
    if mode == "mount" and not Path(mount).is_dir():
        raise InputError(
            f"--eodata mount: {mount} does not exist; run on a CreoDIAS VM with EODATA "
            "mounted, or pass --eodata s3 / --eodata https"
        )
    if mode == "s3" and not (
        os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")
    ):
        raise InputError(
            "--eodata s3 needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the S3 keys "
            "from the CDSE S3 credentials page); set them or pass --eodata mount/https"
        )
    return EodataAccess(mode, mount)


def configure_gdal(access: EodataAccess) -> None:
    """Set GDAL options for remote reads (environment, never overriding the user's)."""
    env = dict(GDAL_HTTP_ENV)
    if access.mode == "s3":
        env.update(GDAL_S3_ENV)
    for key, value in env.items():
        os.environ.setdefault(key, value)
    log.debug("GDAL options: %s", ", ".join(f"{k}={os.environ[k]}" for k in sorted(env)))


def _split_s3(href: str) -> tuple[str, str]:
    parsed = urlparse(href)
    return parsed.netloc, parsed.path.lstrip("/")


def rewrite_href(href: str, access: EodataAccess, extra_fields: dict[str, Any]) -> str:
    """The href ingestion should open for an asset, given the access mode (pure).

    Only EODATA locations are touched (``s3://eodata/...`` and ``/eodata/...``);
    every other href is returned unchanged.
    """
    mount = access.mount.rstrip("/")
    if href.startswith("s3://"):
        bucket, key = _split_s3(href)
        if bucket != EODATA_BUCKET:
            return href
        if access.mode == "mount":
            return f"{mount}/{key}"
        if access.mode == "https":
            alt = (extra_fields.get("alternate") or {}).get("https") or {}
            return str(alt.get("href") or href)
        return href
    if href.startswith(mount + "/") and access.mode == "s3":
        return f"s3://{EODATA_BUCKET}/{href[len(mount) + 1:]}"
    return href


class S3StacIO(DefaultStacIO):
    """Reads ``s3://`` catalog JSON: from the mount for EODATA, else over public HTTPS."""

    def __init__(self, access: EodataAccess) -> None:
        super().__init__()
        self.access = access

    def read_text_from_href(self, href: str) -> str:
        """Text of a catalog document; ``s3://`` hrefs are mapped first."""
        if href.startswith("s3://"):
            bucket, key = _split_s3(href)
            if bucket == EODATA_BUCKET and self.access.mode == "mount":
                href = f"{self.access.mount.rstrip('/')}/{key}"
            else:
                endpoint = os.environ.get("AWS_S3_ENDPOINT")
                href = (
                    f"https://{endpoint}/{bucket}/{key}"
                    if endpoint
                    else f"https://{bucket}.s3.amazonaws.com/{key}"
                )
        return super().read_text_from_href(href)


def stac_io_for(url: str, access: EodataAccess) -> pystac.StacIO:
    """The StacIO that can read a catalog rooted at ``url``."""
    if url.startswith("s3://"):
        return S3StacIO(access)
    return DefaultStacIO()
