"""Parts of the run report that need no run: skipped cycles, the cluster's start-up, task names, colours."""

from __future__ import annotations

import json

from sdpflow.pipelines.imaging.report import cycles_table
from sdpflow.pipelines.imaging.summary import MajorCycle
from sdpflow.report.html import stage_timeline


class _Summary:
    cycles = [MajorCycle(cycle=1, peak_residual_jy=1.5, rms_residual_jy=0.05, components=62, stop_reason="threshold",
                         converged=True),
              MajorCycle(cycle=2, peak_residual_jy=1.5, rms_residual_jy=0.05, components=62, stop_reason="threshold",
                         converged=True, skipped="converged", elapsed_s=0.0)]


def test_skipped_cycles_are_shown_as_skipped_not_as_repeated_rows():
    table = cycles_table(_Summary())
    assert table.rows[0][:5] == ["1", "1.5", "0.05", "62", "threshold"]
    assert table.rows[1][:2] == ["2", "skipped (converged)"] and set(table.rows[1][2:]) == {""}


def test_the_cluster_start_up_is_its_own_span_not_part_of_the_first_stage(tmp_path):
    events = [("flow-started", None, "00"), ("stage-started", "psf", "00"), ("cluster-opened", None, "05"),
              ("stage-completed", "psf", "07"), ("stage-started", "restore", "07"), ("stage-completed", "restore", "08")]
    (tmp_path / "events.jsonl").write_text("".join(
        json.dumps({"event": event, "stage": stage, "time": f"2026-01-01T00:00:{second}+00:00"}) + "\n"
        for event, stage, second in events))
    assert stage_timeline(tmp_path / "events.jsonl") == [("starting cluster", 0.0, 5.0), ("psf", 5.0, 7.0),
                                                         ("restore", 7.0, 8.0)]


def test_task_names_are_the_functions_and_colours_stay_distinct():
    from sdpflow.report.plots import distinct_colours, task_name

    assert task_name("operator.itemgetter(0)-5b2c9e0d8f7a6b5c4d3e2f1a0b9c8d7e") == "first part of a result"
    assert task_name("major_cycle-1f0e2c3a-73dc-4cb1-ab91-2b3c4d5e6f70") == "major_cycle"
    assert task_name("read-chunk-0003-7fa1165291d0") == "read-chunk"
    assert task_name("('add-3f2a9b8c7d6e5f4a', 0)") == "sum of partial images"
    colours = distinct_colours(21)
    assert len(set(colours)) == 21


def test_a_bandpass_is_drawn_per_antenna_against_frequency_with_every_receptor():
    import numpy as np

    from sdpflow.radio.datamodels import GainTable
    from sdpflow.report.gain_plots import GAP, _amplitude_limits, gain_panels_figure
    from sdpflow.report.plots import save

    rng = np.random.default_rng(1)
    shape = (2, 5, 8, 2)  # time, antenna, chan, receptor
    gains = (1 + 0.1 * rng.standard_normal(shape)) * np.exp(1j * rng.uniform(-np.pi, np.pi, shape))
    table = GainTable(gain=gains, weight=np.ones(shape), time=np.array([0.0, 600.0]), interval=np.full(2, 600.0),
                      frequency=np.linspace(100e6, 107e6, 8), receptors=("X", "Y"), mode="B")
    figure = gain_panels_figure({"B": table}, ["A0", "A1", "A2"], quantity="amplitude")
    assert [name for name, _ in figure.regions] == ["A0", "A1", "A2", "antenna 3", "antenna 4"]
    segments = figure.axes[0].collections[0].get_segments()
    assert len(segments) == 5 * 2 * 2  # every antenna, solution interval and receptor
    low, high = _amplitude_limits({"B": table})
    first_of_antenna_1 = segments[4]  # antenna 1 (column 1), interval 0, receptor X: channels left to right
    assert np.allclose(first_of_antenna_1[:, 0], 1 + GAP + (1 - 2 * GAP) * np.linspace(0, 1, 8))
    amplitude = low + (first_of_antenna_1[:, 1] - (-1 + GAP)) / (1 - 2 * GAP) * (high - low)
    assert np.allclose(amplitude, np.abs(gains[0, 1, :, 0]))
    assert "frequency, lowest to highest channel" in " ".join(text.get_text() for text in figure.texts)
    drawn = save(figure, tight=False)
    assert drawn.png[:4] == b"\x89PNG" and len(drawn.regions) == 5
    (x0, y0, x1, y1), (x2, _, _, _) = drawn.regions[0][1], drawn.regions[1][1]
    assert 0 <= x0 < x1 < x2 and 0 <= y0 < y1
