"""Gain solutions for the run report: one small panel per antenna, named.

Phases are drawn on a fixed −180…180° axis (noise then looks like noise); amplitudes only
for terms that solve them (G, B; T is phase-only). Every receptor and channel is a line.
A bandpass (B) is drawn against frequency, other terms against time. Panels are placed by
hand on one figure with ticks only at the left and bottom edges: 48 matplotlib subplots
with their own tick machinery took 3× as long to draw.
"""

from __future__ import annotations

import numpy as np

from sdpflow.report.plots import distinct_colours, plt

#: Panels per row of a gain figure, and a panel's size (inches).
COLUMNS = 8
PANEL_W, PANEL_H = 1.5, 1.0
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP = 0.7, 0.55, 0.45


def gain_panels_figure(tables: dict, antenna_names: list[str], *, quantity: str):
    """Per-antenna panels of ``quantity`` ("phase" in degrees or "amplitude") for every term in ``tables``.

    tables: term name -> :class:`~sdpflow.radio.datamodels.GainTable` (gain [time, antenna,
    chan, receptor]); antenna_names: [antenna]. The figure's ``regions`` attribute lists
    (antenna name, (x0, y0, x1, y1)) of each panel as fractions of the figure, top left origin.
    """
    shown = {name: table for name, table in tables.items() if quantity == "phase" or table.mode in ("G", "B")}
    n_antennas = max(table.gain.shape[1] for table in shown.values())
    names = list(antenna_names)[:n_antennas] + [f"antenna {i}" for i in range(len(antenna_names), n_antennas)]
    rows = -(-n_antennas // COLUMNS)
    width, height = MARGIN_LEFT + COLUMNS * PANEL_W + 0.2, MARGIN_BOTTOM + rows * PANEL_H + MARGIN_TOP
    figure = plt.figure(figsize=(width, height))
    colours = dict(zip(shown, distinct_colours(len(shown))))
    against_frequency = all(table.mode == "B" for table in shown.values())
    limits = (-180, 180) if quantity == "phase" else _amplitude_limits(shown)
    figure.regions = []
    figure.dpi_for_full_resolution = 90
    for antenna, name in enumerate(names):
        row, column = divmod(antenna, COLUMNS)
        left, bottom = (MARGIN_LEFT + column * PANEL_W) / width, (height - MARGIN_TOP - (row + 1) * PANEL_H) / height
        axes = figure.add_axes((left, bottom, 0.94 * PANEL_W / width, 0.86 * PANEL_H / height))
        for term, table in shown.items():
            _draw_antenna(axes, table, antenna, quantity, colours[term], against_frequency)
        axes.set_ylim(*limits)
        axes.text(0.03, 0.96, name, transform=axes.transAxes, fontsize=7, va="top", ha="left")
        axes.tick_params(labelsize=6, length=2)
        if column:
            axes.set_yticks([])
        elif quantity == "phase":
            axes.set_yticks([-180, 0, 180])
        if antenna < n_antennas - COLUMNS:
            axes.set_xticks([])
        figure.regions.append((name, (left, 1 - bottom - 0.86 * PANEL_H / height, left + 0.94 * PANEL_W / width,
                                      1 - bottom)))
    figure.supylabel("phase (°)" if quantity == "phase" else "amplitude", fontsize=8)
    figure.supxlabel("frequency (MHz)" if against_frequency else "minutes from start", fontsize=8)
    figure.legend(handles=[plt.Line2D([], [], color=colours[term], lw=1.5) for term in shown],
                  labels=[f"{term} ({'phase only' if table.mode == 'T' else table.mode})" for term, table in shown.items()],
                  loc="upper center", ncol=len(shown), fontsize=8, frameon=False)
    return figure


def _amplitude_limits(tables: dict) -> tuple[float, float]:
    values = np.concatenate([np.abs(table.gain[table.weight > 0]) for table in tables.values()])
    if not values.size:
        return 0.0, 2.0
    low, high = float(values.min()), float(values.max())
    pad = max(0.05 * (high - low), 0.01)
    return max(0.0, low - pad), high + pad


def _draw_antenna(axes, table, antenna: int, quantity: str, colour, against_frequency: bool) -> None:
    if antenna >= table.gain.shape[1]:
        return
    gains = table.gain[:, antenna]  # [time, chan, receptor]
    values = np.degrees(np.angle(gains)) if quantity == "phase" else np.abs(gains)
    values = np.where(table.weight[:, antenna] > 0, values, np.nan)
    if against_frequency:
        x = np.asarray(table.frequency) / 1e6
        axes.plot(x, values.reshape(values.shape[0], values.shape[1], -1).transpose(1, 0, 2).reshape(len(x), -1),
                  ".-", color=colour, lw=0.5, ms=1.5, alpha=0.6)
    else:
        minutes = (np.asarray(table.time) - table.time[0]) / 60
        axes.plot(minutes, values.reshape(values.shape[0], -1), ".-", color=colour, lw=0.6, ms=1.5)
