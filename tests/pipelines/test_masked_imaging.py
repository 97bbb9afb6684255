"""WSClean's mask, beam and source-list options in a continuum run on a small simulated observation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from distributed import Client, LocalCluster

from sdpflow.config.imaging import ContinuumConfig, DeconvolutionConfig, IcalConfig, ImagingConfig
from sdpflow.config.simulate import SimulateConfig
from sdpflow.pipelines import start_run
from sdpflow.pipelines.imaging.products import chosen_beam
from sdpflow.pipelines.simulate import simulate_observation
from sdpflow.radio import fits
from sdpflow.radio.source_list import read_source_list
from sdpflow.store import RunStore

SIZE = 128


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory):
    """A continuum run with --fits-mask (the image's left half), --auto-mask 5, --circular-beam, --save-source-list."""
    out = tmp_path_factory.mktemp("masked")
    observation = simulate_observation(SimulateConfig(preset="small", phase_error_rad=0.0, amplitude_error=0.0,
                                                      seed=5), out / "obs.ms")
    imaging = ImagingConfig(size=(SIZE, SIZE), scale="60asec", weight="natural")
    dirty_grid = ContinuumConfig(ms=str(observation.ms), imaging=imaging)  # for the mask's WCS
    from sdpflow.pipelines.imaging.flow import image_grid
    from sdpflow.radio.ms import read_ms_metadata

    metadata = read_ms_metadata(str(observation.ms))
    grid = image_grid(dirty_grid, metadata)
    half = np.zeros((SIZE, SIZE))
    half[:, :SIZE // 2] = 1.0
    fits.write_fits_image(out / "mask.fits", half, phase_centre=metadata.phase_centre, cell_rad=grid.cell_rad,
                          frequency=float(metadata.frequency.mean()), unit="")
    config = ContinuumConfig(
        ms=str(observation.ms), imaging=imaging,
        deconvolution=DeconvolutionConfig(niter=2000, mgain=0.8, auto_threshold=1.0, nmajor=3, auto_mask=5.0,
                                          fits_mask=str(out / "mask.fits"), circular_beam=True,
                                          save_source_list=True))
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0") as cluster:
        with Client(cluster):
            result = start_run("continuum", config, out / "run", store=RunStore(f"sqlite:///{out / 'runs.db'}"),
                               cluster_spec=cluster.scheduler_address, until_stage="restore")
    return result.out_dir, half.astype(bool)


def test_components_only_inside_the_fits_mask(masked_run):
    run_dir, inside = masked_run
    model = fits.read_fits_image(run_dir / "model.fits").data[0, 0]
    assert np.count_nonzero(model[inside]) >= 3
    assert np.count_nonzero(model[~inside]) == 0


def test_auto_mask_then_cleans_within_the_components(masked_run):
    run_dir, _ = masked_run
    cycles = json.loads((run_dir / "summary.json").read_text())["cycles"]
    reasons = [cycle["stop_reason"] for cycle in cycles if not cycle.get("skipped")]
    assert "auto-mask" in reasons                            # cleaned to 5 sigma everywhere first
    assert cycles[-1]["auto_mask_reached"] is True
    assert reasons[-1] in ("auto-threshold", "mgain", "niter")  # then on, within the mask of the components


def test_circular_beam_in_the_restored_header(masked_run):
    run_dir, _ = masked_run
    from astropy.io import fits as astropy_fits

    header = astropy_fits.getheader(run_dir / "restored.fits")
    psf_header = astropy_fits.getheader(run_dir / "psf.fits")
    assert header["BMAJ"] == header["BMIN"] == pytest.approx(psf_header["BMAJ"], rel=1e-6)
    assert header["BPA"] == 0.0
    assert psf_header["BMIN"] < psf_header["BMAJ"]            # the fitted beam itself is elliptical


def test_source_list_sums_to_the_model(masked_run):
    run_dir, inside = masked_run
    model = fits.read_fits_image(run_dir / "model.fits")
    components = read_source_list(run_dir / "sources.txt")
    assert len(components) == np.count_nonzero(model.data[0, 0])
    assert sum(c.flux for c in components) == pytest.approx(float(model.data[0, 0].sum()), rel=1e-5)
    x, y = model.wcs.celestial.world_to_pixel_values(np.degrees([c.ra for c in components]),
                                                     np.degrees([c.dec for c in components]))
    assert np.max(np.abs(x - np.round(x))) < 0.01 and np.max(np.abs(y - np.round(y))) < 0.01
    assert all(inside[int(round(j)), int(round(i))] for i, j in zip(x, y))


def test_beam_size_and_shape_replace_the_fitted_beam():
    fitted = {"bmaj_arcsec": 300.0, "bmin_arcsec": 250.0, "bpa_deg": 40.0,
              "channels": [{"bmaj_arcsec": 310.0, "bmin_arcsec": 240.0, "bpa_deg": 41.0}]}
    sized = chosen_beam(fitted, DeconvolutionConfig(beam_size="2amin"))
    assert (sized["bmaj_arcsec"], sized["bmin_arcsec"], sized["bpa_deg"]) == pytest.approx((120.0, 120.0, 0.0))
    assert sized["channels"][0]["bmin_arcsec"] == pytest.approx(120.0)
    shaped = chosen_beam(fitted, DeconvolutionConfig(beam_shape=("200", "100", "30")))
    assert (shaped["bmaj_arcsec"], shaped["bmin_arcsec"], shaped["bpa_deg"]) == pytest.approx((200.0, 100.0, 30.0))
    circular = chosen_beam(fitted, DeconvolutionConfig(circular_beam=True))
    assert circular["bmin_arcsec"] == 300.0 and circular["channels"][0]["bmin_arcsec"] == 310.0


def test_ical_auto_masks_by_default_and_continuum_does_not():
    assert IcalConfig().auto_mask_sigma == 5.0
    assert ContinuumConfig().auto_mask_sigma == 0.0
    assert IcalConfig(deconvolution=DeconvolutionConfig(auto_mask=0)).auto_mask_sigma == 0.0
    assert DeconvolutionConfig(scales="0,4,16").scales == [0.0, 4.0, 16.0]


@pytest.mark.parametrize("options, message", [
    (dict(scales="0,x"), "comma list"),
    (dict(scales="0,-4"), "non-negative"),
    (dict(multiscale=True, local_rms=True), "Hogbom only"),
    (dict(join_channels=True, no_negative=True), "Hogbom only"),
    (dict(beam_size="40", beam_shape=("40", "30", "0")), "give one"),
    (dict(beam_size="-3asec"), "positive"),
])
def test_option_mistakes_are_refused_with_what_to_do(options, message):
    with pytest.raises(ValueError, match=message):
        DeconvolutionConfig(**options)


def test_minor_cycles_switch_to_the_component_mask_after_the_auto_mask_level():
    """products.minor_cycle as the cycle stages call it: a 5σ auto-mask, then 1σ within the components."""
    from scipy.signal import fftconvolve

    from sdpflow.pipelines.imaging.products import minor_cycle

    py, px = np.mgrid[-64:65, -64:65]
    psf = np.exp(-(px**2 + py**2) / (2 * 1.7**2))                       # [129, 129], FWHM 4 pixels, peak at 64
    noise = fftconvolve(np.random.default_rng(7).normal(size=(128, 128)), psf[56:73, 56:73], mode="same")
    source = np.zeros((128, 128))
    source[44, 74] = 40.0
    residual = (noise / noise.std() + fftconvolve(source, psf, mode="same"))[None]   # [chan, y, x]
    settings = dict(DeconvolutionConfig(niter=5000, auto_threshold=1.0, local_rms=True,
                                        local_rms_window=8).model_dump(), mgain=None, auto_mask=5.0)
    model, first = minor_cycle(residual, psf[None], None, settings, 5000)
    assert first["stop_reason"] == "auto-mask" and first["auto_mask_reached"] is True
    y, x = np.mgrid[0:128, 0:128]
    assert np.count_nonzero(model[0][np.hypot(y - 44, x - 74) > 12]) == 0
    left = residual - fftconvolve(model[0], psf, mode="same")[None]     # what the next major cycle grids
    deeper, second = minor_cycle(left, psf[None], model, {**settings, "auto_mask_reached": True}, 5000)
    assert second["components"] > 0 and second["auto_mask_reached"] is True
    assert set(zip(*np.nonzero(deeper[0]))) == set(zip(*np.nonzero(model[0])))   # only where components were
    assert model.sum() < deeper.sum() == pytest.approx(40.0, rel=0.1)  # deeper, within the local noise


def test_nothing_above_the_auto_mask_level_cleans_as_without_it():
    """A first minor cycle with no peak above the auto-mask level: an empty mask would stop cleaning for good
    (and ICAL would have no model to calibrate against), so it cleans to the usual thresholds."""
    from sdpflow.pipelines.imaging.products import minor_cycle

    py, px = np.mgrid[-64:65, -64:65]
    psf = np.exp(-(px**2 + py**2) / (2 * 1.7**2))[None]
    residual = 0.01 * np.random.default_rng(8).normal(size=(1, 128, 128))
    residual[0, 64, 64] += 1.0                                          # 100 σ, far below 500 σ
    settings = dict(DeconvolutionConfig(niter=100, auto_threshold=3.0).model_dump(), auto_mask=500.0)
    model, metrics = minor_cycle(residual, psf, None, settings, 100)
    assert metrics["components"] > 0 and metrics["stop_reason"] != "auto-mask"
    assert metrics["auto_mask_reached"] is False
