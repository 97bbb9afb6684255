"""WSClean 3.1's defaults for the options sdpflow spells as WSClean does, where sdpflow's differ.

``sdpflow run continuum --help`` shows each option's default and, from this table, WSClean's
when it is not the same (README.md lists every WSClean option and its sdpflow equivalent).
"""

from __future__ import annotations

#: flag -> WSClean's default, for the options whose sdpflow default is not WSClean's.
WSCLEAN_DEFAULTS: dict[str, str] = {
    "--weight": "uniform",
    "--niter": "0, no cleaning",
    "--nmajor": "20 (as -nmiter)",
    "--nmiter": "20",
    "--mgain": "1.0, no major cycles",
    "--auto-threshold": "none",
    "--scale": "0.01deg",
    "--data-column": "CORRECTED_DATA if it exists, else DATA",
    "--name": "wsclean (always written)",
    "--padding": "1.2",
    "--field": "0",
}


def wsclean_default_note(flag: str) -> str:
    """``"; WSClean's: uniform"`` for a flag whose default differs from WSClean's, else ``""``."""
    theirs = WSCLEAN_DEFAULTS.get(flag)
    return f"; WSClean's: {theirs}" if theirs is not None else ""
