"""What the imaging benchmarks share: the simulation's suggested cell and the machine's load."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import threading
import time
from pathlib import Path

import psutil


def suggested_cell_asec(ms: Path, size: int) -> float:
    """Cell (arcsec) that spreads the simulation's suggested field (``simulation.json`` beside ``ms``) over ``size`` pixels."""
    suggested = json.loads((Path(ms).parent / "simulation.json").read_text())["suggested_imaging"]
    return suggested["npix"] * suggested["cell_arcsec"] / size


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages, rounded: every figure here is taken on a shared machine."""
    return [round(x, 2) for x in os.getloadavg()]


def run_measured(command: list[str], log: Path) -> dict:
    """Run ``command``; wall seconds, CPU seconds (user + system) and the peak RSS (MiB) of its process tree."""
    peak = 0
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        root = psutil.Process(proc.pid)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                total = 0
                try:
                    for p in [root, *root.children(recursive=True)]:
                        try:
                            total += p.memory_info().rss
                        except psutil.Error:
                            pass
                except psutil.Error:
                    pass
                peak = max(peak, total)
                done.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = proc.wait()
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
    if rc != 0:
        raise SystemExit(f"{command[0]} failed (exit {rc}); see {log}:\n{log.read_text()[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the reaped process tree's CPU time
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mib": round(peak / 2**20, 1)}
