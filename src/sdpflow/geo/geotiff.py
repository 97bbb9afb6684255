"""GeoTIFF tiles (rasterio): one float32 band per statistic, deflate, internally tiled, no timestamps.

The same array, bounds and CRS always give the same bytes (no DateTime tag, no software
version), so two runs can be compared by hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def write_geotiff(path: Path, bands: np.ndarray, bounds: tuple[float, float, float, float], crs,
                  names: Sequence[str], nodata: float | None = None) -> None:
    """Write ``bands`` (``(count, height, width)``, row 0 at the top) covering ``bounds`` (left, bottom, right, top in ``crs``);
    ``nodata`` (NaN for images with blank pixels) is recorded as the bands' nodata value."""
    import rasterio
    from rasterio.transform import from_bounds

    count, height, width = bands.shape
    profile = {
        "driver": "GTiff", "dtype": "float32", "count": count, "height": height, "width": width,
        "crs": crs, "transform": from_bounds(*bounds, width, height),
        "compress": "deflate", "predictor": 3, "tiled": width % 16 == 0 and height % 16 == 0,
        "blockxsize": min(256, width), "blockysize": min(256, height),
    }
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", **profile) as dataset:
            dataset.write(bands.astype(np.float32))
            for index, name in enumerate(names, start=1):
                dataset.set_band_description(index, name)


def read_geotiff(path: Path) -> np.ndarray:
    """The bands of a GeoTIFF written by :func:`write_geotiff`, ``(count, height, width)`` float32."""
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.read()
