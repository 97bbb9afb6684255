"""Every line sdpflow writes on stderr has its prefix: its own records, a library's, Python warnings."""

from __future__ import annotations

import logging
import subprocess
import sys

from sdpflow.loglines import LogLines


def test_records_get_sdpflow_prefixes_on_every_line():
    lines = LogLines("%(message)s")

    def record(name, level, message):
        return logging.LogRecord(name, level, __file__, 1, message, None, None)

    assert lines.format(record("sdpflow.radio.ms", logging.WARNING, "obs.ms: flagged 3")) == "warning: obs.ms: flagged 3"
    assert lines.format(record("distributed.client", logging.CRITICAL, "lost\nthe scheduler")) == \
        "error: [distributed.client] lost\nerror:   the scheduler"


PIPELINE = """
import logging, warnings
from pydantic import BaseModel
from sdpflow.errors import InputError
from sdpflow.pipelines import Pipeline

class Config(BaseModel):
    pass

def build(config):
    logging.getLogger("somelib.io").warning("a library's line")
    warnings.warn("an old API")
    raise InputError("noisy.py: refused")

NOISY = Pipeline("noisy", Config, build)
"""


def test_the_command_line_formats_library_logs_and_python_warnings(tmp_path):
    (tmp_path / "noisy.py").write_text(PIPELINE)
    done = subprocess.run([sys.executable, "-m", "sdpflow", "--db", f"sqlite:///{tmp_path / 'runs.db'}", "run", "flow",
                           "noisy:NOISY", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and lines[-1] == "error: noisy.py: refused", done.stderr
    assert lines[0] == "warning: [somelib.io] a library's line", done.stderr
    assert all(line.startswith("warning: ") for line in lines[:-1]) and "an old API" in lines[1], done.stderr
