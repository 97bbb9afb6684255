"""Figures for the run report, as PNG bytes (matplotlib, no display needed)."""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def image_png(image: np.ndarray, title: str, cell_arcsec: float, *, symmetric: bool = False) -> bytes:
    """An image [y, x] (Jy/beam) with RA increasing to the left, axes in arcsec from the phase centre.

    ``symmetric``: a linear red-blue scale within the 99.5th percentile of |image| (residuals,
    PSFs). Otherwise an arcsinh stretch, linear within 3σ of the noise (σ from the MAD) and
    logarithmic above, so faint sources show beside bright ones; the colour bar is labelled
    in Jy/beam.
    """
    ny, nx = image.shape
    half_x, half_y = nx * cell_arcsec / 2, ny * cell_arcsec / 2
    extent = (half_x, -half_x, -half_y, half_y)
    figure, axes = plt.subplots(figsize=(5.2, 4.4))
    if symmetric:
        limit = float(np.percentile(np.abs(image), 99.5)) or 1.0
        shown = axes.imshow(image, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit, extent=extent)
        figure.colorbar(shown, ax=axes, label="Jy/beam")
    else:
        sigma = 1.4826 * float(np.median(np.abs(image - np.median(image)))) or 1e-6
        linear = 3 * sigma
        top = max(float(image.max()), 10 * sigma)
        # the stretch is applied here rather than by a matplotlib norm: 3x faster on 1024² images
        shown = axes.imshow(np.arcsinh(image / linear), origin="lower", cmap="inferno", extent=extent,
                            vmin=np.arcsinh(-5 * sigma / linear), vmax=np.arcsinh(top / linear))
        bar = figure.colorbar(shown, ax=axes, label="Jy/beam")
        ticks = _stretch_ticks(-5 * sigma, top, linear)
        bar.set_ticks(np.arcsinh(ticks / linear), labels=[f"{tick:.2g}" for tick in ticks])
    axes.set_xlabel("ΔRA (arcsec)")
    axes.set_ylabel("ΔDec (arcsec)")
    axes.set_title(title)
    return _png(figure)


def _stretch_ticks(low: float, high: float, linear: float) -> np.ndarray:
    """Colour-bar values for an arcsinh stretch: 0, ±the linear scale, then decades up to ``high``."""
    ticks = [0.0, linear] + ([-linear] if low <= -linear else [])
    decade = 10 ** np.ceil(np.log10(linear * 3))
    while decade < high / 2:
        ticks.append(decade)
        decade *= 10
    ticks.append(high)
    return np.array(sorted(ticks))


def cycles_png(cycles: list[dict[str, Any]]) -> bytes:
    """Peak and RMS of the residual at each major cycle (log scale)."""
    figure, axes = plt.subplots(figsize=(5.2, 3.4))
    numbers = [cycle["cycle"] for cycle in cycles]
    axes.semilogy(numbers, [c["peak_residual_jy"] for c in cycles], "o-", label="peak residual")
    axes.semilogy(numbers, [c["rms_residual_jy"] for c in cycles], "s-", label="RMS residual")
    axes.set_xlabel("major cycle")
    axes.set_ylabel("Jy/beam")
    axes.legend()
    axes.grid(alpha=0.3)
    return _png(figure)


def gains_png(name: str, times: np.ndarray, gains: np.ndarray) -> bytes:
    """Gain phase (deg) and amplitude against time for every antenna; gains [time, antenna]."""
    figure, (phase_axes, amp_axes) = plt.subplots(2, 1, figsize=(6.0, 4.6), sharex=True)
    minutes = (times - times[0]) / 60
    for antenna in range(gains.shape[1]):
        phase_axes.plot(minutes, np.degrees(np.angle(gains[:, antenna])), ".-", lw=0.6, ms=2)
        amp_axes.plot(minutes, np.abs(gains[:, antenna]), ".-", lw=0.6, ms=2)
    phase_axes.set_ylabel("phase (deg)")
    amp_axes.set_ylabel("amplitude")
    amp_axes.set_xlabel("minutes from start")
    phase_axes.set_title(f"{name} solutions, {gains.shape[1]} antennas")
    return _png(figure)


def timeline_png(stages: list[tuple[str, float, float]]) -> bytes:
    """A Gantt chart of stages: (name, start s, end s) from the run's start."""
    figure, axes = plt.subplots(figsize=(6.0, 0.35 * len(stages) + 1.0))
    for row, (name, start, end) in enumerate(stages):
        axes.barh(row, end - start, left=start, color="tab:blue")
    axes.set_yticks(range(len(stages)), [name for name, _, _ in stages])
    axes.invert_yaxis()
    axes.set_xlabel("seconds from start")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def tasks_png(tasks: list[dict[str, Any]]) -> bytes:
    """A Gantt chart of Dask tasks per worker, coloured by kind (read, grid, minor cycle...)."""
    workers = sorted({task["worker"] for task in tasks})
    kinds = sorted({_task_kind(task["key"]) for task in tasks})
    colours = {kind: plt.cm.tab10(index % 10) for index, kind in enumerate(kinds)}
    origin = min(task["start"] for task in tasks)
    figure, axes = plt.subplots(figsize=(7.0, 0.5 * len(workers) + 1.6))
    for task in tasks:
        row = workers.index(task["worker"])
        colour = colours[_task_kind(task["key"])] if task["action"] == "compute" else "lightgrey"
        axes.barh(row, task["stop"] - task["start"], left=task["start"] - origin, color=colour, height=0.8)
    axes.set_yticks(range(len(workers)), workers)
    axes.set_xlabel("seconds from the first task")
    axes.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=colours[k]) for k in kinds], labels=kinds,
                fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=4)
    return _png(figure)


def _task_kind(key: str) -> str:
    """``major_cycle-3f2a...`` -> ``major_cycle``, ``read-chunk-0003-7ff4...`` -> ``read-chunk``."""
    name = key.strip("()'\" ").split(",")[0].strip("'\" ")
    words = [part for part in name.split("-") if not (re.fullmatch(r"[0-9a-f]+", part) and re.search(r"[0-9]", part))]
    return "-".join(words) or name
