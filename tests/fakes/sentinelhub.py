"""A fake Sentinel Hub on 127.0.0.1: OAuth token, Catalog search and Process API.

Answers are cut from the demo world's archive, the way the real service would
deliver them: S2 L2A B04/B08 as harmonised DN (the -1000 BOA offset removed,
clamped at 0) and SCL, zero where there is no data; S1 VV/VH linear gamma0
reprojected (bilinear) onto the requested UTM grid, NaN outside the data.

Faults, to drive the real ``sentinelhub`` client's retry paths:

* ``faults``: a FIFO consumed by process requests: ``"429"`` (with ``Retry-After``
  in ms, as Sentinel Hub sends it), ``"503"``, ``"truncate"`` (Content-Length of the
  full body, half of it sent, connection closed);
* ``always``: ``"503"`` answers every process request with 503;
* ``fail_after``: after this many good process answers, every further one is a 503;
* ``corrupt_days``: process requests for these days get a complete HTTP answer
  whose GeoTIFF is cut short (a corrupt scene);
* wrong client credentials: the token endpoint answers 401 ``invalid_client``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import pystac
import rasterio
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from rasterio.warp import Resampling, reproject
from shapely.geometry import box, shape

from tests.fakes.httpserver import running

CLIENT_ID = "fake-client-id"
CLIENT_SECRET = "fake-client-secret-0123456789"
_TOKEN = "e30." + base64.urlsafe_b64encode(json.dumps({"azp": CLIENT_ID}).encode()).decode() + ".x"


def _day(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class FakeSentinelHub(ThreadingHTTPServer):
    """The fake service over a demo archive (``catalog.json``)."""

    daemon_threads = True

    def __init__(self, catalog: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.items: dict[str, list[pystac.Item]] = {"sentinel-2-l2a": [], "sentinel-1-grd": []}
        for item in pystac.Catalog.from_file(str(catalog)).get_items(recursive=True):
            key = "sentinel-2-l2a" if item.collection_id == "sentinel-2-l2a" else "sentinel-1-grd"
            self.items[key].append(item)
        for v in self.items.values():
            v.sort(key=lambda it: it.datetime or dt.datetime.min)
        self.faults: list[str] = []
        self.always: str | None = None
        self.fail_after: int | None = None
        self.corrupt_days: set[dt.date] = set()
        self.counts: Counter[str] = Counter()
        self.secrets_seen: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        """Base URL (the ``sh_base_url``)."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint."""
        return f"{self.url}/oauth/token"

    def next_fault(self) -> str | None:
        with self.lock:
            if self.always:
                return self.always
            if self.fail_after is not None and self.counts["process-ok"] >= self.fail_after:
                return "503"
            return self.faults.pop(0) if self.faults else None

    # -- answers ---------------------------------------------------------------------
    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        coll = body["collections"][0]
        t0, t1 = (_day(t) for t in body["datetime"].split("/"))
        area = box(*body["bbox"])
        found = [
            it for it in self.items.get(coll, [])
            if it.datetime is not None and t0 <= it.datetime <= t1
            and shape(it.geometry).intersects(area)
        ]
        start = int(body.get("next") or 0)
        limit = int(body.get("limit", 100))
        page = found[start : start + limit]
        feats = [
            {
                "type": "Feature",
                "id": it.id,
                "geometry": it.geometry,
                "properties": {
                    "datetime": it.datetime.isoformat().replace("+00:00", "Z"),
                    **({"sat:orbit_state": it.properties["sat:orbit_state"]}
                       if coll == "sentinel-1-grd" else
                       {"eo:cloud_cover": it.properties.get("eo:cloud_cover")}),
                },
            }
            for it in page if it.datetime is not None
        ]
        ctx: dict[str, Any] = {"limit": limit, "returned": len(feats)}
        if start + limit < len(found):
            ctx["next"] = start + limit
        return {"type": "FeatureCollection", "features": feats, "context": ctx}

    def process(self, body: dict[str, Any]) -> tuple[bytes, dt.date]:
        bounds = body["input"]["bounds"]
        epsg = int(bounds["properties"]["crs"].rstrip("/").split("/")[-1])
        x0, y0, x1, y1 = bounds["bbox"]
        w, h = body["output"]["width"], body["output"]["height"]
        data_in = body["input"]["data"][0]
        flt = data_in["dataFilter"]
        t0, t1 = _day(flt["timeRange"]["from"]), _day(flt["timeRange"]["to"])
        dst_tr = from_bounds(x0, y0, x1, y1, w, h)
        crs = f"EPSG:{epsg}"
        if data_in["type"] == "sentinel-2-l2a":
            assert data_in["processing"]["harmonizeValues"] is True
            items = [it for it in self.items["sentinel-2-l2a"] if t0 <= it.datetime <= t1]
            out = np.zeros((3, h, w), np.uint16)
            for it in items[-1:]:
                for band, key in enumerate(("B04_10m", "B08_10m", "SCL_20m")):
                    out[band] = _warp(it.assets[key].get_absolute_href(), dst_tr, crs, (h, w),
                                      Resampling.nearest, np.uint16)
                dn = out[:2].astype(np.int32)
                valid = (dn[0] > 0) & (dn[1] > 0)
                out[:2] = np.where(valid, np.clip(dn - 1000, 0, None), 0).astype(np.uint16)
                out[2] = np.where(valid, out[2], 0)
            dtype = "uint16"
        else:
            proc = data_in["processing"]
            assert proc["backCoeff"] == "GAMMA0_TERRAIN" and proc["orthorectify"] is True
            direction = flt.get("orbitDirection", "").lower()
            items = [it for it in self.items["sentinel-1-grd"] if t0 <= it.datetime <= t1
                     and (not direction or it.properties["sat:orbit_state"] == direction)]
            out = np.full((2, h, w), np.nan, np.float32)
            for it in items[-1:]:
                for band, key in enumerate(("vv", "vh")):
                    out[band] = _warp(it.assets[key].get_absolute_href(), dst_tr, crs, (h, w),
                                      Resampling.bilinear, np.float32)
            dtype = "float32"
        profile = dict(driver="GTiff", width=w, height=h, count=out.shape[0], dtype=dtype,
                       crs=crs, transform=dst_tr)
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                dst.write(out)
            return bytes(mem.read()), t0.date()


def _warp(href: str, transform: Any, crs: str, shape_: tuple[int, int], how: Resampling,
          dtype: Any) -> np.ndarray:
    dst = np.zeros(shape_, dtype) if dtype != np.float32 else np.full(shape_, np.nan, dtype)
    with rasterio.open(href) as src:
        reproject(rasterio.band(src, 1), dst, dst_transform=transform, dst_crs=crs,
                  resampling=how, dst_nodata=0 if dtype != np.float32 else np.nan)
    return dst


class _Handler(BaseHTTPRequestHandler):
    server: FakeSentinelHub
    timeout = 10
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _error(self, status: int, reason: str, message: str,
               headers: dict[str, str] | None = None) -> None:
        self._json(status, {"error": {"status": status, "reason": reason, "message": message}},
                   headers)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0]
        srv = self.server
        with srv.lock:
            srv.counts[path] += 1
        if path == "/oauth/token":
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            srv.secrets_seen.append(form.get("client_secret", ""))
            if form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET:
                self._json(200, {"access_token": _TOKEN, "token_type": "Bearer",
                                 "expires_in": 3600})
            else:
                self._json(401, {"error": "invalid_client",
                                 "error_description": "Invalid client credentials"})
            return
        if self.headers.get("Authorization") != f"Bearer {_TOKEN}":
            self._error(401, "Unauthorized", "Invalid or missing token")
            return
        body = json.loads(raw or b"{}")
        if path == "/api/v1/catalog/1.0.0/search":
            self._json(200, srv.search(body))
            return
        if path != "/api/v1/process":
            self._error(404, "Not Found", path)
            return
        fault = srv.next_fault()
        if fault == "429":
            self._error(429, "Too Many Requests", "rate limit", {"Retry-After": "20"})
            return
        if fault == "503":
            self._error(503, "Service Unavailable", "try again later")
            return
        data, day = srv.process(body)
        if fault == "truncate":
            self.send_response(200)
            self.send_header("Content-Type", "image/tiff")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if day in srv.corrupt_days:
            data = data[: len(data) // 3]
        with srv.lock:
            srv.counts["process-ok"] += 1
        self._send(200, data, "image/tiff")


@contextmanager
def serve(catalog: Path) -> Iterator[FakeSentinelHub]:
    """Run the fake on 127.0.0.1 for the duration of the block."""
    with running(FakeSentinelHub(catalog)) as server:
        yield server
