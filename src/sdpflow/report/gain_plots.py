"""Gain solutions for the run report: one small panel per antenna, named.

Phases are drawn on a fixed −180…180° scale (noise then looks like noise); amplitudes only
for terms that solve them (G, B; T is phase-only). Every receptor and channel is a line.
A bandpass (B) is drawn against frequency, other terms against time. The panels share one
matplotlib Axes, each a unit cell of it holding its antenna's lines (one LineCollection per
term): 48 Axes of their own, with their tick machinery, took 5× as long to draw.
"""

from __future__ import annotations

import numpy as np

from sdpflow.report.plots import distinct_colours, plt

#: Panels per row of a gain figure, a panel's size (inches) and the gap between panels (fraction of a panel).
COLUMNS = 8
PANEL_W, PANEL_H = 1.5, 1.0
GAP = 0.08


def gain_panels_figure(tables: dict, antenna_names: list[str], *, quantity: str):
    """Per-antenna panels of ``quantity`` ("phase" in degrees or "amplitude") for every term in ``tables``.

    tables: term name -> :class:`~sdpflow.radio.datamodels.GainTable` (gain [time, antenna,
    chan, receptor]); antenna_names: [antenna]. The figure's ``regions`` attribute lists
    (antenna name, (x0, y0, x1, y1)) of each panel as fractions of the figure, top left origin.
    """
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.patches import Rectangle

    shown = {name: table for name, table in tables.items() if quantity == "phase" or table.mode in ("G", "B")}
    n_antennas = max(table.gain.shape[1] for table in shown.values())
    names = list(antenna_names)[:n_antennas] + [f"antenna {i}" for i in range(len(antenna_names), n_antennas)]
    rows = -(-n_antennas // COLUMNS)
    against_frequency = all(table.mode == "B" for table in shown.values())
    low, high = (-180.0, 180.0) if quantity == "phase" else _amplitude_limits(shown)
    figure = plt.figure(figsize=(COLUMNS * PANEL_W + 0.6, rows * PANEL_H + 1.0))
    bottom, height = 0.55 / (rows * PANEL_H + 1.0), rows * PANEL_H / (rows * PANEL_H + 1.0)
    axes = figure.add_axes((0.3 / (COLUMNS * PANEL_W + 0.6), bottom, COLUMNS * PANEL_W / (COLUMNS * PANEL_W + 0.6), height))
    axes.set_xlim(0, COLUMNS)
    axes.set_ylim(-rows, 0)
    axes.set_axis_off()
    colours = dict(zip(shown, distinct_colours(len(shown))))
    inner = 1 - 2 * GAP
    for term, table in shown.items():
        x, values = _series(table, quantity, against_frequency)  # x [sample] in 0..1, values [antenna, line, sample]
        segments = []
        for antenna in range(min(n_antennas, values.shape[0])):
            row, column = divmod(antenna, COLUMNS)
            scaled = (np.clip(values[antenna], low, high) - low) / (high - low)
            for line in scaled:
                segments.append(np.column_stack([column + GAP + inner * x, -row - 1 + GAP + inner * line]))
        axes.add_collection(LineCollection(segments, colors=[colours[term]], linewidths=0.7))
    frames = [Rectangle((antenna % COLUMNS + GAP, -(antenna // COLUMNS) - 1 + GAP), inner, inner)
              for antenna in range(n_antennas)]
    axes.add_collection(PatchCollection(frames, facecolor="none", edgecolor="0.3", linewidth=0.6))
    for antenna, name in enumerate(names):
        axes.text(antenna % COLUMNS + GAP + 0.02, -(antenna // COLUMNS) - GAP - 0.03, name, fontsize=7, va="top")
    scale = "phase: −180° (bottom) to 180° (top) in each panel" if quantity == "phase" else \
        f"amplitude: {low:.3g} (bottom) to {high:.3g} (top) in each panel"
    span = "frequency, lowest to highest channel" if against_frequency else "time, first to last solution"
    figure.text(0.5, 0.2 / (rows * PANEL_H + 1.0), f"{scale}; across: {span}", ha="center", fontsize=8)
    figure.legend(handles=[plt.Line2D([], [], color=colours[term], lw=1.5) for term in shown],
                  labels=[f"{term} ({'phase only' if table.mode == 'T' else table.mode})" for term, table in shown.items()],
                  loc="upper center", ncol=len(shown), fontsize=8, frameon=False)
    figure.dpi_for_full_resolution = 90
    figure.regions = [(name, _figure_box(axes, antenna)) for antenna, name in enumerate(names)]
    return figure


def _series(table, quantity: str, against_frequency: bool) -> tuple[np.ndarray, np.ndarray]:
    """x [sample] scaled to 0..1 and values [antenna, line, sample]: a line per receptor and channel
    against time, or per receptor and interval against frequency; unsolved samples NaN."""
    values = np.degrees(np.angle(table.gain)) if quantity == "phase" else np.abs(table.gain)
    values = np.where(table.weight > 0, values, np.nan)  # [time, antenna, chan, receptor]
    if against_frequency:
        x = np.asarray(table.frequency, dtype=float)
        lines = values.transpose(1, 0, 3, 2)  # antenna, time, receptor, chan
    else:
        x = np.asarray(table.time, dtype=float)
        lines = values.transpose(1, 2, 3, 0)  # antenna, chan, receptor, time
    lines = lines.reshape(lines.shape[0], -1, lines.shape[-1])
    extent = x.max() - x.min()
    return (x - x.min()) / extent if extent > 0 else np.full_like(x, 0.5), lines


def _figure_box(axes, antenna: int) -> tuple[float, float, float, float]:
    """A panel's (x0, y0, x1, y1) as fractions of the figure, from the top left."""
    row, column = divmod(antenna, COLUMNS)
    inner = 1 - 2 * GAP
    corners = np.array([[column + GAP, -row - 1 + GAP], [column + GAP + inner, -row - GAP]])
    (x0, y0), (x1, y1) = axes.figure.transFigure.inverted().transform(axes.transData.transform(corners))
    return float(x0), float(1 - y1), float(x1), float(1 - y0)


def _amplitude_limits(tables: dict) -> tuple[float, float]:
    values = np.concatenate([np.abs(table.gain[table.weight > 0]) for table in tables.values()])
    if not values.size:
        return 0.0, 2.0
    low, high = float(values.min()), float(values.max())
    pad = max(0.05 * (high - low), 0.01)
    return max(0.0, low - pad), high + pad
