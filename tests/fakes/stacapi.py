"""A STAC API on 127.0.0.1 over a static archive: landing page, conformance,
collections and item search (GET and POST) with paging, plus the archive's files
with range requests, as pystac-client and GDAL expect from e.g. the CDSE STAC.

``page_size`` caps every page, so a search over a season must follow ``next`` links.
``items`` adds real item JSON, served exactly as given (their collections are listed
too); a function of the server's base URL, so the items' hrefs can point at it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pystac
from shapely.geometry import box, shape

from tests.fakes.httpserver import RangeServer, _Handler, running

CONFORMS = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/collections",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]


class StacApiServer(RangeServer):
    """Serves ``root`` (a static catalog folder) as a STAC API."""

    def __init__(self, root: Path, page_size: int = 5,
                 items: Callable[[str], list[dict[str, Any]]] | None = None) -> None:
        super().__init__(root)
        self.RequestHandlerClass = _ApiHandler
        self.page_size = page_size
        self.searches: list[dict[str, Any]] = []
        self.collections: dict[str, dict[str, Any]] = {}
        self.items: list[dict[str, Any]] = []
        if (root / "catalog.json").is_file():
            self._add_catalog(root)
        for raw in items(self.url) if items else []:
            cid = raw["collection"]
            self.collections.setdefault(cid, {
                "type": "Collection", "id": cid, "stac_version": "1.0.0",
                "description": cid, "license": "other", "links": [],
                "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                           "temporal": {"interval": [[None, None]]}},
            })
            self.items.append(raw)

    def _add_catalog(self, root: Path) -> None:
        cat = pystac.Catalog.from_file(str(root / "catalog.json"))
        cat.make_all_asset_hrefs_absolute()
        for c in cat.get_children():
            self.collections[c.id] = c.to_dict(include_self_link=False, transform_hrefs=False)
        prefix = str(self.root)
        for item in cat.get_items(recursive=True):
            d = item.to_dict(include_self_link=False, transform_hrefs=False)
            for asset in d["assets"].values():
                href = str(Path(asset["href"]).resolve())
                if href.startswith(prefix):
                    asset["href"] = self.url + href[len(prefix):]
            d["links"] = []
            d["collection"] = item.collection_id
            self.items.append(d)


def _parse_datetime(text: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    if not text:
        return None, None
    parts = text.split("/") if "/" in text else [text, text]

    def one(s: str) -> dt.datetime | None:
        if s in ("", ".."):
            return None
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))

    return one(parts[0]), one(parts[1])


class _ApiHandler(_Handler):
    server: StacApiServer

    def _json(self, obj: Any, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        u = urlparse(self.path)
        base = self.server.url
        if u.path in ("", "/"):
            self._json({
                "type": "Catalog", "id": "fake-stac-api", "stac_version": "1.0.0",
                "description": "fake STAC API on loopback", "conformsTo": CONFORMS,
                "links": [
                    {"rel": "self", "href": f"{base}/", "type": "application/json"},
                    {"rel": "root", "href": f"{base}/", "type": "application/json"},
                    {"rel": "conformance", "href": f"{base}/conformance"},
                    {"rel": "data", "href": f"{base}/collections"},
                    {"rel": "search", "href": f"{base}/search", "method": "GET",
                     "type": "application/geo+json"},
                    {"rel": "search", "href": f"{base}/search", "method": "POST",
                     "type": "application/geo+json"},
                ],
            })
        elif u.path == "/conformance":
            self._json({"conformsTo": CONFORMS})
        elif u.path == "/collections":
            self._json({"collections": [self._collection(c) for c in self.server.collections],
                        "links": []})
        elif u.path.startswith("/collections/") and u.path.count("/") == 2:
            cid = u.path.rsplit("/", 1)[1]
            if cid not in self.server.collections:
                self._json({"code": "NotFound"}, 404)
            else:
                self._json(self._collection(cid))
        elif u.path == "/search":
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            params: dict[str, Any] = dict(q)
            if "collections" in q:
                params["collections"] = q["collections"].split(",")
            if "bbox" in q:
                params["bbox"] = [float(x) for x in q["bbox"].split(",")]
            if "intersects" in q:
                params["intersects"] = json.loads(q["intersects"])
            self._search(params)
        else:
            super().do_GET()

    def do_POST(self) -> None:
        if urlparse(self.path).path != "/search":
            self.send_error(404)
            return
        n = int(self.headers.get("Content-Length") or 0)
        self._search(json.loads(self.rfile.read(n) or b"{}"))

    def _collection(self, cid: str) -> dict[str, Any]:
        d = dict(self.server.collections[cid])
        d["links"] = [{"rel": "self", "href": f"{self.server.url}/collections/{cid}"},
                      {"rel": "items", "href": f"{self.server.url}/collections/{cid}/items"}]
        return d

    def _search(self, params: dict[str, Any]) -> None:
        self.server.searches.append(params)
        cols = set(params.get("collections") or [])
        geom = None
        if params.get("intersects"):
            geom = shape(params["intersects"])
        elif params.get("bbox"):
            geom = box(*params["bbox"][:4])
        start, end = _parse_datetime(params.get("datetime"))
        hits = []
        for it in self.server.items:
            if cols and it["collection"] not in cols:
                continue
            when = dt.datetime.fromisoformat(it["properties"]["datetime"].replace("Z", "+00:00"))
            if (start and when < start) or (end and when > end):
                continue
            if geom is not None and not shape(it["geometry"]).intersects(geom):
                continue
            hits.append(it)
        limit = min(int(params.get("limit") or 10), self.server.page_size)
        offset = int(params.get("token") or 0)
        page = hits[offset : offset + limit]
        links = []
        if offset + limit < len(hits):
            links.append({"rel": "next", "href": f"{self.server.url}/search", "method": "POST",
                          "type": "application/geo+json",
                          "body": {**params, "token": str(offset + limit)}, "merge": False})
        self._json({"type": "FeatureCollection", "features": page, "links": links,
                    "numberMatched": len(hits), "numberReturned": len(page)})


@contextmanager
def serve_api(root: Path, page_size: int = 5,
              items: Callable[[str], list[dict[str, Any]]] | None = None
              ) -> Iterator[StacApiServer]:
    """Run a :class:`StacApiServer` over ``root`` for the duration of the block."""
    with running(StacApiServer(root, page_size, items)) as server:
        yield server
