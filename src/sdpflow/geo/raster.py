"""Images onto tiles: a FITS image with a celestial WCS, or a GeoTIFF, sampled at a tile's pixel centres.

**Sky to map.** A celestial image's (RA, Dec) — in the image's own frame, as its WCS gives
them — become longitude and latitude of WGS 84 as ``lon = −RA`` (wrapped into [−180°, 180°))
and ``lat = Dec``. The minus sign shows the sky as it is seen from inside the sphere and as
every sky viewer draws it: north up, east (growing RA) to the left, so a tile looks like the
FITS image in DS9. RA 0° is longitude 0°; the seam is at RA 180°. An image that crosses it is
split into two boxes of tiles, and an image that holds a pole reaches latitude ±90°.

Pixel coordinates are 0-based with integers at pixel centres (numpy's row, column; FITS's
``CRPIX − 1``; a GeoTIFF's affine transform shifted by half a pixel). Pixels that are NaN (or
the FITS ``BLANK`` value, or a GeoTIFF's nodata) are blank: a tile pixel whose nearest image
pixel is blank, or lies outside the image, is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sdpflow.errors import DataError, InputError

#: Longitude and latitude in degrees (x/y order) of the raster's footprint, for the sky mapping.
LONLAT = "EPSG:4326"
#: Pixels along each edge sampled to find an image's footprint.
EDGE_SAMPLES = 256
#: Pixel coordinates within this of an integer are taken as that integer (grids that line up stay exact).
SNAP = 1e-6


def sky_longitude(ra_deg: np.ndarray) -> np.ndarray:
    """Map longitude (degrees, [−180, 180)) of right ascension ``ra_deg`` (degrees): ``−RA`` wrapped."""
    return (180.0 - np.asarray(ra_deg, dtype=float)) % 360.0 - 180.0


def sky_ra(lon_deg: np.ndarray) -> np.ndarray:
    """Right ascension (degrees, [0, 360)) shown at map longitude ``lon_deg``: the inverse of :func:`sky_longitude`."""
    return (-np.asarray(lon_deg, dtype=float)) % 360.0


@dataclass(frozen=True)
class FitsImage:
    """One plane of a FITS image with a celestial WCS, read window by window (``astropy.io.fits`` sections)."""

    path: str
    plane: tuple[int, ...]  # indices along the axes before (numpy order) the two celestial ones
    shape: tuple[int, int]  # rows, columns
    unit: str
    wcs: Any  # the celestial part of the image's astropy WCS

    def pixels_of_lonlat(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Column and row (float, 0-based) of map points ``lon``, ``lat`` (degrees); NaN off the projection."""
        wcs = self.wcs
        world: list[Any] = [None, None]
        world[wcs.wcs.lng], world[wcs.wcs.lat] = sky_ra(lon), np.asarray(lat, dtype=float)
        with np.errstate(invalid="ignore"):
            column, row = wcs.world_to_pixel_values(*world)
        return np.asarray(column, dtype=float), np.asarray(row, dtype=float)

    def lonlat_of_pixels(self, column: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map longitude and latitude (degrees) of pixel coordinates."""
        wcs = self.wcs
        with np.errstate(invalid="ignore"):
            world = wcs.pixel_to_world_values(column, row)
        return sky_longitude(world[wcs.wcs.lng]), np.asarray(world[wcs.wcs.lat], dtype=float)

    def read(self, rows: slice, columns: slice) -> np.ndarray:
        """The pixels of a window, float32, NaN where blank."""
        from astropy.io import fits

        with fits.open(self.path) as hdus:  # memory-mapped unless scaled (BZERO, BSCALE): astropy then reads
            hdu = hdus[0]
            data = np.asarray(hdu.section[self.plane + (rows, columns)], dtype=np.float32)
            blank = hdu.header.get("BLANK") if hdu.header.get("BITPIX", -32) > 0 else None
        if blank is not None:  # an integer image: BLANK marks the blank pixels (after scaling, compare raw values)
            with fits.open(self.path, memmap=True, do_not_scale_image_data=True) as raw:
                data[np.asarray(raw[0].section[self.plane + (rows, columns)]) == blank] = np.nan
        return data


@dataclass(frozen=True)
class GeoTiffImage:
    """One band of a GeoTIFF (any CRS), read window by window (rasterio)."""

    path: str
    band: int
    shape: tuple[int, int]
    unit: str
    crs_wkt: str
    transform: tuple[float, ...]  # affine a, b, c, d, e, f: pixel (column, row) corners to CRS x, y
    nodata: float | None

    def _transformer(self, inverse: bool):
        return _transformer(LONLAT, self.crs_wkt) if not inverse else _transformer(self.crs_wkt, LONLAT)

    def pixels_of_lonlat(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from affine import Affine

        x, y = self._transformer(False).transform(lon, lat)
        column, row = ~Affine(*self.transform) @ (np.asarray(x), np.asarray(y))
        return np.asarray(column) - 0.5, np.asarray(row) - 0.5

    def lonlat_of_pixels(self, column: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from affine import Affine

        x, y = Affine(*self.transform) @ (np.asarray(column) + 0.5, np.asarray(row) + 0.5)
        lon, lat = self._transformer(True).transform(x, y)
        return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)

    def read(self, rows: slice, columns: slice) -> np.ndarray:
        import rasterio
        from rasterio.windows import Window

        window = Window.from_slices(rows, columns)
        with rasterio.open(self.path) as dataset:
            data = dataset.read(self.band, window=window).astype(np.float32)
        if self.nodata is not None and not np.isnan(self.nodata):
            data[data == np.float32(self.nodata)] = np.nan
        return data


@lru_cache(maxsize=32)
def _transformer(source: str, target: str):
    from pyproj import Transformer

    return Transformer.from_crs(source, target, always_xy=True)


def open_raster(path: str | Path, band: int = 1) -> FitsImage | GeoTiffImage:
    """The image at ``path`` (FITS, recognised by its first bytes, or anything GDAL reads); ``band`` counts from 1.

    Raises InputError (one line naming the file) when it is not an image with a sky or map
    coordinate system, or has no such band.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"raster {path} does not exist or is not a file: check the path")
    with open(path, "rb") as handle:
        is_fits = handle.read(9) == b"SIMPLE  ="
    return _open_fits(path, band) if is_fits else _open_geotiff(path, band)


def _open_fits(path: Path, band: int) -> FitsImage:
    from astropy.io import fits
    from astropy.wcs import WCS

    try:
        with fits.open(path, memmap=True) as hdus:
            header = hdus[0].header.copy()
    except Exception as error:  # noqa: BLE001 - astropy raises OSError or ValueError on broken files
        raise DataError(f"raster {path}: cannot be read as FITS ({error}): check the file") from None
    naxis = header.get("NAXIS", 0)
    wcs = WCS(header)
    if naxis < 2 or not wcs.has_celestial or sorted((wcs.wcs.lng, wcs.wcs.lat)) != [0, 1]:
        raise InputError(f"raster {path}: not an image whose first two axes are sky coordinates (RA/Dec or "
                         "GLON/GLAT in CTYPE1, CTYPE2): tile a FITS image with a celestial WCS")
    extra = [header[f"NAXIS{axis}"] for axis in range(naxis, 2, -1)]  # numpy order: the last FITS axis first
    planes = int(np.prod(extra)) if extra else 1
    if band > planes:
        raise InputError(f"raster {path}: has {planes} plane(s), not {band}: choose --raster-band 1..{planes}")
    plane = tuple(int(index) for index in np.unravel_index(band - 1, extra)) if extra else ()
    return FitsImage(str(path), plane, (int(header["NAXIS2"]), int(header["NAXIS1"])),
                     str(header.get("BUNIT", "")).strip(), wcs.celestial)


def _open_geotiff(path: Path, band: int) -> GeoTiffImage:
    import rasterio

    try:
        with rasterio.open(path) as dataset:
            if dataset.crs is None:
                raise InputError(f"raster {path}: has no coordinate reference system: give it one (gdal_edit.py -a_srs)")
            if band > dataset.count:
                raise InputError(f"raster {path}: has {dataset.count} band(s), not {band}: "
                                 f"choose --raster-band 1..{dataset.count}")
            return GeoTiffImage(str(path), band, (dataset.height, dataset.width), dataset.units[band - 1] or "",
                                dataset.crs.to_wkt(), tuple(dataset.transform)[:6], dataset.nodatavals[band - 1])
    except rasterio.errors.RasterioIOError:
        raise InputError(f"raster {path}: neither FITS nor a raster GDAL reads: give a FITS image or a GeoTIFF") from None


def footprint_lonlat(image) -> list[tuple[float, float, float, float]]:
    """Boxes ``(west, south, east, north)`` in degrees covering the image: one, or two when it crosses ±180°."""
    rows, columns = image.shape
    edge_c = np.linspace(-0.5, columns - 0.5, EDGE_SAMPLES)
    edge_r = np.linspace(-0.5, rows - 0.5, EDGE_SAMPLES)
    column = np.concatenate([edge_c, edge_c, np.full(EDGE_SAMPLES, -0.5), np.full(EDGE_SAMPLES, columns - 0.5)])
    row = np.concatenate([np.full(EDGE_SAMPLES, -0.5), np.full(EDGE_SAMPLES, rows - 0.5), edge_r, edge_r])
    lon, lat = image.lonlat_of_pixels(column, row)
    good = np.isfinite(lon) & np.isfinite(lat)
    if not good.any():
        raise InputError(f"raster {image.path}: its edges have no sky or map coordinates: check its WCS or CRS")
    lon, lat = lon[good], lat[good]
    south, north = float(lat.min()), float(lat.max())
    for pole in (90.0, -90.0):  # a pole inside the image: every longitude, up to the pole
        column_p, row_p = image.pixels_of_lonlat(np.array([0.0]), np.array([pole]))
        if -0.5 <= column_p[0] < columns - 0.5 and -0.5 <= row_p[0] < rows - 0.5:
            return [(-180.0, min(south, pole), 180.0, max(north, pole))]
    if lon.max() - lon.min() <= 180.0:
        return [(float(lon.min()), south, float(lon.max()), north)]
    east_part, west_part = lon[lon >= 0], lon[lon < 0]  # across the seam: from the east part to +180, and on from −180
    return [(float(east_part.min()), south, 180.0, north), (-180.0, south, float(west_part.max()), north)]


def pixel_centres(bounds: tuple[float, float, float, float], size: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y ``(size, size)`` of a tile's pixel centres (row 0 at the top), in the tile's CRS."""
    left, bottom, right, top = bounds
    x = left + (np.arange(size) + 0.5) * ((right - left) / size)
    y = top - (np.arange(size) + 0.5) * ((top - bottom) / size)
    return np.meshgrid(x, y)


def sample(image, lon: np.ndarray, lat: np.ndarray, method: Literal["nearest", "bilinear"]) -> np.ndarray:
    """The image at map points ``lon``, ``lat`` (degrees, any shape): float32 of the same shape, NaN where blank.

    ``nearest`` takes the pixel holding the point; ``bilinear`` weighs the four pixel centres
    around it (at the image's edge, the edge pixel stands in for the one beyond; a blank
    neighbour drops out and the weights of the others are renormalised). A point whose own
    pixel is blank or outside the image is NaN either way.
    """
    rows, columns = image.shape
    column, row = image.pixels_of_lonlat(lon, lat)
    column, row = _snapped(column), _snapped(row)
    inside = (column >= -0.5) & (column < columns - 0.5) & (row >= -0.5) & (row < rows - 0.5)
    result = np.full(np.shape(lon), np.nan, dtype=np.float32)
    if not inside.any():
        return result
    column, row = column[inside], row[inside]
    r0, r1 = int(np.floor(row.min())), int(np.ceil(row.max())) + 1
    c0, c1 = int(np.floor(column.min())), int(np.ceil(column.max())) + 1
    r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, rows), min(c1, columns)
    window = image.read(slice(r0, r1), slice(c0, c1)).astype(np.float64)
    local_r, local_c = row - r0, column - c0
    height, width = window.shape
    near = window[np.clip(np.rint(local_r).astype(np.intp), 0, height - 1),
                  np.clip(np.rint(local_c).astype(np.intp), 0, width - 1)]
    if method == "nearest":
        result[inside] = near
        return result
    base_r, base_c = np.floor(local_r), np.floor(local_c)
    frac_r, frac_c = local_r - base_r, local_c - base_c
    total = np.zeros_like(local_r)
    weights = np.zeros_like(local_r)
    for step_r, weight_r in ((0, 1 - frac_r), (1, frac_r)):
        for step_c, weight_c in ((0, 1 - frac_c), (1, frac_c)):
            values = window[np.clip(base_r.astype(np.intp) + step_r, 0, height - 1),
                            np.clip(base_c.astype(np.intp) + step_c, 0, width - 1)]
            weight = np.where(np.isfinite(values), weight_r * weight_c, 0.0)
            total += weight * np.nan_to_num(values)
            weights += weight
    with np.errstate(invalid="ignore", divide="ignore"):
        result[inside] = np.where(np.isfinite(near) & (weights > 0), total / weights, np.nan)
    return result


def _snapped(values: np.ndarray) -> np.ndarray:
    nearest = np.rint(values)
    return np.where(np.abs(values - nearest) < SNAP, nearest, values)


def percentile_range(image, percentiles: tuple[float, float], max_samples: int = 4_000_000) -> tuple[float, float] | None:
    """The ``percentiles`` of the image's finite pixels (every k-th row and column: at most ``max_samples``).

    None when the image has no finite pixel. Read in blocks of rows, so memory stays bounded.
    """
    rows, columns = image.shape
    step = max(1, int(np.ceil(np.sqrt(rows * columns / max_samples))))
    block = max(step, (1 << 22) // max(columns, 1) // step * step)
    samples = []
    for start in range(0, rows, block):
        values = image.read(slice(start, min(start + block, rows)), slice(0, columns))[::step, ::step]
        samples.append(values[np.isfinite(values)])
    finite = np.concatenate(samples)
    if finite.size == 0:
        return None
    low, high = np.percentile(finite, percentiles)
    return float(low), float(high)
