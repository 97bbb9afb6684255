import numpy as np

from sdpflow.pipelines.imaging.partition import plan_chunks


def _time_rows(n_times: int, n_baselines: int):
    return [(t * n_baselines, (t + 1) * n_baselines) for t in range(n_times)]


def test_chunks_cover_every_row_and_channel_once():
    chunks = plan_chunks(_time_rows(10, 6), np.arange(10) * 10.0, 8, time_chunks=3, frequency_chunks=2)
    assert len(chunks) == 6
    covered = np.zeros((60, 8), int)
    for chunk in chunks:
        covered[chunk.rows[0]:chunk.rows[1], chunk.channels[0]:chunk.channels[1]] += 1
        assert chunk.band_channels == 8
    assert (covered == 1).all()
    assert [c.n_rows for c in chunks[::2]] == [18, 24, 18]


def test_time_boundaries_respect_solution_intervals():
    # 12 integrations of 10 s; T every 30 s and G every 20 s -> blocks of lcm(3, 2) = 6 integrations
    chunks = plan_chunks(_time_rows(12, 5), np.arange(12) * 10.0, 4, time_chunks=4,
                         solution_intervals_s=(30.0, 20.0), integration_s=10.0)
    assert [c.rows for c in chunks] == [(0, 30), (30, 60)]


def test_more_chunks_than_integrations_is_capped():
    chunks = plan_chunks(_time_rows(3, 2), np.arange(3.0), 1, time_chunks=10)
    assert [c.rows for c in chunks] == [(0, 2), (2, 4), (4, 6)]
