"""Antenna gain solving (StefCal / Antsol iteration) for Stokes I, and applying gain tables.

The measurement equation is V_pq = g_p * conj(g_q) * M_pq for antennas p (antenna1) and
q (antenna2), with one complex gain per antenna, solution interval and channel group:

* ``T``: phase only, one solution across all channels;
* ``G``: amplitude and phase, one solution across all channels;
* ``B``: amplitude and phase per channel (bandpass).

Each StefCal step sets g_p = sum_q X_pq g_q / sum_q Y_pq |g_q|**2 with X_pq = sum w V_pq
conj(M_pq), Y_pq = sum w |M_pq|**2 (Salvini & Wijnholds 2014), averaging every second step.
Gains are referred to a reference antenna whose phase is set to zero.
"""

from __future__ import annotations

import numpy as np

from sdpflow.radio.datamodels import GainTable, Visibility, stokes_i, time_row_ranges, unflagged_weights

GAIN_MODES = ("T", "G", "B")


def solution_intervals(time: np.ndarray, interval: np.ndarray, timeslice: float | None) -> list[tuple[int, int]]:
    """Row ranges of solution intervals: whole integrations, ``timeslice`` seconds each (None = one each)."""
    ranges = time_row_ranges(time)
    if timeslice is None or not ranges:
        return ranges
    integration = float(np.median(interval)) if len(interval) else 1.0
    per_slot = max(1, int(round(float(timeslice) / integration))) if integration > 0 else 1
    return [(ranges[i][0], ranges[min(i + per_slot, len(ranges)) - 1][1]) for i in range(0, len(ranges), per_slot)]


def _normal_equations(data, model, weight, antenna1, antenna2, n_antennas, slots, channel_groups):
    """X and Y [slot, group, antenna, antenna] of each solution interval and channel group."""
    n_slots, n_groups = len(slots), len(channel_groups)
    x = np.zeros((n_slots, n_groups, n_antennas, n_antennas), np.complex128)
    y = np.zeros((n_slots, n_groups, n_antennas, n_antennas))
    cross = antenna1 != antenna2
    for s, (start, stop) in enumerate(slots):
        rows = np.arange(start, stop)[cross[start:stop]]
        a1, a2 = antenna1[rows], antenna2[rows]
        pair = a1 * n_antennas + a2
        pair_t = a2 * n_antennas + a1
        w, m = weight[rows], model[rows]  # the interval's rows once; channel groups only sum
        wdm = w * data[rows] * np.conj(m)
        wmm = w * np.abs(m) ** 2
        for g, chans in enumerate(channel_groups):
            xv = wdm[:, chans].sum(axis=1)
            yv = wmm[:, chans].sum(axis=1)
            size = n_antennas * n_antennas
            xs = np.bincount(pair, xv.real, size) + 1j * np.bincount(pair, xv.imag, size)
            xs_t = np.bincount(pair_t, xv.real, size) - 1j * np.bincount(pair_t, xv.imag, size)
            ys = np.bincount(pair, yv, size) + np.bincount(pair_t, yv, size)
            x[s, g] = (xs + xs_t).reshape(n_antennas, n_antennas)
            y[s, g] = ys.reshape(n_antennas, n_antennas)
    return x, y


def _stefcal(x, y, *, phase_only: bool, tol: float, max_iterations: int) -> tuple[np.ndarray, int]:
    """Iterate all solution intervals and channel groups at once; returns gains [..., antenna]."""
    gains = np.ones(x.shape[:-1], np.complex128)
    has_data = y.sum(axis=-1) > 0
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        numerator = np.einsum("...pq,...q->...p", x, gains)
        denominator = np.einsum("...pq,...q->...p", y, np.abs(gains) ** 2)
        new = np.where(has_data, numerator / np.where(has_data, denominator, 1.0), 1.0)
        if phase_only:
            new = np.where(np.abs(new) > 0, new / np.where(np.abs(new) > 0, np.abs(new), 1.0), 1.0)
        if iteration % 2 == 0:
            new = 0.5 * (new + gains)
            if phase_only:
                new = new / np.where(np.abs(new) > 0, np.abs(new), 1.0)
        change = np.max(np.abs(new - gains)) / max(np.max(np.abs(new)), 1e-30)
        gains = new
        if change < tol:
            break
    return gains, iteration


def solve_gains(vis: Visibility, model_vis: np.ndarray, *, mode: str = "G", timeslice: float | None = None,
                refant: int = 0, tol: float = 1e-8, max_iterations: int = 200,
                weights: np.ndarray | None = None) -> GainTable:
    """Solve antenna gains so that vis ≈ g_p conj(g_q) model_vis, one solution per interval.

    vis: observed visibilities (Stokes I is formed from XX/YY or RR/LL); model_vis: model
    Stokes I visibilities [row, chan] (Jy); mode: "T" (phase), "G" (complex) or "B" (complex
    per channel); timeslice: solution interval in seconds (None = each integration); refant:
    antenna whose phase is zero (the next antenna with data if it has none); tol: stop when
    the largest relative gain change is below it; weights: [row, chan] (default: the data
    weights); flagged samples and autocorrelations are ignored. Antennas without data get
    gain 1 and weight 0. The gain table's time axis can be concatenated across time chunks.
    Returns a :class:`GainTable`: ``gain`` complex128 [interval, antenna, chan (1, or each channel for
    B), receptor], ``weight`` float64 alike, ``time`` [interval] (MJD seconds, centres).

    Phases put on a 1 Jy point source are found again, relative to the reference antenna:

    >>> import numpy as np
    >>> from sdpflow.radio.layouts import low_like_configuration
    >>> from sdpflow.radio.simulate import make_visibility
    >>> vis = make_visibility(low_like_configuration(8), phase_centre=(0.26, -0.79),  # 8 stations: 28 baselines
    ...                       times=5.0e9 + 60.0 * np.arange(4), interval=60.0,       # 4 integrations (MJD s)
    ...                       frequency=np.array([1.0e8]), channel_width=np.array([1.0e6]))  # 1 channel (Hz)
    >>> vis.vis.shape, vis.vis.dtype                                   # [row, chan, pol], Jy
    ((112, 1, 1), dtype('complex128'))
    >>> cell = np.radians(60 / 3600)                                   # 60 arcsec pixels, in radians
    >>> phase = np.linspace(0.0, 1.0, 8)                                # rad, per antenna
    >>> g = np.exp(1j * phase)
    >>> observed = vis.with_vis((g[vis.antenna1] * np.conj(g[vis.antenna2]))[:, None, None])
    >>> table = solve_gains(observed, np.ones((vis.n_rows, 1)), mode="T")
    >>> table.gain.shape                                               # one solution per integration
    (4, 8, 1, 1)
    >>> bool(np.allclose(np.angle(table.gain[..., 0, 0]), phase - phase[0], atol=1e-6))
    True
    """
    if mode not in GAIN_MODES:
        raise ValueError(f"unknown gain mode {mode!r}: choose T, G or B")
    vis_i = stokes_i(vis)
    data = vis_i.vis[:, :, 0].astype(np.complex128)
    model = np.asarray(model_vis, dtype=np.complex128)
    if model.ndim == 3:
        model = model[:, :, 0]
    weight = unflagged_weights(vis_i, weights)
    n_antennas = _n_antennas(vis)
    slots = solution_intervals(vis.time, vis.interval, timeslice)
    if mode == "B":
        channel_groups = [np.array([c]) for c in range(vis.n_channels)]
        frequency = vis.frequency.copy()
    else:
        channel_groups = [np.arange(vis.n_channels)]
        frequency = np.array([float(np.mean(vis.frequency))])
    x, y = _normal_equations(data, model, weight, vis.antenna1, vis.antenna2, n_antennas, slots, channel_groups)
    gains, _ = _stefcal(x, y, phase_only=(mode == "T"), tol=tol, max_iterations=max_iterations)
    solution_weight = np.einsum("...pq,...q->...p", y, np.abs(gains) ** 2)
    gains = _refer_to(gains, solution_weight, refant)
    times = np.array([vis.time[start:stop].mean() for start, stop in slots])
    intervals = np.array([_span(vis.time[start:stop], vis.interval[start:stop]) for start, stop in slots])
    # [slot, group, antenna] -> [slot, antenna, chan, receptor]
    return GainTable(
        gain=np.transpose(gains, (0, 2, 1))[..., None],
        weight=np.transpose(solution_weight, (0, 2, 1))[..., None],
        time=times, interval=intervals, frequency=frequency, receptors=("I",), mode=mode,
    )


def _n_antennas(vis: Visibility) -> int:
    if vis.configuration is not None:
        return vis.configuration.n_antennas
    return int(max(vis.antenna1.max(initial=0), vis.antenna2.max(initial=0))) + 1


def _span(time: np.ndarray, interval: np.ndarray) -> float:
    return float(time.max() - time.min() + np.median(interval))


def _refer_to(gains: np.ndarray, weight: np.ndarray, refant: int) -> np.ndarray:
    """Rotate each solution so the reference antenna (or the next one with data) has zero phase."""
    n_antennas = gains.shape[-1]
    order = np.roll(np.arange(n_antennas), -refant)
    has_data = weight[..., order] > 0
    first = np.argmax(has_data, axis=-1)
    ref = np.take_along_axis(gains[..., order], first[..., None], axis=-1)
    magnitude = np.abs(ref)
    rotation = np.where(magnitude > 0, np.conj(ref) / np.where(magnitude > 0, magnitude, 1.0), 1.0)
    return gains * rotation


def gain_slot_of(gaintable: GainTable, times: np.ndarray) -> np.ndarray:
    """Index [row] of the solution interval that holds each time (the nearest one outside them)."""
    starts = gaintable.time - gaintable.interval / 2
    index = np.searchsorted(starts, np.asarray(times), side="right") - 1
    return np.clip(index, 0, len(gaintable.time) - 1)


def combined_gains(tables: list[GainTable]) -> GainTable:
    """The product of gain terms (e.g. T then G) sampled on the last term's solution times."""
    base = tables[-1]
    total = base.gain.copy()
    for table in tables[:-1]:
        total = total * table.gain[gain_slot_of(table, base.time)]
    return GainTable(gain=total, weight=base.weight, time=base.time, interval=base.interval,
                     frequency=base.frequency, receptors=base.receptors, mode="combined")


def apply_gains(vis_array: np.ndarray, gaintable: GainTable, antenna1: np.ndarray, antenna2: np.ndarray,
                times: np.ndarray, *, inverse: bool = True) -> np.ndarray:
    """Corrupt (inverse=False: V g_p conj(g_q)) or correct (inverse=True: V / (g_p conj(g_q))) visibilities.

    vis_array: [row, chan] or [row, chan, pol] complex; times: [row] seconds (MJD). A gain
    table with one channel applies to all channels, otherwise its channels must match.
    Samples whose gains are unsolved (weight 0) or zero are set to 0 when correcting; find
    them with :func:`unsolved_samples`.
    """
    factor, valid = _baseline_gains(vis_array.shape[1], gaintable, antenna1, antenna2, times)
    if inverse:
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(valid, 1.0 / np.where(valid, factor, 1.0), 0.0)
    if vis_array.ndim == 3:
        factor = factor[:, :, None]
    return vis_array * factor


def apply_solutions(vis: Visibility, gaintable: GainTable) -> Visibility:
    """``vis`` corrected by scalar antenna gains, every correlation or Stokes plane alike: V / (g_p conj(g_q)).

    gaintable: antennas in the MS's order, one channel or ``vis``'s channels. Samples whose
    antennas have no solution are flagged with weight 0.
    """
    corrected = apply_gains(vis.vis, gaintable, vis.antenna1, vis.antenna2, vis.time, inverse=True)
    unsolved = unsolved_samples(vis.n_channels, gaintable, vis.antenna1, vis.antenna2, vis.time)[:, :, None]
    return vis.with_vis(corrected.astype(vis.vis.dtype), weight=np.where(unsolved, 0.0, vis.weight).astype(vis.weight.dtype),
                        flag=vis.flag | unsolved)


def unsolved_samples(n_channels: int, gaintable: GainTable, antenna1: np.ndarray, antenna2: np.ndarray,
                     times: np.ndarray) -> np.ndarray:
    """Boolean [row, chan]: samples whose antennas have no valid gain solution."""
    return ~_baseline_gains(n_channels, gaintable, antenna1, antenna2, times)[1]


def _baseline_gains(n_channels, gaintable, antenna1, antenna2, times):
    slot = gain_slot_of(gaintable, times)
    gain = gaintable.gain[..., 0]
    ok = (gaintable.weight[..., 0] > 0) & (np.abs(gain) > 0)
    if gain.shape[2] not in (1, n_channels):
        raise ValueError(f"gain table has {gain.shape[2]} channels, visibilities {n_channels}")
    g1, g2 = gain[slot, antenna1], gain[slot, antenna2]
    factor = g1 * np.conj(g2)
    valid = ok[slot, antenna1] & ok[slot, antenna2]
    return np.broadcast_to(factor, (len(slot), n_channels)), np.broadcast_to(valid, (len(slot), n_channels))


def invert_gains(gaintable: GainTable) -> GainTable:
    """The gain table whose application undoes this one's (1 / g where solved)."""
    ok = (gaintable.weight > 0) & (np.abs(gaintable.gain) > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(ok, 1.0 / np.where(ok, gaintable.gain, 1.0), 1.0)
    return GainTable(gain=gain, weight=gaintable.weight.copy(), time=gaintable.time.copy(),
                     interval=gaintable.interval.copy(), frequency=gaintable.frequency.copy(),
                     receptors=gaintable.receptors, mode=gaintable.mode)


def normalise_amplitudes(gaintable: GainTable) -> GainTable:
    """The gain table with amplitudes divided by their geometric mean over solved antennas, per interval and channel.

    Self-calibration cannot tell a common gain amplitude from the sky's brightness; against
    a model still missing some flux it drifts to make up the difference. Holding the mean
    amplitude at 1 keeps the flux scale of the data (CASA's solnorm).
    """
    solved = (gaintable.weight > 0) & (np.abs(gaintable.gain) > 0)
    log_amplitude = np.where(solved, np.log(np.where(solved, np.abs(gaintable.gain), 1.0)), 0.0)
    count = solved.sum(axis=1, keepdims=True)
    mean = np.where(count > 0, log_amplitude.sum(axis=1, keepdims=True) / np.maximum(count, 1), 0.0)
    return GainTable(gain=gaintable.gain * np.exp(-mean), weight=gaintable.weight, time=gaintable.time,
                     interval=gaintable.interval, frequency=gaintable.frequency, receptors=gaintable.receptors,
                     mode=gaintable.mode, residual=gaintable.residual)
