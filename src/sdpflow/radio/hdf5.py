"""HDF5 files of visibilities and gain tables: the intermediate format of the ICAL workflow.

One group per object (``/visibility`` or ``/gaintable``); arrays are datasets with the
names and units of the data model, scalars and the provenance record are attributes.
Files are written atomically (a temporary file renamed onto the path).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sdpflow.errors import DataError
from sdpflow.provenance import atomic_path, replace_atomically
from sdpflow.radio.datamodels import ArrayConfiguration, GainTable, Visibility

_VIS_ARRAYS = ("uvw", "time", "interval", "antenna1", "antenna2", "frequency", "channel_width", "vis", "weight", "flag")
_GAIN_ARRAYS = ("gain", "weight", "time", "interval", "frequency")


def _write(path: str | Path, group_name: str, arrays: dict, attributes: dict, provenance: dict | None) -> Path:
    return _write_groups(path, {group_name: (arrays, attributes)}, provenance)


def _write_groups(path: str | Path, groups: dict[str, tuple[dict, dict]], provenance: dict | None) -> Path:
    import h5py

    path = Path(path)
    tmp = atomic_path(path)
    with h5py.File(tmp, "w") as store:
        for group_name, (arrays, attributes) in groups.items():
            group = store.create_group(group_name)
            for name, value in arrays.items():
                if value is not None:
                    group.create_dataset(name, data=value, compression="gzip" if np.size(value) > 65536 else None)
            for name, value in attributes.items():
                group.attrs[name] = value
        if provenance is not None:
            store.attrs["provenance"] = json.dumps(provenance, sort_keys=True, default=str)
    replace_atomically(tmp, path)
    return path


def _open_group(path: str | Path, group_name: str):
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such HDF5 file")
    try:
        store = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path}: not a readable HDF5 file: {error}") from None
    if group_name not in store:
        store.close()
        raise DataError(f"{path}: has no /{group_name} group")
    return store


def write_visibility_hdf5(path: str | Path, vis: Visibility, *, provenance: dict | None = None) -> Path:
    """Write a Visibility (and its array configuration) to HDF5."""
    arrays = {name: getattr(vis, name) for name in _VIS_ARRAYS}
    attributes = {"phase_centre_rad": np.asarray(vis.phase_centre), "polarisation": json.dumps(list(vis.polarisation))}
    if vis.configuration is not None:
        arrays["antenna_positions"] = vis.configuration.positions
        attributes.update(antenna_names=json.dumps(vis.configuration.names), antenna_diameter=vis.configuration.diameter,
                          telescope=vis.configuration.telescope)
    return _write(path, "visibility", arrays, attributes, provenance)


def read_visibility_hdf5(path: str | Path) -> Visibility:
    """Read a Visibility written by :func:`write_visibility_hdf5`."""
    with _open_group(path, "visibility") as store:
        group = store["visibility"]
        arrays = {name: group[name][()] for name in _VIS_ARRAYS}
        attrs = dict(group.attrs)
        configuration = None
        if "antenna_positions" in group:
            configuration = ArrayConfiguration(names=json.loads(attrs["antenna_names"]),
                                               positions=group["antenna_positions"][()],
                                               diameter=float(attrs["antenna_diameter"]),
                                               telescope=str(attrs["telescope"]))
    return Visibility(**arrays, phase_centre=tuple(float(v) for v in attrs["phase_centre_rad"]),
                      polarisation=tuple(json.loads(attrs["polarisation"])), configuration=configuration)


def _gaintable_group(table: GainTable) -> tuple[dict, dict]:
    arrays = {name: getattr(table, name) for name in _GAIN_ARRAYS}
    if table.residual is not None:
        arrays["residual"] = table.residual
    attributes = {"receptors": json.dumps(list(table.receptors)), "mode": table.mode,
                  "units": "time, interval: s (MJD UTC); frequency: Hz; gain: dimensionless"}
    return arrays, attributes


def write_gaintable_hdf5(path: str | Path, table: GainTable, *, provenance: dict | None = None) -> Path:
    """Write a GainTable to HDF5 (gain [time, antenna, chan, receptor], weight, time, interval, frequency)."""
    return _write_groups(path, {"gaintable": _gaintable_group(table)}, provenance)


def write_gaintables_hdf5(path: str | Path, terms: dict[str, GainTable], combined: GainTable, *,
                          provenance: dict | None = None) -> Path:
    """Write the calibration terms (groups ``term_T``, ``term_G``...) and their product (``gaintable``).

    :func:`read_gaintable_hdf5` reads the product, the gains to apply; :func:`read_gaintables_hdf5` the terms.
    """
    groups = {"gaintable": _gaintable_group(combined)}
    groups.update({f"term_{name}": _gaintable_group(table) for name, table in terms.items()})
    return _write_groups(path, groups, provenance)


def read_gaintables_hdf5(path: str | Path) -> dict[str, GainTable]:
    """The calibration terms in a file written by :func:`write_gaintables_hdf5`, by name (T, G, B)."""
    with _open_group(path, "gaintable") as store:
        names = [name[len("term_"):] for name in store if name.startswith("term_")]
    return {name: _read_gaintable_group(path, f"term_{name}") for name in names}


def read_gaintable_hdf5(path: str | Path) -> GainTable:
    """Read a GainTable written by :func:`write_gaintable_hdf5` (or the product of :func:`write_gaintables_hdf5`)."""
    return _read_gaintable_group(path, "gaintable")


def _read_gaintable_group(path: str | Path, group_name: str) -> GainTable:
    with _open_group(path, group_name) as store:
        group = store[group_name]
        arrays = {name: group[name][()] for name in _GAIN_ARRAYS}
        residual = group["residual"][()] if "residual" in group else None
        attrs = dict(group.attrs)
    return GainTable(**arrays, receptors=tuple(json.loads(attrs["receptors"])), mode=str(attrs["mode"]), residual=residual)


def read_provenance(path: str | Path) -> dict | None:
    """The provenance record stored in an HDF5 file's attributes, if any."""
    import h5py

    with h5py.File(path, "r") as store:
        text = store.attrs.get("provenance")
    return json.loads(text) if text is not None else None
