"""Shared fixtures: run databases on SQLite and on the real PostgreSQL server CI starts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

IN_CI = bool(os.environ.get("SDPFLOW_CI"))


def require_service(available: bool, what: str) -> None:
    """Skip when a service is absent on a developer machine; in CI its absence is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available")
    pytest.skip(f"{what} not available (CI starts it via .ci/run)")


def headless_chromium(profile: Path, url: str, *options: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """Debian's ``chromium`` run headless on ``url`` with ``options`` (``--dump-dom``, ``--screenshot=PATH``,
    ``--window-size=W,H``...); its own profile folder ``profile``. Skips (fails in CI) when it is not installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    require_service(browser is not None, "chromium (apt-get install chromium)")
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={profile}", *options, url],
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A run database URL: a fresh SQLite file, or the PostgreSQL test database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    url = os.environ.get("SDPFLOW_TEST_POSTGRES_URL")
    require_service(bool(url), "PostgreSQL (SDPFLOW_TEST_POSTGRES_URL)")
    return url


@pytest.fixture(autouse=True)
def _isolated_default_db(tmp_path, monkeypatch):
    """Keep tests away from the user's own run database."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.delenv("SDPFLOW_DB", raising=False)
    monkeypatch.delenv("SDPFLOW_SCHEDULER", raising=False)
