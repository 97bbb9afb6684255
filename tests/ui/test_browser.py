"""``sdpflow ui`` in headless Chromium: a completed and a running run; the running run's count grows between loads."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")

from sdpflow.store import RunStore  # noqa: E402
from tests.conftest import headless_chromium  # noqa: E402
from tests.ui.test_app import recorded_runs  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SQUARES = "tests.engine.fanout_pipeline:SQUARES"


def _started(command: list[str], output=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "300"})


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _wait_for(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}")


def _items_done(store: RunStore, run_id: str) -> int:
    return sum(sum(counts.values()) for counts in store.item_counts(run_id).values())


def test_runs_and_a_running_run_in_headless_chromium(tmp_path):
    store, done, _ = recorded_runs(tmp_path)
    db = store.url
    cli = [sys.executable, "-m", "sdpflow.cli", "--db", db]
    running = _started([*cli, "run", "flow", SQUARES, "--out", str(tmp_path / "running"),
                        "--set", "count=3000", "--set", "sleep_ms=40"])
    ui = _started([*cli, "ui", "--port", "0"], output=subprocess.PIPE)
    try:
        link = _wait_for(lambda: re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", ui.stdout.readline() or ""),
                         "the link sdpflow ui prints").group(0)
        base, token = link.split("/?token=")
        run_id = _wait_for(lambda: next((run["id"] for run in store.list_runs() if "squares" in run["id"]
                                         and run["id"] != done), None), "the running run's record")
        _wait_for(lambda: _items_done(store, run_id) > 0, "the first items of the running run")

        runs_page = headless_chromium(tmp_path / "profile", link, "--dump-dom").stdout
        assert 'id="filters"' in runs_page and 'id="runs"' in runs_page
        for run, status in ((done, "completed"), (run_id, "running")):
            assert re.search(rf'data-run="{run}">.*?class="status status-{status}"', runs_page, re.S), (run, status)

        page_url = f"{base}/runs/{run_id}?token={token}"
        first = headless_chromium(tmp_path / "profile", page_url, "--dump-dom").stdout
        assert 'data-status="running"' in first and 'data-stage="squares"' in first
        assert 'id="events"' in first and "items-planned" in first and 'id="config"' in first and "sleep_ms: 40" in first
        count = int(re.search(r'id="items-done">(\d+)<', first).group(1))
        assert re.search(r'id="items-total">3000<', first)
        _wait_for(lambda: _items_done(store, run_id) > count, "more items done")
        shot = tmp_path / "run.png"
        second = headless_chromium(tmp_path / "profile", page_url, "--dump-dom", f"--screenshot={shot}",
                                   "--window-size=1000,800").stdout
        assert 0 < count < int(re.search(r'id="items-done">(\d+)<', second).group(1)) <= 3000
    finally:
        _stop(running)
        _stop(ui)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L")).astype(float)
    assert pixels.shape == (800, 1000)
    assert (pixels < 128).mean() > 0.005 and pixels.std() > 10  # text and tables drawn, not a blank page
