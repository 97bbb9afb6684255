"""-interval, -channel-range, -field, -spws, -shift checked against the MS; -j and -mem sizing a local cluster."""

from __future__ import annotations

import numpy as np
import pytest

from sdpflow.config.cluster import ClusterConfig, local_threads_and_memory
from sdpflow.config.imaging import ContinuumConfig, IcalConfig, sexagesimal_to_rad
from sdpflow.errors import ConfigError
from sdpflow.pipelines.imaging.selection import selected_metadata
from sdpflow.radio.layouts import low_like_configuration
from sdpflow.radio.ms import read_ms_metadata, write_ms
from sdpflow.radio.simulate import make_visibility


@pytest.fixture(scope="module")
def ms(tmp_path_factory) -> str:
    vis = make_visibility(low_like_configuration(6), phase_centre=(1.0, -0.5), times=5.0e9 + 10.0 * np.arange(5),
                          interval=10.0, frequency=1e8 + 1e6 * np.arange(8), channel_width=np.full(8, 1e6))
    return str(write_ms(tmp_path_factory.mktemp("sel") / "five.ms", vis.with_vis(np.ones_like(vis.vis))))


def select(ms: str, **imaging) -> object:
    return selected_metadata(ContinuumConfig(ms=ms, imaging=imaging), read_ms_metadata(ms))


def test_a_selection_narrows_times_and_channels_and_moves_the_centre(ms):
    metadata = select(ms, interval=(1, 4), channel_range=(2, 6), field=0, spws="0", shift=("4h00m00s", "-29d00m00s"))
    assert [len(metadata.times), metadata.n_channels, metadata.channel_offset] == [3, 4, 2]
    assert metadata.time_rows[0][0] == 15 and metadata.time_rows[-1][1] == 60  # 15 baselines per timestep
    assert metadata.frequency[0] == 1.02e8
    assert metadata.phase_centre == pytest.approx((np.radians(60.0), np.radians(-29.0)), abs=1e-12)
    assert metadata.ms_phase_centre == (1.0, -0.5)


@pytest.mark.parametrize("imaging, message", [
    ({"interval": (2, 6)}, r"--interval 2 6: .* has 5 timesteps \(0..4\): give an END of at most 5"),
    ({"channel_range": (0, 9)}, r"--channel-range 0 9: .* has 8 channels \(0..7\)"),
    ({"field": 2}, r"--field 2: .* has field 0 only"),
    ({"spws": "0,3"}, r"--spws 0,3: .* has spectral window 0 only"),
])
def test_a_selection_outside_the_ms_is_one_line_naming_the_option(ms, imaging, message):
    with pytest.raises(ConfigError, match=message):
        select(ms, **imaging)


@pytest.mark.parametrize("imaging, message", [
    ({"shift": ("5h00m00s", "-95d00m00s")}, "declination must lie within"),
    ({"shift": ("5h30x", "1")}, "is not an RA like 05h30m00s"),
    ({"interval": (3, 3)}, "0 <= START < END"),
    ({"spws": "0;1"}, "separated by commas"),
])
def test_malformed_selections_fail_validation(imaging, message):
    with pytest.raises(ValueError, match=message):
        ContinuumConfig(imaging=imaging)


def test_sexagesimal_and_plain_angles():
    assert np.degrees(sexagesimal_to_rad("05h30m36s", hours=True)) == pytest.approx(82.65)
    assert np.degrees(sexagesimal_to_rad("-30d30m00s", hours=False)) == pytest.approx(-30.5)
    assert np.degrees(sexagesimal_to_rad("12:00:00", hours=True)) == pytest.approx(180.0)
    assert np.degrees(sexagesimal_to_rad("83.5deg", hours=True)) == pytest.approx(83.5)


def test_write_corrected_refuses_a_shift_or_channel_range():
    with pytest.raises(ValueError, match="drop --shift and --channel-range"):
        IcalConfig(imaging={"channel_range": (0, 2)}, calibration={"write_corrected": True})


def test_j_and_mem_size_the_local_cluster():
    from distributed.system import MEMORY_LIMIT

    config = ContinuumConfig(threads=6, mem=30)
    assert (config.cluster.n_workers, config.cluster.threads_per_worker) == (6, 1)
    assert int(config.cluster.memory_limit[:-1]) == int(MEMORY_LIMIT * 0.30 / 6)
    given = ClusterConfig(n_workers=2)
    local_threads_and_memory(given, 8, None)
    assert (given.n_workers, given.threads_per_worker, given.memory_limit) == (2, 4, None)
    assert ContinuumConfig(threads=4, cluster={"memory_limit": "1GiB"}, mem=50).cluster.memory_limit == "1GiB"
