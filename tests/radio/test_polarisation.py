"""Full polarisation: the Stokes convention, the polarised simulator, reading Stokes from an MS."""

from __future__ import annotations

import numpy as np
import pytest

from sdpflow.config.simulate import SimulateConfig
from sdpflow.errors import DataError
from sdpflow.pipelines.simulate import simulate_observation
from sdpflow.radio.datamodels import SPEED_OF_LIGHT
from sdpflow.radio.imaging import dirty_image
from sdpflow.radio.ms import read_ms_metadata, read_visibility
from sdpflow.radio.polsky import Polarisation, stokes_spectra
from sdpflow.radio.sky import direction_cosines, read_polarisation_csv, read_sky_csv
from sdpflow.radio.stokes import correlations_from_stokes, parse_pol, stokes_axis, to_stokes

NPIX, CELL_ARCSEC, CHANNELS_OUT = 128, 4.0, 8


def one_source_config(**options):
    """One bright polarised source, no gain errors: 16 stations x 6 times x 64 channels from 800 MHz."""
    settings = dict(stations=16, times=6, channels=64, freq_start_hz=800e6, freq_width_hz=4e6, n_bright=1,
                    n_faint=0, bright_flux_jy=(2.0, 2.0), field_radius_deg=0.02, primary_beam=False,
                    phase_error_rad=0.0, amplitude_error=0.0, noise_jy=0.0, pol_fraction=(0.2, 0.2),
                    rm_radm2=(12.0, 12.0), image_cell_arcsec=CELL_ARCSEC, seed=5)
    return SimulateConfig(**{**settings, **options})


def stokes_images(ms, stokes=("I", "Q", "U", "V")):
    """Natural-weighted dirty cubes {S: [chan_out, y, x]} of the Stokes planes of an MS."""
    vis = read_visibility(ms, stokes=stokes)
    images = {}
    for k, name in enumerate(stokes):
        plane = vis.with_vis(vis.vis[:, :, k:k + 1], polarisation=(name,), weight=vis.weight[:, :, k:k + 1],
                             flag=vis.flag[:, :, k:k + 1])
        images[name] = dirty_image(plane, npix_x=NPIX, npix_y=NPIX, cell_rad=np.radians(CELL_ARCSEC / 3600),
                                   channels_out=CHANNELS_OUT, epsilon=1e-6)[0]
    return vis, images


def pixel_of(sky, phase_centre):
    l, m = direction_cosines(sky.ra, sky.dec, phase_centre)
    cell = np.radians(CELL_ARCSEC / 3600)
    return np.round(m / cell + NPIX // 2).astype(int), np.round(-l / cell + NPIX // 2).astype(int)


def test_stokes_round_trip_for_both_feeds():
    rng = np.random.default_rng(1)
    stokes = rng.normal(size=(5, 3, 4)) + 1j * rng.normal(size=(5, 3, 4))
    from radio_testdata import observation

    for feeds, codes in (("linear", ("XX", "XY", "YX", "YY")), ("circular", ("RR", "RL", "LR", "LL"))):
        correlations, names = correlations_from_stokes(stokes, feeds)
        assert names == codes
        vis = observation(n_stations=6, n_times=1, frequency=(1e8, 1.01e8, 1.02e8))
        vis = vis.with_vis(np.resize(correlations, (vis.n_rows, 3, 4)), polarisation=names,
                           weight=np.full((vis.n_rows, 3, 4), 2.0, np.float32),
                           flag=np.zeros((vis.n_rows, 3, 4), bool))
        back = to_stokes(vis, ("I", "Q", "U", "V"))
        assert np.allclose(back.vis, np.resize(stokes, (vis.n_rows, 3, 4)))
        assert np.allclose(back.weight, 4.0)  # 4 / (1/2 + 1/2): a mean of two halves the variance
    # unpolarised source of flux S: XX = YY = S (no factor 1/2), as CASA and WSClean
    pure_i = np.array([[2.0, 0, 0, 0]], complex)
    assert np.allclose(correlations_from_stokes(pure_i, "linear")[0], [[2, 0, 0, 2]])
    assert np.allclose(correlations_from_stokes(pure_i, "circular")[0], [[2, 0, 0, 2]])


def test_parse_pol_as_wsclean():
    assert parse_pol("I") == ("I",)
    assert parse_pol("IQUV") == ("I", "Q", "U", "V")
    assert parse_pol("iqu") == ("I", "Q", "U")
    assert parse_pol("QU") == ("Q", "U")
    assert parse_pol("V") == ("V",)
    assert parse_pol("xx,yy") == ("XX", "YY")
    assert parse_pol("rr,ll") == ("RR", "LL")
    for bad in ("IQX", "xx,Q", "II", ""):
        with pytest.raises(ValueError):
            parse_pol(bad)
    assert stokes_axis(("I", "Q", "U", "V")) == (1, 1)
    assert stokes_axis(("XX", "YY")) == (-5, -1)
    assert stokes_axis(("I", "V")) == (1, 3)
    with pytest.raises(ValueError):
        stokes_axis(("I", "Q", "V"))


def test_faraday_thin_and_burn_slab_spectra():
    from radio_testdata import point_sky

    sky = point_sky([15.0], [-45.0], [1.0], ref_frequency=1e9, spectral_index=[-0.7])
    frequency = np.linspace(800e6, 1088e6, 50)
    thin = stokes_spectra(sky, Polarisation(np.array([0.3]), np.array([0.4]), np.array([25.0]), np.zeros(1)),
                          frequency)[0]
    lambda_sq = (SPEED_OF_LIGHT / frequency) ** 2
    assert np.allclose(np.hypot(thin[:, 1], thin[:, 2]), 0.3 * thin[:, 0])
    slope, intercept = np.polyfit(lambda_sq, np.unwrap(np.arctan2(thin[:, 2], thin[:, 1])) / 2, 1)
    assert slope == pytest.approx(25.0) and np.mod(intercept, np.pi) == pytest.approx(0.4)  # χ = χ₀ + RM λ²
    slab = stokes_spectra(sky, Polarisation(np.array([0.3]), np.array([0.4]), np.array([25.0]), np.array([10.0])),
                          frequency)[0]
    depth = 10.0 * lambda_sq
    assert np.allclose(np.hypot(slab[:, 1], slab[:, 2]), 0.3 * thin[:, 0] * np.abs(np.sin(depth) / depth))
    assert np.all(thin[:, 3] == 0)


@pytest.fixture(scope="module")
def linear_and_circular(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pol")
    return (simulate_observation(one_source_config(), folder / "linear" / "obs.ms"),
            simulate_observation(one_source_config(feeds="circular"), folder / "circular" / "obs.ms"))


def test_simulated_ms_has_the_feeds_correlations_and_polarised_truth(linear_and_circular):
    from casacore import tables

    linear, circular = linear_and_circular
    for products, codes in ((linear, [9, 10, 11, 12]), (circular, [5, 6, 7, 8])):
        with tables.table(f"{products.ms}::POLARIZATION", ack=False) as pol:
            assert list(pol.getcell("CORR_TYPE", 0)) == codes
        assert products.n_correlations == 4
    assert read_ms_metadata(circular.ms).polarisation == ("RR", "RL", "LR", "LL")
    truth = read_polarisation_csv(linear.truth_sky)
    assert truth.fraction == pytest.approx([0.2]) and truth.rm_radm2 == pytest.approx([12.0])
    assert 0 <= np.degrees(truth.angle_rad[0]) < 180
    with pytest.raises(DataError, match="RR.*missing"):
        read_visibility(linear.ms, stokes=("RR", "LL"))


def test_linear_and_circular_feeds_give_the_same_stokes_images(linear_and_circular):
    _, from_linear = stokes_images(linear_and_circular[0].ms)
    _, from_circular = stokes_images(linear_and_circular[1].ms)
    for name in "IQUV":
        scale = np.max(np.abs(from_linear["I"]))
        assert np.max(np.abs(from_linear[name] - from_circular[name])) < 1e-5 * scale, name


def test_dirty_q_u_follow_the_truth_and_give_the_rotation_measure(linear_and_circular):
    products = linear_and_circular[0]
    vis, images = stokes_images(products.ms)
    sky, pol = read_sky_csv(products.truth_sky), read_polarisation_csv(products.truth_sky)
    truth = stokes_spectra(sky, pol, vis.frequency)[0]  # [chan, IQUV]
    groups = np.array_split(np.arange(vis.n_channels), CHANNELS_OUT)
    y, x = pixel_of(sky, vis.phase_centre)
    assert np.max(np.abs(images["V"])) < 1e-4 * np.max(images["I"])
    measured_angle, lambda_sq = [], []
    for out, group in enumerate(groups):
        expected = truth[group].mean(axis=0)
        p_expected = np.hypot(expected[1], expected[2])
        for k, name in ((0, "I"), (1, "Q"), (2, "U")):
            # within 3% of the polarised (or total) flux: the source sits within half a pixel of a pixel centre
            scale = expected[0] if name == "I" else p_expected
            assert images[name][out, y[0], x[0]] == pytest.approx(expected[k], abs=0.03 * scale), (name, out)
        measured_angle.append(0.5 * np.arctan2(images["U"][out, y[0], x[0]], images["Q"][out, y[0], x[0]]))
        lambda_sq.append(np.mean((SPEED_OF_LIGHT / vis.frequency[group]) ** 2))
    angle = np.unwrap(2 * np.array(measured_angle)) / 2
    slope, intercept = np.polyfit(lambda_sq, angle, 1)
    assert slope == pytest.approx(12.0, abs=0.5)


def test_unpolarised_sky_images_v_at_noise_level(tmp_path):
    products = simulate_observation(one_source_config(pol_fraction=(0.0, 0.0), all_correlations=True, noise_jy=0.2),
                                    tmp_path / "obs.ms")
    vis, images = stokes_images(products.ms, ("I", "V"))
    # expected σ of a natural-weighted dirty pixel: σ_corr / sqrt(2 samples x unflagged samples per channel)
    per_channel = vis.n_rows * (vis.n_channels // CHANNELS_OUT)
    sigma = 0.2 / np.sqrt(2 * per_channel)
    assert np.std(images["V"]) == pytest.approx(sigma, rel=0.25)
    assert np.max(np.abs(images["V"])) < 6 * sigma
    assert np.max(images["I"]) > 100 * sigma


def test_fits_stokes_axis_and_beams_table_round_trip(tmp_path):
    from astropy.io import fits as astropy_fits

    from sdpflow.radio.fits import read_beams, read_fits_image, write_fits_image

    data = np.arange(3 * 2 * 32 * 32, dtype=np.float32).reshape(3, 2, 32, 32)  # [chan, pol, y, x]
    beams = [(np.radians(60 / 3600), np.radians(40 / 3600), np.radians(30.0 + c)) for c in range(3)]
    for names, crval, cdelt in ((("XX", "YY"), -5, -1), (("RR", "LL"), -1, -1), (("Q", "U"), 2, 1), (("I", "V"), 1, 3)):
        path = tmp_path / f"{''.join(names)}.fits"
        write_fits_image(path, data, phase_centre=(0.3, -0.5), cell_rad=1e-4, frequency=[8e8, 8.1e8, 8.2e8],
                         polarisation=names, beam=beams[0], beams=beams)
        with astropy_fits.open(path) as hdus:
            assert (hdus[0].header["CRVAL4"], hdus[0].header["CDELT4"]) == (crval, cdelt)
            assert hdus[0].header["CASAMBM"] is True
            table = hdus["BEAMS"]
            assert (table.header["NCHAN"], table.header["NPOL"]) == (3, 2) and len(table.data) == 6
            assert table.data["BMAJ"][1] == pytest.approx(60.0) and table.data["BPA"][2] == pytest.approx(32.0)
        image = read_fits_image(path)
        assert image.polarisation == names
        assert np.array_equal(image.data, data)
        assert np.allclose(read_beams(path), beams)
    # planes no linear STOKES axis lists (I, Q, V; a run's internal I, XX, YY) get a numbered PLANE axis, named
    write_fits_image(tmp_path / "planes.fits", np.zeros((1, 3, 32, 32)), phase_centre=(0, 0), cell_rad=1e-4,
                     frequency=[1e8], polarisation=("I", "XX", "YY"))
    with astropy_fits.open(tmp_path / "planes.fits") as hdus:
        assert hdus[0].header["CTYPE4"] == "PLANE" and hdus[0].header["POLNAMES"] == "I,XX,YY"
    assert read_fits_image(tmp_path / "planes.fits").polarisation == ("I", "XX", "YY")


def test_stokes_major_images_round_trip_through_the_cycle_files(linear_and_circular, tmp_path):
    """What a resumed run reads back: a [stokes × chan, y, x] model written with every plane, and one plane alone."""
    from sdpflow.pipelines.imaging import products
    from sdpflow.pipelines.imaging.chunks import ImageGrid
    from sdpflow.pipelines.imaging.headers import ProductHeader

    metadata = read_ms_metadata(linear_and_circular[0].ms)
    grid = ImageGrid(64, 64, 1e-4, channels_out=4, stokes=("I", "Q", "U"))
    image = np.random.default_rng(2).normal(size=(grid.n_planes, 64, 64))
    products.write_image(str(tmp_path / "model.fits"), image, grid, metadata, "model", None, ProductHeader((), ()), None)
    assert np.allclose(products.read_image(str(tmp_path / "model.fits")), image, atol=1e-6)
    products.write_image(str(tmp_path / "model-U.fits"), image, grid, metadata, "model", None, ProductHeader((), ()), "U")
    assert np.allclose(products.read_image(str(tmp_path / "model-U.fits")), image[8:], atol=1e-6)
    assert np.allclose(products.stokes_plane(image, grid, "Q"), image[4:8])


def test_joined_polarisation_clean_puts_components_at_the_same_pixels():
    from sdpflow.radio.joined_clean import deconvolve_joined
    from sdpflow.radio.restore import gaussian_beam_image

    cell = np.radians(10 / 3600)
    psf = gaussian_beam_image((64, 64), (np.radians(40 / 3600), np.radians(30 / 3600), 0.5), cell)
    psf = psf * (1 + 0.1 * np.cos(np.arange(64) / 3.0))[None, :]  # sidelobes, so a component's neighbours stay non-zero
    psf /= psf[32, 32]
    truth = {(20, 40): (0.6, -0.8), (45, 18): (-0.05, 0.04)}  # (y, x): (Q, U) Jy; the second faint in each plane
    residual = np.zeros((2, 64, 64))
    for (y, x), fluxes in truth.items():
        shifted = np.roll(np.roll(psf, y - 32, axis=0), x - 32, axis=1)
        residual += np.array(fluxes)[:, None, None] * shifted
    residual += np.random.default_rng(4).normal(0, 1e-3, residual.shape)
    result = deconvolve_joined(residual, psf, gain=0.1, niter=5000, auto_threshold=3.0)
    assert result.stop_reason == "auto-threshold"
    # both planes have components at the same pixels
    assert np.array_equal(result.model_delta[0] != 0, result.model_delta[1] != 0)
    for (y, x), fluxes in truth.items():
        found = result.model_delta[:, y - 2:y + 3, x - 2:x + 3].sum(axis=(1, 2))
        assert found == pytest.approx(fluxes, abs=0.01)
    assert np.max(np.abs(result.residual)) < 0.01


def test_minor_cycle_cleans_stokes_planes_alone_or_joined():
    from sdpflow.pipelines.imaging.products import minor_cycle
    from sdpflow.radio.restore import gaussian_beam_image

    cell = np.radians(10 / 3600)
    psf = gaussian_beam_image((64, 64), (np.radians(40 / 3600), np.radians(30 / 3600), 0.5), cell)[None]  # [chan=1]
    shifted = np.roll(np.roll(psf[0], -12, axis=0), 8, axis=1)
    residual = np.stack([2.0 * shifted, 0.0 * shifted])  # [stokes (I, Q) x chan, y, x]: Q empty but for noise
    residual += np.random.default_rng(5).normal(0, 1e-3, residual.shape)
    settings = dict(gain=0.1, mgain=0.9, threshold=0.0, auto_threshold=3.0, multiscale=False)
    alone, _ = minor_cycle(residual, psf, None, settings, 1000)
    joined, metrics = minor_cycle(residual, psf, None, settings, 1000, joined=(0, 1))
    # alone: Q's few components are its own noise peaks (above 3 σ), not Stokes I's pixels
    assert alone[0].sum() == pytest.approx(1.8, rel=0.05) and abs(alone[1].sum()) < 0.01
    assert alone[0][17:24, 37:44].any() and not np.array_equal(alone[0] != 0, alone[1] != 0)
    # joined: Q's components sit on Stokes I's pixels, with Q's own (near zero) values
    assert joined[0].sum() == pytest.approx(1.8, rel=0.05)
    assert np.array_equal(joined[0] != 0, joined[1] != 0) and abs(joined[1].sum()) < 0.01
    assert metrics["components"] > 0


def test_joined_channels_share_component_pixels_and_keep_each_channels_flux():
    from sdpflow.pipelines.imaging.products import minor_cycle
    from sdpflow.radio.restore import gaussian_beam_image

    cell = np.radians(10 / 3600)
    beams = [(np.radians(w / 3600), np.radians(0.7 * w / 3600), 0.5) for w in (50, 45, 40)]
    psf = np.stack([gaussian_beam_image((64, 64), beam, cell) for beam in beams])  # [chan, y, x]
    fluxes = np.array([1.5, 1.2, 1.0])  # a falling spectrum
    source = np.stack([np.roll(np.roll(p, -12, axis=0), 8, axis=1) for p in psf])
    residual = fluxes[:, None, None] * source + np.random.default_rng(6).normal(0, 1e-3, source.shape)
    settings = dict(gain=0.1, mgain=0.95, threshold=0.0, auto_threshold=3.0, multiscale=False, join_channels=True)
    model, metrics = minor_cycle(residual, psf, None, settings, 2000)
    assert np.array_equal(model[0] != 0, model[1] != 0) and np.array_equal(model[1] != 0, model[2] != 0)
    assert model.sum(axis=(1, 2)) == pytest.approx(fluxes * 0.95, rel=0.05)
    assert metrics["components"] > 0
