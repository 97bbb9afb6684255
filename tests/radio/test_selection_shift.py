"""WSClean's -shift, -interval and -channel-range when an MS is read (radio.ms, radio.phase_shift)."""

from __future__ import annotations

import numpy as np
import pytest

from sdpflow.radio.datamodels import SkyModel
from sdpflow.radio.imaging import invert
from sdpflow.radio.layouts import low_like_configuration
from sdpflow.radio.ms import read_ms_metadata, read_visibility, write_ms
from sdpflow.radio.phase_shift import rephase
from sdpflow.radio.simulate import make_visibility
from sdpflow.radio.sky import direction_cosines, directions_from_cosines, predict_components

CENTRE = (np.radians(83.0), np.radians(-30.0))
FREQUENCY = np.array([1.0e8, 1.1e8, 1.2e8, 1.3e8])


@pytest.fixture(scope="module")
def offset_source(tmp_path_factory):
    """An MS of one 2.5 Jy point source 1.5 deg east and 1 deg north of its phase centre: (path, source RA/Dec)."""
    source = directions_from_cosines(np.array([np.radians(1.5)]), np.array([np.radians(1.0)]), CENTRE)
    vis = make_visibility(low_like_configuration(16), phase_centre=CENTRE, times=5.0e9 + 60.0 * np.arange(6),
                          interval=60.0, frequency=FREQUENCY, channel_width=np.full(4, 1e6))
    sky = SkyModel(ra=source[0], dec=source[1], flux=np.array([2.5]), ref_frequency=np.array([1e8]),
                   spectral_index=np.array([0.0]))
    vis = vis.with_vis(predict_components(vis, sky)[:, :, None])
    path = write_ms(tmp_path_factory.mktemp("shift") / "offset.ms", vis)
    return path, (float(source[0][0]), float(source[1][0]))


def test_a_source_at_the_new_centre_has_phase_zero_and_lands_on_the_centre_pixel(offset_source):
    path, source = offset_source
    metadata = read_ms_metadata(path).select(phase_centre=source)
    vis = read_visibility(path, metadata=metadata)
    assert vis.phase_centre == source
    assert np.abs(vis.vis - 2.5).max() < 1e-5 * 2.5  # every baseline and channel: 2.5 Jy, phase 0
    cell = np.radians(1 / 60)
    dirty = invert(vis, npix_x=64, npix_y=64, cell_rad=cell).normalised()[0]
    assert np.unravel_index(np.argmax(dirty), dirty.shape) == (32, 32)
    assert dirty[32, 32] == pytest.approx(2.5, rel=1e-4)


def test_rephasing_there_and_back_is_the_identity_and_keeps_baseline_lengths():
    rng = np.random.default_rng(1)
    uvw = rng.normal(0, 300, (50, 3))
    data = rng.normal(size=(50, 4, 2)) + 1j * rng.normal(size=(50, 4, 2))
    there, uvw_there = rephase(data, uvw, FREQUENCY, from_centre=CENTRE, to_centre=(CENTRE[0] + 0.1, CENTRE[1] - 0.2))
    back, uvw_back = rephase(there, uvw_there, FREQUENCY, from_centre=(CENTRE[0] + 0.1, CENTRE[1] - 0.2),
                             to_centre=CENTRE)
    assert np.allclose(np.linalg.norm(uvw_there, axis=1), np.linalg.norm(uvw, axis=1), rtol=1e-12)
    assert np.allclose(uvw_back, uvw, atol=1e-9) and np.allclose(back, data, atol=1e-9)
    l, m = direction_cosines(np.array([CENTRE[0] + 0.1]), np.array([CENTRE[1] - 0.2]), CENTRE)
    assert abs(l[0]) > 0.05 and abs(m[0]) > 0.1  # a real move, not a rounding


def test_interval_and_channel_range_read_exactly_those_samples(offset_source):
    path, _ = offset_source
    full = read_visibility(path)
    metadata = read_ms_metadata(path).select(timesteps=(2, 5), channels=(1, 3))
    assert len(metadata.times) == 3 and metadata.n_channels == 2 and metadata.channel_offset == 1
    rows = (metadata.time_rows[0][0], metadata.time_rows[-1][1])
    part = read_visibility(path, rows=rows, metadata=metadata)
    baselines = 16 * 15 // 2
    assert rows == (2 * baselines, 5 * baselines)
    assert np.array_equal(part.frequency, FREQUENCY[1:3])
    assert np.array_equal(part.vis, full.vis[rows[0]:rows[1], 1:3])
    assert np.array_equal(part.weight, full.weight[rows[0]:rows[1], 1:3])
