"""PyQGIS check of the products, run by tests/test_qgis.py with the system Python.

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_render.py OUT PNG

Loads ``OUT/ndvi_filled.tif`` offscreen, applies ``ndvi_filled.qml``, renders
one date to PNG, opens ``OUT/products.qgs`` and prints one JSON object with
what QGIS saw (CRS, band count and names, renderer, temporal ranges).
Standalone on purpose: the venv's Python cannot import qgis.
"""

import json
import os
import sys
from pathlib import Path


def main(out: Path, png: Path) -> dict:
    from qgis.core import (
        QgsApplication,
        QgsDateTimeRange,
        QgsMapRendererParallelJob,
        QgsMapSettings,
        QgsProject,
        QgsRasterLayer,
    )
    from qgis.PyQt.QtCore import QDateTime, QSize, Qt
    from qgis.PyQt.QtGui import QColor

    app = QgsApplication([], False)
    app.initQgis()
    from qgis.core import Qgis

    res: dict = {"qgis": Qgis.QGIS_VERSION}
    lyr = QgsRasterLayer(str(out / "ndvi_filled.tif"), "ndvi_filled", "gdal")
    res["valid"] = lyr.isValid()
    res["crs"] = lyr.crs().authid()
    res["band_count"] = lyr.bandCount()
    res["band_names"] = [lyr.bandName(i) for i in range(1, lyr.bandCount() + 1)]
    res["style_message"], ok = lyr.loadNamedStyle(str(out / "ndvi_filled.qml"))
    res["style_loaded"] = bool(ok)
    band = min(lyr.bandCount(), int(sys.argv[3]) if len(sys.argv) > 3 else 1)
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
    job = QgsMapRendererParallelJob(ms)
    job.start()
    job.waitForFinished()
    img = job.renderedImage()
    res["png_saved"] = img.save(str(png), "PNG")
    res["rendered_band"] = band
    res["rendered_band_name"] = lyr.bandName(band)

    proj = QgsProject.instance()
    res["project_read"] = proj.read(str(out / "products.qgs"))
    layers = list(proj.mapLayers().values())
    res["project_layers"] = len(layers)
    res["project_layers_valid"] = sum(1 for x in layers if x.isValid())
    ranges = []
    for x in sorted(layers, key=lambda x: x.name()):
        tp = x.temporalProperties()
        if tp.isActive():
            fr = tp.fixedTemporalRange()
            ranges.append([x.name(), fr.begin().toString(Qt.ISODate), fr.end().toString(Qt.ISODate),
                           x.renderer().band() if hasattr(x.renderer(), "band") else None])
    res["temporal_layers"] = ranges
    # which layers the temporal controller would draw on one date
    probe = ranges[len(ranges) // 2][1] if ranges else None
    if probe:
        t = QDateTime.fromString(probe, Qt.ISODate).addDays(1)
        rng = QgsDateTimeRange(t, t)
        res["probe_date"] = t.toString(Qt.ISODate)
        res["drawn_on_probe"] = [x.name() for x in layers
                                 if x.temporalProperties().isVisibleInTemporalRange(rng)]
    return res


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))), flush=True)
    # QGIS 3.22 may crash tearing down layers at interpreter exit; the result is out.
    os._exit(0)
