"""The terminal lines of a flow, from its events: cluster, major cycles, skipped cycles, times of day."""

from __future__ import annotations

import io
import re

from rich.console import Console

from sdpflow.cli.progress import FlowProgress

EVENTS = [
    {"event": "flow-started", "total": 3},
    {"event": "stage-started", "stage": "psf"},
    {"event": "cluster-starting"},
    {"event": "cluster-opened", "dashboard": "http://127.0.0.1:8787/status", "workers": 2, "elapsed_s": 3.21},
    {"event": "stage-completed", "stage": "psf", "elapsed_s": 4.0},
    {"event": "stage-started", "stage": "cycle-04"},
    {"event": "major-cycle", "stage": "cycle-04", "peak_residual_jy": 0.1034, "rms_residual_jy": 0.00423,
     "components": 232, "peak_after_minor_jy": 0.0207, "stop_reason": "mgain", "calibrated_terms": ["T", "G"]},
    {"event": "stage-completed", "stage": "cycle-04", "elapsed_s": 0.9},
    {"event": "stage-started", "stage": "cycle-05"},
    {"event": "major-cycle", "stage": "cycle-05", "skipped": "converged", "peak_residual_jy": 0.1034},
    {"event": "stage-completed", "stage": "cycle-05", "elapsed_s": 0.0},
]


def _printed(terminal: bool) -> list[str]:
    output = io.StringIO()
    console = Console(file=output, width=60, force_terminal=terminal, color_system=None)
    with FlowProgress(console, "ICAL stages") as progress:
        for record in EVENTS:
            progress(record)
    return [line for line in output.getvalue().splitlines() if "cycle" in line or "cluster" in line or "psf" in line]


def test_lines_for_the_cluster_each_major_cycle_and_a_skipped_cycle_with_times_of_day():
    lines = _printed(terminal=False)
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in lines), lines
    text = "\n".join(line[9:] for line in lines)
    assert "starting cluster..." in text
    assert "cluster started (2 workers) in 3.2 s; Dask dashboard: http://127.0.0.1:8787/status" in text
    # one line each even in a 60-column log
    assert ("  cycle-04: peak 0.103, RMS 0.00423 Jy/beam; 232 components to 0.0207 Jy/beam (mgain); solved T, G"
            in text.splitlines())
    assert "✓ cycle-05 skipped (converged)" in text and "cycle-05 done" not in text
    assert "cycle-05: peak" not in text


def test_a_terminal_gets_no_times_of_day():
    lines = _printed(terminal=True)
    assert any("cluster started (2 workers)" in line for line in lines)
    assert not any(re.match(r"\d\d:\d\d:\d\d ", line) for line in lines)
