"""A QGIS project (``products.qgs``) that puts every stack's dates on the temporal controller.

QGIS before 3.38 gives a raster layer one fixed time range, not one per band.
The project therefore holds, per product, a group with one layer per 6-day
date: the same GeoTIFF, rendered on that date's band with the product's style,
and a fixed temporal range of that bin. Opening the project and pressing play
on the temporal controller steps through the dates; with the controller off,
the layer tree lists the dates. Paths are relative, so the folder can move.

QGIS 3.22 tests a fixed range against a controller frame ``[begin, end)`` as if
both were closed (``QgsTemporalRange::overlaps`` uses only the layer's flags),
so a layer that starts or ends on a bin edge is also drawn in the neighbouring
frame (and, higher in the tree, can hide the right date). Each layer therefore
covers its bin shrunk by one second (``TICK``) at both ends: exactly one layer
per stack meets each frame, in QGIS 3.22 as in later versions. The
project CRS and time range use the elements QGIS 3.22 itself writes and reads
(``<SpatialRefSys><ProjectionsEnabled>`` enables ``<projectCrs>``;
``<TemporalRange>`` under ``<ProjectTimeSettings>``); ``tests/test_qgis.py``
compares the file with the one PyQGIS saves after reading it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape, quoteattr

import pandas as pd
from odc.geo.geobox import GeoBox

from pipeline.timegrid import TimeGrid

#: Margin of a layer's range inside its bin, at each end (QGIS stores seconds).
TICK = pd.Timedelta(seconds=1)


def _srs(geobox: GeoBox) -> str:
    assert geobox.crs is not None
    epsg = geobox.crs.epsg
    auth = f"EPSG:{epsg}" if epsg else ""
    return (f"<spatialrefsys><wkt>{escape(geobox.crs.to_wkt())}</wkt>"
            f"<authid>{auth}</authid></spatialrefsys>")


def _iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_project(
    geobox: GeoBox,
    grid: TimeGrid,
    stacks: Sequence[tuple[str, str, str]],
    renderer: Callable[[str, int], str],
) -> str:
    """Project XML: one layer per stack and date of ``grid``, each with its bin as time
    range. ``stacks`` = ``(file name, group title, style kind)``; ``renderer`` is
    ``make_renderer(kind, band) -> str`` (the pipe's renderer element)."""
    dates, step_days = grid.iso_dates(), grid.step_days
    x0, y0, x1, y1 = geobox.extent.boundingbox
    extent = (f"<extent><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
              f"<ymax>{y1}</ymax></extent>")
    srs = _srs(geobox)
    tree, layers = [], []
    for g, (fname, title, kind) in enumerate(stacks):
        nodes = []
        for k, d in enumerate(dates, start=1):
            start = pd.Timestamp(d) + TICK
            end = pd.Timestamp(d) + pd.Timedelta(days=step_days) - TICK
            lid = f"{fname.replace('.', '_')}_{k:03d}"
            name = f"{title} {d}"
            checked = "Qt::Checked" if g == 0 else "Qt::Unchecked"
            nodes.append(f'      <layer-tree-layer id="{lid}" name={quoteattr(name)} '
                         f'source="./{fname}" providerKey="gdal" checked="{checked}" '
                         'expanded="0"><customproperties/></layer-tree-layer>')
            layers.append(f"""    <maplayer type="raster" autoRefreshEnabled="0">
      {extent}
      <id>{lid}</id>
      <datasource>./{fname}</datasource>
      <layername>{escape(name)}</layername>
      <srs>{srs}</srs>
      <provider>gdal</provider>
      <temporal enabled="1" mode="0" fetchMode="0">
        <fixedRange><start>{_iso(start)}</start><end>{_iso(end)}</end></fixedRange>
      </temporal>
      <pipe>
{renderer(kind, k)}
      </pipe>
      <blendMode>0</blendMode>
    </maplayer>""")
        checked = "Qt::Checked" if g == 0 else "Qt::Unchecked"
        tree.append(f'    <layer-tree-group name={quoteattr(title)} checked="{checked}" '
                    f'expanded="{1 if g == 0 else 0}"><customproperties/>\n'
                    + "\n".join(nodes) + "\n    </layer-tree-group>")
    first = pd.Timestamp(dates[0])
    last = pd.Timestamp(dates[-1]) + pd.Timedelta(days=step_days)
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis projectname="s1s2-gapfill products" version="3.22.0">
  <homePath path=""/>
  <title>s1s2-gapfill products</title>
  <projectCrs>{srs}</projectCrs>
  <layer-tree-group><customproperties/>
{chr(10).join(tree)}
  </layer-tree-group>
  <projectlayers>
{chr(10).join(layers)}
  </projectlayers>
  <properties>
    <Paths><Absolute type="bool">false</Absolute></Paths>
    <SpatialRefSys><ProjectionsEnabled type="int">1</ProjectionsEnabled></SpatialRefSys>
  </properties>
  <ProjectTimeSettings cumulativeTemporalRange="0" timeStepUnit="d" timeStep="{step_days}"
      frameRate="1">
    <TemporalRange><start>{_iso(first)}</start><end>{_iso(last)}</end></TemporalRange>
  </ProjectTimeSettings>
</qgis>
"""
