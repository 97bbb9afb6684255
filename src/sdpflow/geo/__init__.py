"""Geospatial kernels of the web-tiles pipeline: plain functions on numpy arrays and shapely geometries.

No Dask, no run database, no CLI: each module is usable alone (from a notebook, a test).

- :mod:`~sdpflow.geo.tilemath`: tile matrix sets through morecantile (tiles of bounds, a tile's bounds).
- :mod:`~sdpflow.geo.vectors`: reading vector files (pyogrio), reprojection, simplification, tile assignment.
- :mod:`~sdpflow.geo.coverage`: exact per-pixel coverage fractions and centroid counts of polygons.
- :mod:`~sdpflow.geo.pyramid`: a parent tile from its 2×2 children.
- :mod:`~sdpflow.geo.render`: palettes and PNG web tiles (Pillow).
- :mod:`~sdpflow.geo.geotiff`: deterministic GeoTIFF writing (rasterio).
"""
