"""What a report says of a MeasurementSet besides its metadata: flagged fraction and a uv sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdpflow.radio.ms import _BLOCK_ROWS, _open


def flag_fraction(path: str | Path) -> float:
    """Fraction (0..1) of visibility samples [row, chan, corr] flagged in FLAG (or by FLAG_ROW), read in blocks of rows."""
    flagged = total = 0
    with _open(path) as main:
        has_row_flags = "FLAG_ROW" in main.colnames()
        for start in range(0, main.nrows(), _BLOCK_ROWS):
            rows = min(_BLOCK_ROWS, main.nrows() - start)
            flags = main.getcol("FLAG", startrow=start, nrow=rows)
            if has_row_flags:
                flags = flags | main.getcol("FLAG_ROW", startrow=start, nrow=rows)[:, None, None]
            flagged += int(np.count_nonzero(flags))
            total += flags.size
    return flagged / total if total else 0.0


def uvw_sample(path: str | Path, most: int = 60_000) -> np.ndarray:
    """UVW (metres) [row, 3] of at most ``most`` rows spread evenly over the MS, finite rows only."""
    with _open(path) as main:
        step = max(1, -(-main.nrows() // most))
        uvw = main.getcol("UVW", rowincr=step) if step > 1 else main.getcol("UVW")
    return uvw[np.isfinite(uvw).all(axis=1)]
