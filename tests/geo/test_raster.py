"""Images onto tiles: the sky-to-map mapping, footprints across the seam and over a pole, sampling, stretches."""

from __future__ import annotations

import numpy as np
import pytest

from astropy.io import fits

from sdpflow.errors import InputError
from sdpflow.geo.raster import footprint_lonlat, open_raster, percentile_range, sample, sky_longitude, sky_ra
from sdpflow.geo.render import stretched
from sdpflow.radio.fits import image_wcs, write_fits_image


def _fits(path, ra_deg, dec_deg, npix=64, cell_deg=0.05, data=None):
    wcs = image_wcs(npix, npix, phase_centre=(np.radians(ra_deg), np.radians(dec_deg)), cell_rad=np.radians(cell_deg),
                    frequency=[1e9])
    values = np.arange(npix * npix, dtype=np.float32).reshape(npix, npix) if data is None else data
    fits.PrimaryHDU(values[None, None], header=wcs.to_header()).writeto(path)
    return open_raster(path)


def test_sky_longitude_is_minus_ra_and_inverts():
    ra = np.array([0.0, 10.0, 179.9, 180.0, 350.0])
    assert sky_longitude(ra).tolist() == pytest.approx([0.0, -10.0, -179.9, -180.0, 10.0])
    assert sky_ra(sky_longitude(ra)) == pytest.approx(ra)


def test_footprint_across_the_seam_and_over_a_pole(tmp_path):
    # 64 pixels of 0.05° about pixel 32: from 32.5 pixels east of the centre (left edge) to 31.5 west
    near_zero = footprint_lonlat(_fits(tmp_path / "a.fits", 1.0, 0.0))  # RA −0.575..2.625: lon −2.625..0.575, one box
    assert len(near_zero) == 1 and near_zero[0][0] == pytest.approx(-2.625, abs=0.002)
    assert near_zero[0][2] == pytest.approx(0.575, abs=0.002)
    seam = footprint_lonlat(_fits(tmp_path / "b.fits", 180.0, 0.0))  # RA 178.425..181.625 crosses lon ±180
    assert len(seam) == 2
    (west_a, _, east_a, _), (west_b, _, east_b, _) = seam
    assert west_a == pytest.approx(178.375, abs=0.002) and east_a == 180.0
    assert west_b == -180.0 and east_b == pytest.approx(-178.425, abs=0.002)
    pole = footprint_lonlat(_fits(tmp_path / "c.fits", 30.0, 89.5))
    # down to the southern corners, 1.625° and 1.625° + 0.5° from the pole in x and y
    assert pole == [(-180.0, pytest.approx(90 - np.hypot(1.625, 2.125), abs=0.03), 180.0, 90.0)]


def test_sampling_a_fits_plane_written_by_the_imaging_pipeline(tmp_path):
    data = np.random.default_rng(1).normal(size=(2, 1, 32, 32)).astype(np.float32)  # two channels
    path = write_fits_image(tmp_path / "restored.fits", data, phase_centre=(np.radians(40.0), np.radians(-30.0)),
                            cell_rad=np.radians(0.01), frequency=[1e9, 1.1e9])
    second = open_raster(path, band=2)
    assert second.shape == (32, 32) and second.unit == "JY/BEAM"
    ra, dec = second.wcs.pixel_to_world_values(np.array([3.0, 20.0]), np.array([5.0, 17.0]))
    values = sample(second, sky_longitude(ra), dec, "nearest")
    assert values.tolist() == [data[1, 0, 5, 3], data[1, 0, 17, 20]]
    assert np.isnan(sample(second, np.array([0.0]), np.array([0.0]), "bilinear")).all()  # far outside
    with pytest.raises(InputError, match="has 2 plane"):
        open_raster(path, band=3)


def test_bilinear_is_exact_on_a_plane_and_blank_pixels_stay_blank(tmp_path):
    rows, columns = np.mgrid[:64, :64]
    plane = (2.0 * columns - 3.0 * rows + 1.0).astype(np.float32)
    plane[40:44, 40:44] = np.nan
    image = _fits(tmp_path / "p.fits", 100.0, 20.0, data=plane)
    column = np.array([10.25, 30.5, 41.0, 39.4])
    row = np.array([12.75, 20.0, 41.0, 39.4])
    ra, dec = image.wcs.pixel_to_world_values(column, row)
    values = sample(image, sky_longitude(ra), dec, "bilinear")
    assert values[:2] == pytest.approx(2 * column[:2] - 3 * row[:2] + 1, abs=1e-4)
    assert np.isnan(values[2])  # its own pixel is blank
    # its blank neighbour (40, 40) drops out and the other three weights are renormalised
    weights = {(39, 39): 0.6 * 0.6, (39, 40): 0.6 * 0.4, (40, 39): 0.4 * 0.6}
    expected = sum(weight * plane[key] for key, weight in weights.items()) / sum(weights.values())
    assert values[3] == pytest.approx(expected, abs=1e-4)


def test_percentile_range_and_stretches(tmp_path):
    plane = np.arange(100 * 100, dtype=np.float32).reshape(100, 100)
    plane[0, 0] = np.nan
    image = _fits(tmp_path / "r.fits", 10.0, 10.0, npix=100, data=plane)
    assert percentile_range(image, (0, 100)) == (1.0, 9999.0)
    assert percentile_range(image, (50, 100), max_samples=100) == (5000.0, 9090.0)  # 99 samples: 100·{0,10..90} + {0..90}, less the blank
    values = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    assert stretched(values, (0.0, 1.0)).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    asinh = stretched(values, (0.0, 1.0), "asinh")
    assert asinh[[0, 1, 3, 4]].tolist() == [0.0, 0.0, 1.0, 1.0] and 0.8 < asinh[2] < 0.95  # faint values lifted


def test_a_projected_geotiff_and_an_integer_fits_with_blank(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from pyproj import Transformer
    from rasterio.transform import from_origin

    values = np.arange(40 * 50, dtype=np.float32).reshape(40, 50)
    with rasterio.open(tmp_path / "utm.tif", "w", driver="GTiff", width=50, height=40, count=1, dtype="float32",
                       crs="EPSG:32606", transform=from_origin(400_000, 7_800_000, 30, 30)) as dataset:
        dataset.write(values, 1)
    image = open_raster(tmp_path / "utm.tif")
    # the centres of pixels (row 7, column 11) and (row 30, column 45), in UTM zone 6N, as longitude and latitude
    easting = 400_000 + 30 * (np.array([11, 45]) + 0.5)
    northing = 7_800_000 - 30 * (np.array([7, 30]) + 0.5)
    lon, lat = Transformer.from_crs("EPSG:32606", "EPSG:4326", always_xy=True).transform(easting, northing)
    assert sample(image, lon, lat, "bilinear") == pytest.approx([values[7, 11], values[30, 45]], abs=1e-3)

    raw = np.arange(64, dtype=np.int16).reshape(8, 8)
    raw[2, 3] = -32768
    header = image_wcs(8, 8, phase_centre=(1.0, 0.5), cell_rad=1e-4, frequency=[1e9]).celestial.to_header()
    hdu = fits.PrimaryHDU(raw, header=header)
    hdu.header["BLANK"], hdu.header["BSCALE"], hdu.header["BZERO"] = -32768, 0.5, 10.0
    hdu.writeto(tmp_path / "int.fits")
    image = open_raster(tmp_path / "int.fits")
    window = image.read(slice(0, 8), slice(0, 8))
    assert np.isnan(window[2, 3]) and window[2, 4] == 0.5 * 20 + 10.0 and np.isfinite(window).sum() == 63
