"""Gain solutions in H5parm, the HDF5 layout of LoSoTo and DP3, written and read with h5py.

The layout (LoSoTo's ``h5parm``, which DP3's gaincal/ddecal and applycal also use)::

    /sol000                 solset (attribute h5parm_version)
        antenna             table: name (S16), position (float32 [3], ITRF metres)
        source              table: name (S128), dir (float32 [2], RA/Dec radians)
        phase000            soltab (attribute TITLE = "phase")
            time            [time] seconds (MJD UTC), centre of each solution interval
            freq            [freq] Hz; one value means the solution holds for every channel
            ant             [ant] antenna names (S16)
            pol             [pol] correlations (S2), e.g. XX, YY
            val             values (radians here), attribute AXES = "time,freq,ant,pol"
            weight          same shape; 0 = flagged, 1 = full weight
        amplitude000        soltab (TITLE = "amplitude"), the same axes, val = |gain|

sdpflow's gains are scalar (one complex gain per antenna for both feeds), so both entries
of the pol axis hold the same value. The reader takes any order of the axes ``time``,
``freq``, ``ant``, ``pol`` and a ``dir`` axis of length one (DP3 writes one), and either
soltab alone (phase only: amplitudes 1; amplitude only: phases 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sdpflow.errors import DataError
from sdpflow.provenance import atomic_path, canonical_json, replace_atomically
from sdpflow.radio.datamodels import GainTable

#: The version of the H5parm layout written (LoSoTo's __h5parmVersion__).
H5PARM_VERSION = "1.0"
AXES = ("time", "freq", "ant", "pol")
_KNOWN_AXES = {*AXES, "dir"}


def write_h5parm(path: str | Path, table: GainTable, *, antenna_names: Sequence[str],
                 antenna_positions: np.ndarray, phase_centre: tuple[float, float],
                 correlations: Sequence[str] = ("XX", "YY"), provenance: dict | None = None) -> Path:
    """Write scalar gains as solset ``sol000`` with soltabs ``phase000`` and ``amplitude000`` (atomically).

    table: gains [time, antenna, chan, receptor] (receptor 0 is written; chan of length 1 holds
    for all channels); antenna_names: [antenna], the table's antenna order; antenna_positions:
    [antenna, 3] ITRF metres; phase_centre: (ra, dec) radians, the solutions' direction;
    correlations: the pol axis (each holds the scalar gain); provenance: stored as the
    solset's ``provenance`` attribute (JSON).
    """
    import h5py

    gain = np.asarray(table.gain)[..., 0]  # [time, ant, chan]
    weight = np.asarray(table.weight)[..., 0]
    if len(antenna_names) != gain.shape[1]:
        raise ValueError(f"{len(antenna_names)} antenna names for gains of {gain.shape[1]} antennas")
    order = (0, 2, 1)  # [time, ant, chan] -> [time, freq, ant]
    n_pol = len(correlations)
    phase = np.repeat(np.angle(gain).transpose(order)[..., None], n_pol, axis=-1)
    amplitude = np.repeat(np.abs(gain).transpose(order)[..., None], n_pol, axis=-1)
    flags = np.repeat((weight > 0).transpose(order)[..., None], n_pol, axis=-1).astype(np.float64)
    axes = {"time": np.asarray(table.time, np.float64), "freq": np.asarray(table.frequency, np.float64),
            "ant": np.array([name.encode() for name in antenna_names], dtype="S16"),
            "pol": np.array([name.encode() for name in correlations], dtype="S2")}
    path = Path(path)
    tmp = atomic_path(path)
    with h5py.File(tmp, "w") as store:
        solset = store.create_group("sol000")
        solset.attrs["h5parm_version"] = np.bytes_(H5PARM_VERSION)
        if provenance is not None:
            solset.attrs["provenance"] = np.bytes_(canonical_json(provenance))
        antennas = np.zeros(len(antenna_names), dtype=[("name", "S16"), ("position", "<f4", (3,))])
        antennas["name"], antennas["position"] = axes["ant"], np.asarray(antenna_positions, np.float32)
        _table(solset, "antenna", antennas, "Antenna names and positions")
        source = np.zeros(1, dtype=[("name", "S128"), ("dir", "<f4", (2,))])
        source["name"], source["dir"] = b"pointing", np.asarray(phase_centre, np.float32)
        _table(solset, "source", source, "Source names and directions")
        for name, kind, values in (("phase000", "phase", phase), ("amplitude000", "amplitude", amplitude)):
            soltab = solset.create_group(name)
            soltab.attrs["TITLE"] = np.bytes_(kind)
            soltab.attrs["parmdb_type"] = np.bytes_("")
            for axis in AXES:
                soltab.create_dataset(axis, data=axes[axis])
            for dataset, data in (("val", values), ("weight", flags)):
                soltab.create_dataset(dataset, data=data.astype(np.float64))
                soltab[dataset].attrs["AXES"] = np.bytes_(",".join(AXES))
    replace_atomically(tmp, path)
    return path


def _table(group, name: str, rows: np.ndarray, title: str) -> None:
    """A compound dataset PyTables (LoSoTo's reader) opens as a Table."""
    dataset = group.create_dataset(name, data=rows)
    dataset.attrs["CLASS"] = np.bytes_("TABLE")
    dataset.attrs["VERSION"] = np.bytes_("2.7")
    dataset.attrs["TITLE"] = np.bytes_(title)
    for index, field in enumerate(rows.dtype.names):
        dataset.attrs[f"FIELD_{index}_NAME"] = np.bytes_(field)


def read_h5parm(path: str | Path, solset: str = "sol000") -> tuple[GainTable, list[str]]:
    """The scalar gains of an H5parm's ``solset`` and their antenna names (the table's antenna order).

    Returns a GainTable (gain [time, antenna, freq, 1] = amplitude · exp(i phase) of the first
    pol entry; weight 0 where any pol entry is flagged; interval: the spacing of the solution
    times, so each sample takes the nearest solution). Raises DataError, naming the path, for a
    file that is not an H5parm, lacks the solset or both soltabs, has axes other than
    time/freq/ant/pol (and dir of length 1), or gives the two correlations different gains.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such H5parm file")
    try:
        store = h5py.File(path, "r")
    except OSError:
        raise DataError(f"{path}: not an HDF5 file: give an H5parm (LoSoTo/DP3) of gain solutions") from None
    with store:
        if solset not in store:
            raise DataError(f"{path}: has no solset {solset} (it has {', '.join(store) or 'none'}): not an H5parm "
                            "of gain solutions")
        group = store[solset]
        soltabs = {_title(group[name]): group[name] for name in group
                   if isinstance(group[name], h5py.Group) and "val" in group[name]}
        if "phase" not in soltabs and "amplitude" not in soltabs:
            raise DataError(f"{path}: {solset} has no phase or amplitude soltab (it has "
                            f"{', '.join(soltabs) or 'none'})")
        parts = {kind: _soltab(path, soltabs[kind]) for kind in ("phase", "amplitude") if kind in soltabs}
    axes = next(iter(parts.values()))[0]
    for kind, (other, _, _) in parts.items():
        if any(not np.array_equal(axes[name], other[name]) for name in AXES):
            raise DataError(f"{path}: the phase and amplitude soltabs have different axes")
    phase = parts["phase"][1] if "phase" in parts else 0.0
    amplitude = parts["amplitude"][1] if "amplitude" in parts else 1.0
    gain = amplitude * np.exp(1j * phase)  # [time, freq, ant, pol]
    valid = np.all([flags for _, _, flags in parts.values()], axis=0)
    both = valid.all(axis=-1, keepdims=True)
    if not np.allclose(np.where(both, gain, 0), np.where(both, gain[..., :1], 0), rtol=1e-6, atol=1e-9):
        raise DataError(f"{path}: the correlations {', '.join(axes['pol'])} have different gains; sdpflow applies "
                        "scalar gains (one per antenna for both feeds)")
    time = axes["time"]
    return GainTable(gain=gain[..., :1].transpose(0, 2, 1, 3), weight=both.transpose(0, 2, 1, 3).astype(np.float64),
                     time=time, interval=_spacing(time), frequency=axes["freq"], mode="H5parm"), list(axes["ant"])


def _title(soltab) -> str:
    title = soltab.attrs.get("TITLE", b"")
    return title.decode() if isinstance(title, bytes) else str(title)


def _soltab(path: Path, soltab) -> tuple[dict, np.ndarray, np.ndarray]:
    """(axes, values [time, freq, ant, pol], unflagged [time, freq, ant, pol]) of one soltab."""
    names = soltab["val"].attrs.get("AXES", b"")
    names = (names.decode() if isinstance(names, bytes) else str(names)).split(",")
    unknown = [name for name in names if name not in _KNOWN_AXES]
    if unknown or not set(AXES) - {"pol"} <= set(names):
        raise DataError(f"{path}: soltab {soltab.name} has axes {','.join(names)}; sdpflow reads time, freq, ant "
                        "and pol (and one dir)")
    values, weights = soltab["val"][()], soltab["weight"][()] if "weight" in soltab else None
    if weights is None:
        weights = np.ones_like(values)
    if "dir" in names:
        if values.shape[names.index("dir")] != 1:
            raise DataError(f"{path}: soltab {soltab.name} holds {values.shape[names.index('dir')]} directions; "
                            "sdpflow applies direction-independent solutions only")
        values, weights = values.take(0, axis=names.index("dir")), weights.take(0, axis=names.index("dir"))
        names = [name for name in names if name != "dir"]
    if "pol" not in names:
        values, weights, names = values[..., None], weights[..., None], [*names, "pol"]
    order = [names.index(name) for name in AXES]
    axes = {name: soltab[name][()] if name in soltab else np.array([b"I"]) for name in AXES}
    for name in ("ant", "pol"):
        axes[name] = [value.decode() if isinstance(value, bytes) else str(value) for value in axes[name]]
    values, weights = np.transpose(values, order), np.transpose(weights, order)
    return axes, values, (weights > 0) & np.isfinite(values)


def _spacing(time: np.ndarray) -> np.ndarray:
    """Intervals [time] (s) that put each interval's start halfway from the previous solution time."""
    if len(time) < 2:
        return np.full(len(time), 1e30)
    steps = np.diff(time)
    return np.concatenate([steps[:1], steps])


def gains_for_antennas(table: GainTable, table_antennas: Sequence[str], ms_antennas: Sequence[str],
                       source: str) -> GainTable:
    """The table with its antennas in the MS's order (by name); DataError naming ``source`` when an antenna
    of the MS has no solutions in it."""
    index = {name: i for i, name in enumerate(table_antennas)}
    missing = [name for name in ms_antennas if name not in index]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(f"{source}: has no solutions for antenna(s) {shown} of the MeasurementSet: the table is for "
                        "another array or observation")
    order = [index[name] for name in ms_antennas]
    return GainTable(gain=table.gain[:, order], weight=table.weight[:, order], time=table.time,
                     interval=table.interval, frequency=table.frequency, receptors=table.receptors, mode=table.mode)


def gains_at_frequencies(table: GainTable, frequency: np.ndarray, source: str) -> GainTable:
    """The table's channels nearest each of ``frequency`` [chan] Hz (a one-channel table holds for all);
    DataError naming ``source`` when a channel is further than half a channel step from every solution's."""
    solved = np.asarray(table.frequency, float)
    if len(solved) == 1:
        return table
    nearest = np.abs(np.asarray(frequency, float)[:, None] - solved[None, :]).argmin(axis=1)
    tolerance = 0.5 * float(np.min(np.abs(np.diff(np.sort(solved)))))
    if np.any(np.abs(solved[nearest] - frequency) > tolerance):
        raise DataError(f"{source}: its {len(solved)} solution frequencies ({solved.min() / 1e6:.3f}-"
                        f"{solved.max() / 1e6:.3f} MHz) do not match the MeasurementSet's channels: the table is for "
                        "another band")
    return GainTable(gain=table.gain[:, :, nearest], weight=table.weight[:, :, nearest], time=table.time,
                     interval=table.interval, frequency=solved[nearest], receptors=table.receptors, mode=table.mode)


def solutions_for_ms(path: str | Path, antenna_names: Sequence[str], frequency: np.ndarray,
                     times: np.ndarray) -> GainTable:
    """The H5parm at ``path`` as a GainTable for a MeasurementSet with these antennas (its order), channel
    frequencies [chan] Hz and integration times [time] s (MJD): checked before anything runs.

    Raises DataError for a file :func:`read_h5parm` refuses, an MS antenna without solutions,
    channels the solutions do not cover, or solution times that miss the observation.
    """
    table, names = read_h5parm(path)
    table = gains_for_antennas(table, names, antenna_names, str(path))
    table = gains_at_frequencies(table, frequency, str(path))
    step = float(np.max(table.interval)) if len(table.time) > 1 else 0.0
    if len(table.time) > 1 and (np.min(times) > table.time[-1] + step or np.max(times) < table.time[0] - step):
        raise DataError(f"{path}: its solution times miss the MeasurementSet's observation: the table is for another "
                        "observation")
    return table
