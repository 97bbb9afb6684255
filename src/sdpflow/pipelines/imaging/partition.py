"""Split a MeasurementSet into time × frequency chunks that workers read themselves."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """A contiguous row range (whole integrations) × channel range of an MS."""

    index: int
    rows: tuple[int, int]
    channels: tuple[int, int]
    band_channels: int  # channels of the whole band, to place this chunk's channels in it

    @property
    def n_rows(self) -> int:
        return self.rows[1] - self.rows[0]


def plan_chunks(
    time_rows: list[tuple[int, int]],
    times: np.ndarray,
    n_channels: int,
    *,
    time_chunks: int,
    frequency_chunks: int = 1,
    solution_intervals_s: tuple[float | None, ...] = (),
    integration_s: float = 0.0,
) -> list[Chunk]:
    """Chunks of about equal size whose time boundaries fall between solution intervals.

    time_rows: the (start, stop) rows of each integration; times: [time] seconds;
    solution_intervals_s: the gain solution intervals of the calibration terms (None: each
    integration), so that no solution interval spans two chunks and the solutions do not
    depend on the chunking; integration_s: the integration time in seconds.
    """
    n_times = len(time_rows)
    if n_times == 0:
        return []
    slot_of_time = np.arange(n_times) // _integrations_per_slot(solution_intervals_s, integration_s)
    n_slots = int(slot_of_time[-1]) + 1
    wanted = max(1, min(time_chunks, n_slots))
    # the first integration of each chunk: slots split into ``wanted`` nearly equal groups
    slot_bounds = [round(k * n_slots / wanted) for k in range(wanted + 1)]
    first_time = [int(np.searchsorted(slot_of_time, slot, side="left")) for slot in slot_bounds[:-1]] + [n_times]
    frequency_chunks = max(1, min(frequency_chunks, n_channels))
    channel_bounds = [round(k * n_channels / frequency_chunks) for k in range(frequency_chunks + 1)]
    chunks = []
    for t in range(wanted):
        rows = (time_rows[first_time[t]][0], time_rows[first_time[t + 1] - 1][1])
        for f in range(frequency_chunks):
            chunks.append(Chunk(len(chunks), rows, (channel_bounds[f], channel_bounds[f + 1]), n_channels))
    return chunks


def _integrations_per_slot(intervals_s: tuple[float | None, ...], integration_s: float) -> int:
    """Integrations in the smallest block that holds whole solution intervals of every term.

    The gain solver groups ``round(timeslice / integration)`` integrations from the start of
    the data it is given, so chunks must start at multiples of the least common multiple.
    """
    per_slot = 1
    for interval in intervals_s:
        if interval and integration_s > 0:
            per_slot = math.lcm(per_slot, max(1, int(round(interval / integration_s))))
    return per_slot


#: Bytes per image pixel and plane a worker holds: the images in float64 (dirty, residual, model,
#: PSF and a scratch copy: 5 × 8) and the gridder's complex128 grid, twice the image on a side (4 × 16).
IMAGE_BYTES_PER_PIXEL = 5 * 8 + 4 * 16
#: Bytes per visibility and correlation a worker keeps of its chunk: data and model (complex64), weight
#: (float32) and flag (bool); uvw adds 24 bytes per row.
CHUNK_BYTES_PER_SAMPLE = 8 + 8 + 4 + 1


def image_bytes(npix_x: int, npix_y: int, n_planes: int) -> int:
    """About the bytes a worker needs for the images of one gridding or minor cycle (a lower bound)."""
    return npix_x * npix_y * n_planes * IMAGE_BYTES_PER_PIXEL


def chunk_bytes(chunk: Chunk, n_correlations: int) -> int:
    """About the bytes a worker keeps for one chunk of visibilities (a lower bound)."""
    n_channels = chunk.channels[1] - chunk.channels[0]
    return chunk.n_rows * (n_channels * n_correlations * CHUNK_BYTES_PER_SAMPLE + 24)
