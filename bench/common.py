"""What the imaging benchmarks share: the simulation's suggested cell and the machine's load."""

from __future__ import annotations

import json
import os
from pathlib import Path


def suggested_cell_asec(ms: Path, size: int) -> float:
    """Cell (arcsec) that spreads the simulation's suggested field (``simulation.json`` beside ``ms``) over ``size`` pixels."""
    suggested = json.loads((Path(ms).parent / "simulation.json").read_text())["suggested_imaging"]
    return suggested["npix"] * suggested["cell_arcsec"] / size


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages, rounded: every figure here is taken on a shared machine."""
    return [round(x, 2) for x in os.getloadavg()]
