"""PyQGIS check of the products, run by tests/test_qgis.py with the system Python.

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_render.py OUT WORKDIR [BAND]

Prints one JSON object with what QGIS saw. Two parts:

- the single stack: ``OUT/ndvi_filled.tif`` opened as a layer, which must pick up
  ``ndvi_filled.qml`` as its default style by itself; band BAND rendered to
  ``WORKDIR/stack.png``.
- the netCDF product: ``OUT/ndvi_filled.nc``'s ``ndvi_filled`` opened as a layer.
- the project: ``OUT/products.qgs`` read, re-saved by QGIS as ``WORKDIR/resaved.qgs``
  (the caller compares the two files), then a ``QgsTemporalNavigationObject`` set
  up from the project's time settings, as the temporal controller does, steps
  through every frame. Each frame's map (the checked layers, in layer-tree order,
  at the project CRS, one output pixel per raster pixel) is rendered and its
  colours compared with the colours the layer style gives to each band's values:
  ``frames[i]["match"][b]`` is the share of pixels whose colour is band ``b+1``'s.
  Each frame is also saved upscaled with its date written on it
  (``WORKDIR/frame_NN.png``).

Standalone on purpose: the venv's Python cannot import qgis.
"""

import json
import os
import sys
from pathlib import Path


def _render(ms, QgsMapRendererParallelJob):
    job = QgsMapRendererParallelJob(ms)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def _rgb(img, w, h):
    return [[img.pixelColor(c, r).getRgb()[:3] for c in range(w)] for r in range(h)]


def _expected(lyr, band_count, w, h):
    """Per band, the colour the layer's own shader gives each pixel (None = nodata)."""
    prov = lyr.dataProvider()
    shader = lyr.renderer().shader()
    out = []
    for b in range(1, band_count + 1):
        block = prov.block(b, lyr.extent(), w, h)
        colours = []
        for r in range(h):
            row = []
            for c in range(w):
                if block.isNoData(r, c):
                    row.append(None)
                    continue
                ok, red, green, blue, _ = shader.shade(block.value(r, c))
                row.append((red, green, blue) if ok else None)
            colours.append(row)
        out.append(colours)
    return out


def _match(rendered, expected, background):
    """Share of pixels whose rendered colour is the expected one (within 2 levels)."""
    hits = total = 0
    for rrow, erow in zip(rendered, expected, strict=True):
        for got, want in zip(rrow, erow, strict=True):
            want = want or background
            total += 1
            hits += all(abs(a - b) <= 2 for a, b in zip(got, want, strict=True))
    return hits / total


def main(out: Path, work: Path, band: int) -> dict:
    from qgis.core import (
        Qgis,
        QgsApplication,
        QgsInterval,
        QgsMapRendererParallelJob,
        QgsMapSettings,
        QgsProject,
        QgsRasterLayer,
        QgsTemporalNavigationObject,
    )
    from qgis.PyQt.QtCore import QSize, Qt
    from qgis.PyQt.QtGui import QColor, QFont, QPainter

    app = QgsApplication([], False)
    app.initQgis()
    res: dict = {"qgis": Qgis.QGIS_VERSION}

    # the single stack, with the style QGIS finds beside it
    lyr = QgsRasterLayer(str(out / "ndvi_filled.tif"), "ndvi_filled", "gdal")
    res["valid"] = lyr.isValid()
    res["crs"] = lyr.crs().authid()
    res["band_count"] = lyr.bandCount()
    res["band_names"] = [lyr.bandName(i) for i in range(1, lyr.bandCount() + 1)]
    res["style_message"], ok = lyr.loadDefaultStyle()
    res["style_loaded"] = bool(ok)
    band = min(lyr.bandCount(), band)
    r = lyr.renderer()
    r.setBand(band)
    res["renderer"] = r.type()
    shader = r.shader().rasterShaderFunction()
    res["ramp"] = [(i.value, i.color.name()) for i in shader.colorRampItemList()]
    ms = QgsMapSettings()
    ms.setLayers([lyr])
    ms.setDestinationCrs(lyr.crs())
    ms.setExtent(lyr.extent())
    ms.setOutputSize(QSize(600, 600))
    ms.setBackgroundColor(QColor(Qt.white))
    res["png_saved"] = _render(ms, QgsMapRendererParallelJob).save(str(work / "stack.png"), "PNG")

    # the netCDF product's filled NDVI, one band per date
    nc = QgsRasterLayer(f'NETCDF:"{out / "ndvi_filled.nc"}":ndvi_filled', "nc", "gdal")
    res["nc"] = {"valid": nc.isValid(), "crs": nc.crs().authid(), "bands": nc.bandCount(),
                 "band_names": [nc.bandName(i) for i in range(1, nc.bandCount() + 1)]}

    # the project, as QGIS reads it and would save it
    proj = QgsProject.instance()
    res["project_read"] = proj.read(str(out / "products.qgs"))
    res["project_resaved"] = proj.write(str(work / "resaved.qgs"))
    res["project_crs"] = proj.crs().authid()
    ts = proj.timeSettings()
    rng = ts.temporalRange()
    res["time_range"] = [rng.begin().toString(Qt.ISODate), rng.end().toString(Qt.ISODate)]
    res["time_step"] = [ts.timeStep(), int(ts.timeStepUnit())]
    layers = list(proj.mapLayers().values())
    res["project_layers"] = len(layers)
    res["project_layers_valid"] = sum(1 for x in layers if x.isValid())
    res["temporal_layers"] = [
        [x.name(), x.temporalProperties().fixedTemporalRange().begin().toString(Qt.ISODate),
         x.temporalProperties().fixedTemporalRange().end().toString(Qt.ISODate),
         x.renderer().band() if hasattr(x.renderer(), "band") else None]
        for x in sorted(layers, key=lambda x: x.name()) if x.temporalProperties().isActive()
    ]

    # the temporal controller, frame by frame
    root = proj.layerTreeRoot()
    drawn = [x for x in root.layerOrder() if root.findLayer(x.id()).isVisible()]
    first = drawn[0]
    w, h = first.width(), first.height()
    expected = _expected(first, first.bandCount(), w, h)
    nav = QgsTemporalNavigationObject()
    nav.setNavigationMode(QgsTemporalNavigationObject.Animated)
    nav.setTemporalExtents(rng)
    nav.setFrameDuration(QgsInterval(ts.timeStep(), ts.timeStepUnit()))
    frames = []
    for i in range(nav.totalFrameCount()):
        nav.setCurrentFrameNumber(i)
        frame = nav.dateTimeRangeForFrameNumber(nav.currentFrameNumber())
        fs = QgsMapSettings()
        fs.setLayers(drawn)
        fs.setDestinationCrs(proj.crs())
        fs.setExtent(first.extent())
        fs.setOutputSize(QSize(w, h))
        fs.setBackgroundColor(QColor(Qt.white))
        fs.setIsTemporal(True)
        fs.setTemporalRange(frame)
        rendered = _rgb(_render(fs, QgsMapRendererParallelJob), w, h)
        visible = [x.name() for x in drawn
                   if x.temporalProperties().isVisibleInTemporalRange(frame)]
        frames.append({
            "begin": frame.begin().toString(Qt.ISODate),
            "end": frame.end().toString(Qt.ISODate),
            "drawn": visible,
            "match": [_match(rendered, e, (255, 255, 255)) for e in expected],
        })
        fs.setOutputSize(QSize(10 * w, 10 * h))
        img = _render(fs, QgsMapRendererParallelJob)
        painter = QPainter(img)
        painter.setFont(QFont("Sans", 18))
        painter.setPen(QColor(Qt.black))
        painter.drawText(10, 30, f"frame {i + 1}: {frame.begin().toString('yyyy-MM-dd')}")
        painter.end()
        img.save(str(work / f"frame_{i + 1:02d}.png"), "PNG")
    res["frames"] = frames
    # colour distinctness of bands: share of pixels where bands a and b differ
    white = (255, 255, 255)
    filled = [[[c or white for c in row] for row in e] for e in expected]
    res["band_differs"] = [[1 - _match(ea, eb, white) for eb in expected] for ea in filled]
    return res


if __name__ == "__main__":
    work = Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    band = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    print(json.dumps(main(Path(sys.argv[1]), work, band)), flush=True)
    # QGIS 3.22 may crash tearing down layers at interpreter exit; the result is out.
    os._exit(0)
