"""Stokes I catalogues of islands and components (RACS style): read from FITS, VOTable or CSV.

A catalogue has one row per component (a Gaussian of the source finder); the components that
share a source id form an island. Columns are found through a mapping (role → column name,
see :class:`sdpflow.config.polarimetry.CatalogueColumns`); values are converted to degrees
(positions, position angle), arcsec (sizes) and Jy (fluxes) through the column's unit when it
has one, else assuming degrees, arcsec and ``flux_unit``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sdpflow.errors import DataError

#: Roles read as numbers, with the unit assumed when the column has none (``flux`` → flux_unit).
NUMERIC_ROLES = {"ra": "deg", "dec": "deg", "peak_flux": "flux", "total_flux": "flux", "maj": "arcsec",
                 "min": "arcsec", "pa": "deg", "truth_rm": None, "truth_fracpol": None, "truth_polangle": None}
#: Their units here.
TARGET_UNITS = {"ra": "deg", "dec": "deg", "peak_flux": "Jy", "total_flux": "Jy", "maj": "arcsec", "min": "arcsec",
                "pa": "deg"}


@dataclass(frozen=True)
class Components:
    """A catalogue's components, [n] each: ``source_id``, ``component_id`` (str); ``ra``, ``dec``,
    ``pa`` (deg); ``maj``, ``min`` (arcsec); ``peak_flux``, ``total_flux`` (Jy); ``truth_rm``
    (rad/m²), ``truth_fracpol``, ``truth_polangle`` (deg). NaN where the catalogue has no such column."""

    source_id: np.ndarray
    component_id: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    peak_flux: np.ndarray
    total_flux: np.ndarray
    maj: np.ndarray
    min: np.ndarray
    pa: np.ndarray
    truth_rm: np.ndarray
    truth_fracpol: np.ndarray
    truth_polangle: np.ndarray

    def __len__(self) -> int:
        return len(self.component_id)

    def islands(self) -> dict[str, np.ndarray]:
        """{source id: indices of its components, in catalogue order}, islands in order of first appearance."""
        order: dict[str, list[int]] = {}
        for index, source in enumerate(self.source_id.tolist()):
            order.setdefault(source, []).append(index)
        return {source: np.asarray(indices) for source, indices in order.items()}

    def row(self, index: int) -> dict[str, Any]:
        """Component ``index`` as plain values (None for NaN)."""
        values: dict[str, Any] = {"source_id": str(self.source_id[index]), "component_id": str(self.component_id[index])}
        for name in NUMERIC_ROLES:
            value = float(getattr(self, name)[index])
            values[name] = value if np.isfinite(value) else None
        return values


def read_table(path: str | Path):
    """An astropy Table from a FITS, VOTable or CSV file (by its suffix); DataError when unreadable."""
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise DataError(f"catalogue {path}: no such file: check the path")
    suffix = path.suffix.lower()
    formats = {".fits": "fits", ".fit": "fits", ".fz": "fits", ".xml": "votable", ".vot": "votable",
               ".votable": "votable", ".csv": "ascii.csv", ".txt": "ascii.csv"}
    if suffix not in formats:
        raise DataError(f"catalogue {path}: unknown format {suffix or '(no suffix)'}: give a .fits, .xml/.vot or .csv file")
    try:
        with warnings.catch_warnings():  # a corrupt file is reported once, below, not by astropy's warnings too
            warnings.simplefilter("ignore")
            return Table.read(path, format=formats[suffix])
    except Exception as error:  # noqa: BLE001 - astropy raises many kinds for a corrupt file
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"catalogue {path}: cannot be read as {formats[suffix]}: {message}") from None


def _numbers(table, name: str, role: str, flux_unit: str, where: str) -> np.ndarray:
    import astropy.units as u

    column = table[name]
    try:
        values = np.asarray(np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan), dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: column {name} ({role}) is not numeric") from None
    target = TARGET_UNITS.get(role)
    if target is None:
        return values
    assumed = flux_unit if NUMERIC_ROLES[role] == "flux" else NUMERIC_ROLES[role]
    try:
        unit = u.Unit(column.unit) if getattr(column, "unit", None) is not None else u.Unit(assumed)
    except ValueError:
        raise DataError(f"{where}: column {name} ({role}) has a unit astropy does not know: {column.unit}") from None
    if target == "Jy" and unit.is_equivalent(u.Jy / u.beam):
        unit = unit * u.beam  # peak fluxes per beam: the beam stays implicit
    if not unit.is_equivalent(target):
        raise DataError(f"{where}: column {name} ({role}) has unit {unit}, which does not convert to {target}")
    return (values * unit).to_value(target)


def read_catalogue(path: str | Path, columns: Mapping[str, Any], *, flux_unit: str = "mJy") -> Components:
    """Read a catalogue through a column mapping (module docstring).

    Refuses, with a DataError naming the file and the column: a mapped column that is missing,
    a non-numeric or unconvertible one, a position that is not finite, a component id that
    repeats, and a catalogue without rows.
    """
    table = read_table(path)
    where = f"catalogue {path}"
    n = len(table)
    if n == 0:
        raise DataError(f"{where}: no rows")
    mapped = {role: name for role, name in columns.items() if role in {*NUMERIC_ROLES, "source_id", "component_id"}}
    missing = [f"{name} ({role})" for role, name in mapped.items() if name is not None and name not in table.colnames]
    if missing:
        raise DataError(f"{where}: no column {', '.join(missing)}; it has {', '.join(table.colnames[:30])}: "
                        "map the columns in the config (columns.ra=..., columns.source_id=null for none)")
    values = {}
    for role in NUMERIC_ROLES:
        name = mapped.get(role)
        values[role] = _numbers(table, name, role, flux_unit, where) if name else np.full(n, np.nan)
    for role in ("ra", "dec"):
        bad = np.flatnonzero(~np.isfinite(values[role]))
        if bad.size:
            raise DataError(f"{where}: row {bad[0] + 1}: {mapped[role]} ({role}) is not a finite number")
    if np.any(np.abs(values["dec"]) > 90):
        raise DataError(f"{where}: declinations beyond ±90°: is {mapped['dec']} in degrees?")
    component_id = (np.array([str(v).strip() for v in table[mapped["component_id"]]], dtype=object)
                    if mapped.get("component_id") else np.array([str(i) for i in range(n)], dtype=object))
    source_id = (np.array([str(v).strip() for v in table[mapped["source_id"]]], dtype=object)
                 if mapped.get("source_id") else component_id.copy())
    unique, counts = np.unique(component_id.astype(str), return_counts=True)
    if np.any(counts > 1):
        raise DataError(f"{where}: component id {unique[counts > 1][0]} appears {counts.max()} times: "
                        f"{mapped.get('component_id')} must be unique")
    return Components(source_id=source_id, component_id=component_id, **values)
