"""The tiles pipeline on one image (``--raster``): a FITS image with a celestial WCS lands at the right map
pixels (east to the left), blank pixels are transparent, and a GeoTIFF's values survive the tiles exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from astropy.io import fits  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.ndimage import map_coordinates  # noqa: E402

from sdpflow.config.tiles import TilesConfig  # noqa: E402
from sdpflow.geo.raster import sky_longitude, sky_ra  # noqa: E402
from sdpflow.geo.tilemath import get_tms, tile_bounds, tile_indices, TileIndex  # noqa: E402
from sdpflow.pipelines import start_run  # noqa: E402
from sdpflow.radio.fits import image_wcs  # noqa: E402
from sdpflow.store import RunStore  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NPIX, CELL_DEG = 200, 10 / 3600
CENTRE_DEG = (150.0, 2.0)
SOURCES = [((120, 50), 5.0), ((120, 150), 3.0)]  # (row, column) in the FITS array, peak Jy/beam
BLANK_ROWS = 30  # the first rows (southern edge) are blank


def _sky_image_data() -> np.ndarray:
    """Two Gaussians (σ 2 pixels) and noise; the first rows blank."""
    rows, columns = np.mgrid[:NPIX, :NPIX]
    data = np.random.default_rng(3).normal(0, 0.01, (NPIX, NPIX))
    for (row, column), peak in SOURCES:
        data += peak * np.exp(-((rows - row) ** 2 + (columns - column) ** 2) / (2 * 2.0 ** 2))
    data[:BLANK_ROWS] = np.nan
    return data.astype(np.float32)


def _sky_image(path: Path) -> tuple[np.ndarray, object]:
    """A 4-axis image as the imaging pipeline writes restored.fits (SIN, RA increasing to the left)."""
    wcs = image_wcs(NPIX, NPIX, phase_centre=tuple(np.radians(CENTRE_DEG)), cell_rad=np.radians(CELL_DEG),
                    frequency=[1.4e9])
    data = _sky_image_data()
    fits.PrimaryHDU(data[None, None].astype(np.float32), header=wcs.to_header()).writeto(path)
    return data, wcs


@pytest.fixture(scope="module")
def sky_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sky")
    data, wcs = _sky_image(folder / "restored.fits")
    store = RunStore(f"sqlite:///{folder / 'runs.db'}")
    config = TilesConfig(raster=str(folder / "restored.fits"), z_range=(6, 9), raster_stretch="linear")
    result = start_run("tiles", config, folder / "out", store=store, cluster_spec="local:1")
    return data, wcs, store, result.run_id, folder / "out"


def _mosaic(out: Path, z: int) -> tuple[np.ndarray, int, int]:
    """Every GeoTIFF tile at zoom z pasted into one array, and the column and row of its top-left tile."""
    paths = sorted((out / "geotiff" / str(z)).glob("*/*.tif"))
    keys = [(int(path.parent.name), int(path.stem)) for path in paths]
    x0, y0 = min(x for x, _ in keys), min(y for _, y in keys)
    size = 256
    width, height = (max(x for x, _ in keys) - x0 + 1) * size, (max(y for _, y in keys) - y0 + 1) * size
    whole = np.full((height, width), np.nan, dtype=np.float32)
    for path, (x, y) in zip(paths, keys):
        with rasterio.open(path) as dataset:
            whole[(y - y0) * size:(y - y0 + 1) * size, (x - x0) * size:(x - x0 + 1) * size] = dataset.read(1)
    return whole, x0, y0


def _map_pixel_centre(row: int, column: int, z: int, x0: int, y0: int) -> tuple[float, float]:
    """Longitude and latitude of the centre of a mosaic pixel (the inverse of :func:`_map_pixel`)."""
    tms = get_tms("WGS1984Quad")
    left, bottom, right, top = tile_bounds(tms, TileIndex(z, x0 + column // 256, y0 + row // 256))
    return (left + (column % 256 + 0.5) * (right - left) / 256, top - (row % 256 + 0.5) * (top - bottom) / 256)


def _map_pixel(lon: float, lat: float, z: int, x0: int, y0: int) -> tuple[int, int]:
    """Row and column, in the mosaic of zoom z, of the map pixel holding (lon, lat)."""
    tms = get_tms("WGS1984Quad")
    x, y = tile_indices(tms, np.array([lon]), np.array([lat]), z)
    left, bottom, right, top = tile_bounds(tms, TileIndex(z, int(x[0]), int(y[0])))
    column = int((lon - left) / (right - left) * 256)
    row = int((top - lat) / (top - bottom) * 256)
    return (int(y[0]) - y0) * 256 + row, (int(x[0]) - x0) * 256 + column


def test_sources_land_on_their_map_pixels_with_east_to_the_left(sky_run):
    _, wcs, _, _, out = sky_run
    whole, x0, y0 = _mosaic(out, 9)
    expected = []
    for (row, column), peak in SOURCES:
        ra, dec = wcs.celestial.pixel_to_world_values(column, row)
        map_row, map_column = _map_pixel(float(sky_longitude(ra)), float(dec), 9, x0, y0)
        window = whole[map_row - 12:map_row + 13, map_column - 12:map_column + 13]
        found = np.unravel_index(np.nanargmax(window), window.shape)
        assert (found[0] - 12, found[1] - 12) == (0, 0)  # the brightest map pixel is the one holding the peak's centre
        assert window[12, 12] == pytest.approx(peak, rel=0.05)  # a 0.49-cell map pixel, a 2-cell Gaussian
        expected.append((ra, map_column))
        # the map pixel's value is the bilinear interpolation of the image at its centre's sky position
        lon_c, lat_c = _map_pixel_centre(map_row, map_column, 9, x0, y0)
        image_column, image_row = wcs.celestial.world_to_pixel_values(float(sky_ra(lon_c)), lat_c)
        data = _sky_image_data()
        interpolated = map_coordinates(data, [[image_row], [image_column]], order=1)[0]
        assert window[12, 12] == pytest.approx(interpolated, rel=1e-5)
    (ra_a, column_a), (ra_b, column_b) = expected
    assert ra_b < ra_a and column_b > column_a  # smaller RA (further west) lies to the right: east is to the left
    assert np.nanmax(whole) == pytest.approx(5.0, rel=0.05)


def test_blank_pixels_and_the_sky_around_the_image_are_transparent(sky_run):
    data, wcs, store, run_id, out = sky_run
    whole, x0, y0 = _mosaic(out, 9)
    # a map point in the blank strip, one in the image, one south of the image
    points = {"blank": (10, 100), "data": (100, 100), "outside": (-40, 100)}
    index = json.loads((out / "raster.json").read_text())
    finite = data[np.isfinite(data)]
    assert index["value_range"] == pytest.approx(list(np.percentile(finite, (0.5, 99.9))), rel=1e-6)
    for name, (row, column) in points.items():
        ra, dec = wcs.celestial.pixel_to_world_values(column, row)
        lon, lat = float(sky_longitude(ra)), float(dec)
        tms = get_tms("WGS1984Quad")
        x, y = tile_indices(tms, np.array([lon]), np.array([lat]), 9)
        png = out / f"web/raster/9/{x[0]}/{y[0]}.png"
        assert png.exists()
        left, bottom, right, top = tile_bounds(tms, TileIndex(9, int(x[0]), int(y[0])))
        pixel = (int((top - lat) / (top - bottom) * 256), int((lon - left) / (right - left) * 256))
        alpha = np.asarray(Image.open(png))[..., 3][pixel]
        assert alpha == (255 if name == "data" else 0), name
    rows = store.result_rows(run_id, "raster_tiles")
    assert {row["z"] for row in rows} == {6, 7, 8, 9}
    assert all(0 <= row["valid_fraction"] <= 1 for row in rows)
    html = (out / "viewer/index.html").read_text()
    assert '"name": "raster"' in html and '"crs": "EPSG4326"' in html


def _aligned_geotiff(path: Path, z: int, nodata_block: bool = True) -> tuple[np.ndarray, TileIndex]:
    """A float32 GeoTIFF in lon/lat covering 2×2 tiles of zoom z exactly, one pixel per map pixel."""
    from rasterio.transform import from_bounds

    tms = get_tms("WGS1984Quad")
    top_left = TileIndex(z, 600, 200)
    left, _, _, top = tile_bounds(tms, top_left)
    _, bottom, right, _ = tile_bounds(tms, TileIndex(z, 601, 201))
    values = np.random.default_rng(7).normal(0, 1, (64, 64)).astype(np.float32)
    if nodata_block:
        values[:8, :8] = -9999
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="float32", crs="EPSG:4326",
                       transform=from_bounds(left, bottom, right, top, 64, 64), nodata=-9999) as dataset:
        dataset.write(values, 1)
    return values, top_left


@pytest.mark.parametrize("resampling", ["nearest", "bilinear"])
def test_geotiff_values_round_trip_through_the_tiles(tmp_path, resampling):
    z = 10
    values, top_left = _aligned_geotiff(tmp_path / "image.tif", z)
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    config = TilesConfig(raster=str(tmp_path / "image.tif"), z_range=(z - 1, z), tile_size=32,
                         raster_resampling=resampling, raster_percentiles=(0, 100))
    start_run("tiles", config, tmp_path / "out", store=store, cluster_spec="local:1")
    blank = values == -9999
    for dy in (0, 1):
        for dx in (0, 1):
            with rasterio.open(tmp_path / f"out/geotiff/{z}/{top_left.x + dx}/{top_left.y + dy}.tif") as dataset:
                tile = dataset.read(1)
                assert np.isnan(dataset.nodata)
            part = values[dy * 32:(dy + 1) * 32, dx * 32:(dx + 1) * 32]
            part_blank = blank[dy * 32:(dy + 1) * 32, dx * 32:(dx + 1) * 32]
            assert np.array_equal(np.isnan(tile), part_blank)
            assert np.array_equal(tile[~part_blank], part[~part_blank])  # bit for bit
    with rasterio.open(tmp_path / f"out/geotiff/{z - 1}/{top_left.x // 2}/{top_left.y // 2}.tif") as dataset:
        parent = dataset.read(1)
    quarter = parent[:32, :32] if top_left.x % 2 == 0 and top_left.y % 2 == 0 else None
    assert quarter is not None
    masked = np.where(blank, np.nan, values).reshape(32, 2, 32, 2)
    assert np.isnan(quarter[:4, :4]).all()  # four blank children: blank
    assert np.allclose(quarter[4:, 4:], np.nanmean(masked[4:, :, 4:, :], axis=(1, 3)), atol=1e-6)
    index = json.loads((tmp_path / "out/raster.json").read_text())
    assert index["value_range"] == pytest.approx([values[~blank].min(), values[~blank].max()])


def test_command_line_refuses_a_fits_without_sky_axes_and_both_kinds_of_input(tmp_path):
    fits.PrimaryHDU(np.zeros((8, 8), dtype=np.float32)).writeto(tmp_path / "plain.fits")
    base = [sys.executable, "-m", "sdpflow", "--db", f"sqlite:///{tmp_path / 'runs.db'}", "run", "tiles",
            "--out", str(tmp_path / "out")]
    plain = subprocess.run([*base, "--raster", str(tmp_path / "plain.fits")], capture_output=True, text=True,
                           cwd=REPO, timeout=60)
    assert plain.returncode == 2 and "not an image whose first two axes are sky coordinates" in plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    both = subprocess.run([*base, "--raster", str(tmp_path / "plain.fits"), "--input", str(tmp_path / "a.gpkg")],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert both.returncode == 2 and "not both" in both.stderr


def test_the_viewer_draws_the_sky_image_in_headless_chromium(sky_run, tmp_path):
    from tests.conftest import headless_chromium
    from tests.pipelines.test_tiles import _served

    _, _, _, _, out = sky_run
    with _served(out) as url:
        shot = tmp_path / "viewer.png"
        headless_chromium(tmp_path / "profile", url, "--window-size=800,600", "--virtual-time-budget=8000",
                          f"--screenshot={shot}")
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)[:500, 100:600]  # the map, less the controls
    background = np.array([0x20, 0x21, 0x24])  # the map's own colour where no tile draws
    drawn = np.abs(pixels - background).max(axis=2) > 3  # the image: inferno's dark end over the noise
    assert drawn.sum() > 20_000, f"only {drawn.sum()} drawn pixels: the tiles did not draw"
    rows, columns = np.nonzero(pixels.sum(axis=2) > 450)  # the two sources, bright yellow-white
    assert columns.size > 0 and columns.max() - columns.min() > 50  # both, side by side
    assert rows.max() - rows.min() < 15  # on one row of the image: one declination
    left, right = np.sum(columns < columns.mean()), np.sum(columns > columns.mean())
    assert left > right  # the 5 Jy source (larger RA), saturated over more pixels, on the left; the 3 Jy one right
