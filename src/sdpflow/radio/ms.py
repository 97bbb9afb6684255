"""MeasurementSet I/O with python-casacore: metadata, chunked reads, writes WSClean accepts.

One spectral window and one field per MS. Rows must be in time order, so that a time
range is a contiguous row range and a worker can read only its (rows × channels) chunk.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sdpflow.errors import DataError
from sdpflow.radio.datamodels import (
    CORRELATION_CODES,
    CORRELATION_NAMES,
    ArrayConfiguration,
    Visibility,
    stokes_i,
    stokes_i_to_correlations,
    time_row_ranges,
)
from sdpflow.radio.stokes import missing_correlations, to_stokes

DATA_COLUMNS = ("DATA", "CORRECTED_DATA", "MODEL_DATA")

log = logging.getLogger(__name__)


@dataclass
class MSMetadata:
    """What a MeasurementSet holds, read without its data columns.

    times: unique integration times [time] (seconds, MJD UTC); time_rows: (start, stop) row
    range of each; frequency, channel_width: [chan] Hz; phase_centre: (ra, dec) radians;
    antenna_positions: ITRF [antenna, 3] metres; polarisation: correlation names; feed_type:
    "linear", "circular" or "stokes"; data_columns: which of DATA/CORRECTED_DATA/MODEL_DATA exist.
    """

    path: str
    n_rows: int
    times: np.ndarray
    time_rows: list[tuple[int, int]]
    integration_s: float
    frequency: np.ndarray
    channel_width: np.ndarray
    phase_centre: tuple[float, float]
    n_antennas: int
    antenna_names: list[str]
    antenna_positions: np.ndarray
    antenna_diameters: np.ndarray
    telescope: str
    polarisation: tuple[str, ...]
    feed_type: str
    data_columns: tuple[str, ...]
    has_weight_spectrum: bool

    @property
    def n_channels(self) -> int:
        return len(self.frequency)


def _open(path: str | Path, *, readonly: bool = True):
    from casacore import tables

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such MeasurementSet (the path does not exist)")
    if not path.is_dir() or not tables.tableexists(str(path)):
        raise DataError(f"{path}: not a MeasurementSet (not a casacore table)")
    try:
        table = tables.table(str(path), readonly=readonly, ack=False)
    except RuntimeError as error:
        raise DataError(f"{path}: cannot open the MeasurementSet: {error}") from None
    if "SPECTRAL_WINDOW" not in table.getkeywords() or "ANTENNA1" not in table.colnames():
        table.close()
        raise DataError(f"{path}: not a MeasurementSet (a casacore table without MS subtables)")
    return table


def _subtable(path: str | Path, name: str):
    from casacore import tables

    try:
        return tables.table(f"{path}::{name}", ack=False)
    except RuntimeError:  # casacore's words ("Table ... does not exist", "BucketCache...") say little to a user
        raise DataError(f"{path}: its {name} subtable is missing or unreadable: the MeasurementSet is incomplete or "
                        "damaged; copy or write it again") from None


def _feed_type(polarisation: tuple[str, ...]) -> str:
    if any(p.startswith(("X", "Y")) for p in polarisation):
        return "linear"
    if any(p.startswith(("R", "L")) for p in polarisation):
        return "circular"
    return "stokes"


def read_ms_metadata(path: str | Path) -> MSMetadata:
    """Shape, times and their row ranges, channels, phase centre, antennas, feeds and columns of an MS."""
    try:
        return _read_ms_metadata(path)
    except RuntimeError as error:  # casacore: a truncated or damaged table file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: the MeasurementSet cannot be read ({reason.strip()}): it is damaged; "
                        "copy or write it again") from None


def _read_ms_metadata(path: str | Path) -> MSMetadata:
    with _open(path) as main:
        time = main.getcol("TIME")
        names = main.colnames()
        n_rows = main.nrows()
        data_description = main.getcol("DATA_DESC_ID") if n_rows else np.zeros(0, int)
        field_id = main.getcol("FIELD_ID") if n_rows else np.zeros(0, int)
        interval = main.getcol("INTERVAL") if n_rows else np.zeros(0)
    if n_rows == 0:
        raise DataError(f"{path}: the MeasurementSet has no rows")
    if np.any(np.diff(time) < 0):
        raise DataError(f"{path}: rows are not in time order; sort the MS by TIME first")
    if len(np.unique(data_description)) > 1 or len(np.unique(field_id)) > 1:
        raise DataError(f"{path}: more than one spectral window or field; split the MS first")
    ddid = int(data_description[0])
    with _subtable(path, "DATA_DESCRIPTION") as dd:
        spw_id = int(dd.getcell("SPECTRAL_WINDOW_ID", ddid))
        pol_id = int(dd.getcell("POLARIZATION_ID", ddid))
    with _subtable(path, "SPECTRAL_WINDOW") as spw:
        frequency = np.asarray(spw.getcell("CHAN_FREQ", spw_id), float)
        channel_width = np.abs(np.asarray(spw.getcell("CHAN_WIDTH", spw_id), float))
    with _subtable(path, "POLARIZATION") as pol:
        polarisation = tuple(CORRELATION_NAMES.get(int(c), str(c)) for c in pol.getcell("CORR_TYPE", pol_id))
    with _subtable(path, "FIELD") as field:
        direction = np.asarray(field.getcell("PHASE_DIR", int(field_id[0])), float).reshape(-1, 2)[0]
    with _subtable(path, "ANTENNA") as antenna:
        antenna_names = list(antenna.getcol("NAME"))
        positions = np.asarray(antenna.getcol("POSITION"), float)
        diameters = np.asarray(antenna.getcol("DISH_DIAMETER"), float)
    telescope = ""
    try:
        with _subtable(path, "OBSERVATION") as observation:
            if observation.nrows():
                telescope = str(observation.getcell("TELESCOPE_NAME", 0))
    except RuntimeError:
        pass
    ranges = time_row_ranges(time)
    return MSMetadata(
        path=str(path), n_rows=n_rows, times=time[[start for start, _ in ranges]], time_rows=ranges,
        integration_s=float(np.median(interval)), frequency=frequency, channel_width=channel_width,
        phase_centre=(float(direction[0]), float(direction[1])), n_antennas=len(antenna_names),
        antenna_names=antenna_names, antenna_positions=positions, antenna_diameters=diameters,
        telescope=telescope, polarisation=polarisation, feed_type=_feed_type(polarisation),
        data_columns=tuple(c for c in DATA_COLUMNS if c in names), has_weight_spectrum="WEIGHT_SPECTRUM" in names,
    )


def read_visibility(path: str | Path, *, rows: tuple[int, int] | None = None, channels: tuple[int, int] | None = None,
                    data_column: str = "DATA", correlations: bool = False, allow_all_flagged: bool = False,
                    metadata: MSMetadata | None = None, stokes: Sequence[str] | None = None) -> Visibility:
    """Read a row range × channel range of an MS as Stokes I (or its correlations) Visibility.

    rows, channels: (start, stop) half-open ranges (None = all); data_column: DATA,
    CORRECTED_DATA or MODEL_DATA; correlations: keep the MS correlations instead of forming
    Stokes I. Weights come from WEIGHT_SPECTRUM when present, else WEIGHT per correlation;
    FLAG_ROW flags whole rows; samples with a NaN or infinite visibility, weight or UVW are
    flagged too (see :func:`read_visibility_counted`). Raises DataError when the path is not
    an MS, lacks the column, or every selected sample is flagged (unless ``allow_all_flagged``).
    ``metadata``: this MS's :func:`read_ms_metadata`, when the caller holds it already (chunked reads).
    ``stokes``: the Stokes parameters or correlations to form instead of Stokes I, e.g. ("I", "Q",
    "U") or ("XX", "YY") (see :func:`sdpflow.radio.stokes.parse_pol`); the correlations are recognised
    from CORR_TYPE and combined by :func:`sdpflow.radio.stokes.to_stokes` (DataError when one is missing).
    """
    return read_visibility_counted(path, rows=rows, channels=channels, data_column=data_column,
                                   correlations=correlations, allow_all_flagged=allow_all_flagged,
                                   metadata=metadata, stokes=stokes)[0]


def read_visibility_counted(path: str | Path, *, rows: tuple[int, int] | None = None,
                            channels: tuple[int, int] | None = None, data_column: str = "DATA",
                            correlations: bool = False, allow_all_flagged: bool = False,
                            metadata: MSMetadata | None = None,
                            stokes: Sequence[str] | None = None) -> tuple[Visibility, int]:
    """:func:`read_visibility`, and how many samples (row × channel × correlation of the MS) it
    flagged because their visibility, weight or UVW was NaN or infinite (they read as 0, weight 0)."""
    metadata = metadata if metadata is not None else read_ms_metadata(path)
    if stokes is not None:
        check_stokes(path, metadata, stokes)
    if data_column not in metadata.data_columns:
        have = ", ".join(metadata.data_columns) or "no data column"
        raise DataError(f"{path}: has no column {data_column} (it has {have})")
    row_start, row_stop = rows if rows is not None else (0, metadata.n_rows)
    chan_start, chan_stop = channels if channels is not None else (0, metadata.n_channels)
    if not (0 <= row_start < row_stop <= metadata.n_rows):
        raise DataError(f"{path}: row range {row_start}:{row_stop} is outside the MS's {metadata.n_rows} rows")
    if not (0 <= chan_start < chan_stop <= metadata.n_channels):
        raise DataError(f"{path}: channel range {chan_start}:{chan_stop} is outside its {metadata.n_channels} channels")
    n_rows = row_stop - row_start
    n_pol = len(metadata.polarisation)
    blc, trc = [chan_start, 0], [chan_stop - 1, n_pol - 1]
    with _open(path) as main:
        try:
            data = main.getcolslice(data_column, blc, trc, startrow=row_start, nrow=n_rows)
        except RuntimeError as error:
            raise DataError(f"{path}: cannot read column {data_column}: {error}") from None
        flag = main.getcolslice("FLAG", blc, trc, startrow=row_start, nrow=n_rows)
        flag_row = main.getcol("FLAG_ROW", startrow=row_start, nrow=n_rows)
        if metadata.has_weight_spectrum and main.iscelldefined("WEIGHT_SPECTRUM", row_start):
            weight = main.getcolslice("WEIGHT_SPECTRUM", blc, trc, startrow=row_start, nrow=n_rows)
        else:
            weight = np.repeat(main.getcol("WEIGHT", startrow=row_start, nrow=n_rows)[:, None, :], chan_stop - chan_start, axis=1)
        columns = {name: main.getcol(name, startrow=row_start, nrow=n_rows)
                   for name in ("UVW", "TIME", "INTERVAL", "ANTENNA1", "ANTENNA2")}
    flag = flag | flag_row[:, None, None]
    data, weight, uvw, non_finite = _flag_non_finite(data, weight, columns["UVW"], flag)
    if non_finite:
        log.warning("%s: flagged %d samples of rows %d:%d, channels %d:%d with a NaN or infinite visibility, "
                    "weight or UVW", path, non_finite, row_start, row_stop, chan_start, chan_stop)
    if not allow_all_flagged and flag.all():
        why = f" ({non_finite} samples NaN or infinite)" if non_finite else ""
        raise DataError(f"{path}: every visibility in rows {row_start}:{row_stop}, channels "
                        f"{chan_start}:{chan_stop} is flagged{why}; nothing to process")
    vis = Visibility(
        uvw=uvw, time=columns["TIME"], interval=columns["INTERVAL"],
        antenna1=columns["ANTENNA1"].astype(np.int32), antenna2=columns["ANTENNA2"].astype(np.int32),
        frequency=metadata.frequency[chan_start:chan_stop], channel_width=metadata.channel_width[chan_start:chan_stop],
        vis=data, weight=weight.astype(np.float32), flag=flag, phase_centre=metadata.phase_centre,
        polarisation=metadata.polarisation,
        configuration=ArrayConfiguration(names=metadata.antenna_names, positions=metadata.antenna_positions,
                                         diameter=float(np.median(metadata.antenna_diameters)),
                                         telescope=metadata.telescope),
    )
    if correlations:
        return vis, non_finite
    if stokes is not None and tuple(stokes) != ("I",):
        return to_stokes(vis, stokes), non_finite
    try:
        return stokes_i(vis), non_finite
    except ValueError:
        raise DataError(f"{path}: cannot form Stokes I from correlations {metadata.polarisation}") from None


def check_stokes(path: str | Path, metadata: MSMetadata, stokes: Sequence[str]) -> None:
    """DataError (one line) when the MS's correlations cannot form every one of ``stokes``."""
    missing = missing_correlations(metadata.polarisation, stokes)
    if missing:
        raise DataError(f"{path}: cannot image {','.join(stokes)}: its correlations are "
                        f"{','.join(metadata.polarisation)} ({','.join(missing)} missing); choose --pol accordingly")


def _flag_non_finite(data: np.ndarray, weight: np.ndarray, uvw: np.ndarray,
                     flag: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Flag (in place) the samples whose visibility, weight or row UVW is not finite; zero them.

    data, weight, flag: [row, chan, pol]; uvw: [row, 3] metres. A corrupted storage file or a
    failed correlator dump gives NaN/Inf, and one such sample would turn every pixel of an
    image NaN. Returns (data, weight, uvw as float64, number of such samples).
    """
    uvw = uvw.astype(np.float64)
    bad_rows = ~np.isfinite(uvw).all(axis=1)
    bad = ~np.isfinite(data) | ~np.isfinite(weight) | bad_rows[:, None, None]
    count = int(np.count_nonzero(bad))
    if count:
        flag |= bad
        data = np.where(bad, 0, data)
        weight = np.where(bad, 0, weight)
        uvw[bad_rows] = 0.0
    return data, weight, uvw, count


def _data_desc(name: str, shape: list[int], value: Any, valuetype: str) -> dict:
    from casacore import tables

    return tables.makearrcoldesc(name, value, valuetype=valuetype, shape=shape, options=4,
                                 datamanagertype="TiledColumnStMan", datamanagergroup=f"Tiled{name}")


def _tiled_dminfo(columns: list[str], n_chan: int, n_pol: int) -> dict:
    rows_per_tile = max(1, 65536 // max(1, n_chan * n_pol))
    return {
        f"*{index + 1}": {"TYPE": "TiledColumnStMan", "NAME": f"Tiled{name}",
                          "SPEC": {"DEFAULTTILESHAPE": np.array([n_pol, n_chan, rows_per_tile], np.int32)},
                          "COLUMNS": [name]}
        for index, name in enumerate(columns)
    }


def write_ms(path: str | Path, vis: Visibility, *, data_column: str = "DATA", extra_columns: tuple[str, ...] = (),
             polarisation: tuple[str, ...] = ("XX", "YY"), history: list[str] | None = None,
             provenance: dict | None = None) -> Path:
    """Write a MeasurementSet (atomically: a temporary folder renamed onto ``path``).

    Stokes I visibilities are written as unpolarised ``polarisation`` correlations (XX = YY = I,
    each with half the Stokes I weight); other visibilities as they are. FLAG, WEIGHT and
    WEIGHT_SPECTRUM are written; ``extra_columns`` (e.g. MODEL_DATA) are created as zeros.
    vis.configuration gives the ANTENNA table. History lines and a provenance record go to HISTORY.
    """
    from casacore import tables

    from sdpflow.provenance import atomic_path, replace_atomically

    if vis.configuration is None:
        raise ValueError("write_ms needs vis.configuration (the antennas)")
    if vis.polarisation == ("I",):
        vis = stokes_i_to_correlations(vis, polarisation)
    path = Path(path)
    tmp = atomic_path(path)
    shutil.rmtree(tmp, ignore_errors=True)
    n_rows, n_chan, n_pol = vis.vis.shape
    data_columns = [data_column, *[c for c in extra_columns if c != data_column]]
    descriptions = [_data_desc(name, [n_chan, n_pol], 0j, "complex") for name in data_columns]
    descriptions += [
        _data_desc("FLAG", [n_chan, n_pol], False, "boolean"),
        _data_desc("WEIGHT_SPECTRUM", [n_chan, n_pol], 0.0, "float"),
        tables.makearrcoldesc("WEIGHT", 0.0, valuetype="float", shape=[n_pol], options=4),
        tables.makearrcoldesc("SIGMA", 0.0, valuetype="float", shape=[n_pol], options=4),
    ]
    table_desc = tables.maketabdesc(descriptions)
    dminfo = _tiled_dminfo([*data_columns, "FLAG", "WEIGHT_SPECTRUM"], n_chan, n_pol)
    main = tables.default_ms(str(tmp), table_desc, dminfo)
    try:
        _write_main(main, vis, data_columns)
    finally:
        main.close()
    _write_subtables(tmp, vis, history=history, provenance=provenance)
    replace_atomically(tmp, path)
    return path


def _write_main(main, vis: Visibility, data_columns: list[str]) -> None:
    n_rows = vis.n_rows
    main.addrows(n_rows)
    weight = vis.weight.astype(np.float32)
    # WEIGHT: the mean of the unflagged channel weights of each correlation (0 when all are flagged).
    unflagged = (~vis.flag).sum(axis=1)
    row_weight = (np.where(vis.flag, 0.0, weight).sum(axis=1) / np.maximum(unflagged, 1)).astype(np.float32)
    with np.errstate(divide="ignore"):
        sigma = np.where(row_weight > 0, 1.0 / np.sqrt(row_weight), 0.0).astype(np.float32)
    main.putcol(data_columns[0], vis.vis.astype(np.complex64))
    for name in data_columns[1:]:
        main.putcol(name, np.zeros(vis.vis.shape, np.complex64))
    main.putcol("FLAG", vis.flag)
    main.putcol("FLAG_ROW", vis.flag.all(axis=(1, 2)))
    main.putcol("WEIGHT_SPECTRUM", weight)
    main.putcol("WEIGHT", row_weight)
    main.putcol("SIGMA", sigma)
    main.putcol("UVW", vis.uvw)
    main.putcol("TIME", vis.time)
    main.putcol("TIME_CENTROID", vis.time)
    main.putcol("INTERVAL", vis.interval)
    main.putcol("EXPOSURE", vis.interval)
    main.putcol("ANTENNA1", vis.antenna1.astype(np.int32))
    main.putcol("ANTENNA2", vis.antenna2.astype(np.int32))
    zeros = np.zeros(n_rows, np.int32)
    for name in ("ARRAY_ID", "DATA_DESC_ID", "FEED1", "FEED2", "FIELD_ID", "OBSERVATION_ID", "PROCESSOR_ID"):
        main.putcol(name, zeros)
    main.putcol("STATE_ID", np.full(n_rows, -1, np.int32))
    main.putcol("SCAN_NUMBER", np.ones(n_rows, np.int32))


def _write_subtables(path: Path, vis: Visibility, *, history: list[str] | None, provenance: dict | None) -> None:
    from casacore import tables

    config = vis.configuration
    n_ant = config.n_antennas
    with tables.table(f"{path}::ANTENNA", readonly=False, ack=False) as antenna:
        antenna.addrows(n_ant)
        antenna.putcol("NAME", list(config.names))
        antenna.putcol("STATION", list(config.names))
        antenna.putcol("TYPE", ["GROUND-BASED"] * n_ant)
        antenna.putcol("MOUNT", ["X-Y"] * n_ant)
        antenna.putcol("POSITION", np.asarray(config.positions, float))
        antenna.putcol("OFFSET", np.zeros((n_ant, 3)))
        antenna.putcol("DISH_DIAMETER", np.full(n_ant, float(config.diameter)))
        antenna.putcol("FLAG_ROW", np.zeros(n_ant, bool))
    n_chan = vis.n_channels
    with tables.table(f"{path}::SPECTRAL_WINDOW", readonly=False, ack=False) as spw:
        spw.addrows(1)
        spw.putcell("CHAN_FREQ", 0, vis.frequency)
        spw.putcell("CHAN_WIDTH", 0, vis.channel_width)
        spw.putcell("EFFECTIVE_BW", 0, vis.channel_width)
        spw.putcell("RESOLUTION", 0, vis.channel_width)
        spw.putcell("REF_FREQUENCY", 0, float(vis.frequency[0]))
        spw.putcell("NUM_CHAN", 0, n_chan)
        spw.putcell("TOTAL_BANDWIDTH", 0, float(np.sum(vis.channel_width)))
        spw.putcell("MEAS_FREQ_REF", 0, 5)  # TOPO
        spw.putcell("NAME", 0, "SPW0")
        spw.putcell("NET_SIDEBAND", 0, 1)
        spw.putcell("FREQ_GROUP", 0, 0)
        spw.putcell("FREQ_GROUP_NAME", 0, "")
        spw.putcell("IF_CONV_CHAIN", 0, 0)
        spw.putcell("FLAG_ROW", 0, False)
    codes = [CORRELATION_CODES[p] for p in vis.polarisation]
    receptors = _receptors(vis.polarisation)
    with tables.table(f"{path}::POLARIZATION", readonly=False, ack=False) as pol:
        pol.addrows(1)
        pol.putcell("NUM_CORR", 0, len(codes))
        pol.putcell("CORR_TYPE", 0, np.array(codes, np.int32))
        pol.putcell("CORR_PRODUCT", 0, np.array([[receptors.index(p[0]), receptors.index(p[1])]
                                                 for p in vis.polarisation], np.int32))
        pol.putcell("FLAG_ROW", 0, False)
    with tables.table(f"{path}::DATA_DESCRIPTION", readonly=False, ack=False) as dd:
        dd.addrows(1)
        dd.putcell("SPECTRAL_WINDOW_ID", 0, 0)
        dd.putcell("POLARIZATION_ID", 0, 0)
        dd.putcell("FLAG_ROW", 0, False)
    direction = np.array([[vis.phase_centre[0], vis.phase_centre[1]]])
    with tables.table(f"{path}::FIELD", readonly=False, ack=False) as field:
        field.addrows(1)
        for column in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
            field.putcell(column, 0, direction)
        field.putcell("NAME", 0, "FIELD0")
        field.putcell("CODE", 0, "")
        field.putcell("NUM_POLY", 0, 0)
        field.putcell("TIME", 0, float(vis.time[0]))
        field.putcell("SOURCE_ID", 0, -1)
        field.putcell("FLAG_ROW", 0, False)
    time_range = np.array([vis.time.min() - vis.interval[0] / 2, vis.time.max() + vis.interval[-1] / 2])
    with tables.table(f"{path}::OBSERVATION", readonly=False, ack=False) as observation:
        observation.addrows(1)
        observation.putcell("TELESCOPE_NAME", 0, config.telescope)
        observation.putcell("TIME_RANGE", 0, time_range)
        observation.putcell("OBSERVER", 0, "sdpflow")
        observation.putcell("PROJECT", 0, "sdpflow")
        observation.putcell("RELEASE_DATE", 0, 0.0)
        observation.putcell("SCHEDULE_TYPE", 0, "")
        observation.putcell("FLAG_ROW", 0, False)
    with tables.table(f"{path}::FEED", readonly=False, ack=False) as feed:
        feed.addrows(n_ant)
        feed.putcol("ANTENNA_ID", np.arange(n_ant, dtype=np.int32))
        feed.putcol("FEED_ID", np.zeros(n_ant, np.int32))
        feed.putcol("SPECTRAL_WINDOW_ID", np.full(n_ant, -1, np.int32))
        feed.putcol("BEAM_ID", np.full(n_ant, -1, np.int32))
        feed.putcol("NUM_RECEPTORS", np.full(n_ant, 2, np.int32))
        feed.putcol("TIME", np.full(n_ant, float(vis.time[0])))
        feed.putcol("INTERVAL", np.full(n_ant, 1e30))
        feed.putcol("POSITION", np.zeros((n_ant, 3)))
        feed.putcol("BEAM_OFFSET", np.zeros((n_ant, 2, 2)))
        feed.putcol("POLARIZATION_TYPE", np.array([receptors] * n_ant))
        feed.putcol("POL_RESPONSE", np.tile(np.eye(2, dtype=np.complex64), (n_ant, 1, 1)))
        feed.putcol("RECEPTOR_ANGLE", np.zeros((n_ant, 2)))
    lines = list(history or [])
    if provenance is not None:
        import json

        lines.append("sdpflow provenance: " + json.dumps(provenance, sort_keys=True, default=str))
    if lines:
        with tables.table(f"{path}::HISTORY", readonly=False, ack=False) as hist:
            hist.addrows(len(lines))
            for row, line in enumerate(lines):
                hist.putcell("TIME", row, float(vis.time[0]))
                hist.putcell("OBSERVATION_ID", row, 0)
                hist.putcell("MESSAGE", row, line)
                hist.putcell("PRIORITY", row, "INFO")
                hist.putcell("ORIGIN", row, "sdpflow")
                hist.putcell("OBJECT_ID", row, 0)
                hist.putcell("APPLICATION", row, "sdpflow")
                hist.putcell("CLI_COMMAND", row, np.array([""]))
                hist.putcell("APP_PARAMS", row, np.array([""]))


def _receptors(polarisation: tuple[str, ...]) -> list[str]:
    return ["R", "L"] if _feed_type(polarisation) == "circular" else ["X", "Y"]


def add_column(path: str | Path, column: str, *, like: str = "DATA") -> None:
    """Add a data column (zeros) shaped like ``like`` if the MS lacks it; do this once before parallel writes."""
    from casacore import tables

    with _open(path, readonly=False) as main:
        if column in main.colnames():
            return
        if like not in main.colnames():
            raise DataError(f"{path}: has no column {like} to copy the shape of {column} from")
        description = main.getcoldesc(like)
        description["name"] = column
        shape = main.getcell(like, 0).shape if main.nrows() else None
        dminfo = {"TYPE": "TiledColumnStMan", "NAME": f"Tiled{column}",
                  "SPEC": {"DEFAULTTILESHAPE": np.array([shape[1], shape[0], 1024], np.int32)}} if shape else {}
        main.addcols(tables.makecoldesc(column, description), dminfo)
        if shape:
            zeros = np.zeros((main.nrows(),) + shape, np.complex64)
            main.putcol(column, zeros)


def write_column(path: str | Path, column: str, data: np.ndarray, *, rows: tuple[int, int] | None = None,
                 channels: tuple[int, int] | None = None) -> None:
    """Write a chunk of a data column (e.g. CORRECTED_DATA, MODEL_DATA), adding the column if missing.

    data: [row, chan, pol] in the MS's correlations, or Stokes I [row, chan] (written to the
    parallel hands, cross hands 0); rows, channels: the chunk's (start, stop) ranges.
    """
    metadata = read_ms_metadata(path)
    if column not in metadata.data_columns:
        add_column(path, column)
    data = np.asarray(data)
    row_start, row_stop = rows if rows is not None else (0, metadata.n_rows)
    chan_start, chan_stop = channels if channels is not None else (0, metadata.n_channels)
    n_pol = len(metadata.polarisation)
    if data.ndim == 2:
        parallel = np.array([p in ("XX", "YY", "RR", "LL", "I") for p in metadata.polarisation])
        data = data[:, :, None] * parallel[None, None, :]
    expected = (row_stop - row_start, chan_stop - chan_start, n_pol)
    if data.shape != expected:
        raise ValueError(f"data has shape {data.shape}, the chunk is {expected}")
    with _open(path, readonly=False) as main:
        main.putcolslice(column, data.astype(np.complex64), [chan_start, 0], [chan_stop - 1, n_pol - 1],
                         startrow=row_start, nrow=row_stop - row_start)


def max_uvw_m(path: str | Path) -> tuple[float, float]:
    """(longest sqrt(u² + v²), largest |w|) in metres over every row with finite UVW, read in blocks of rows.

    Numpy over ``getcol`` blocks: a 487,680-row MS takes 0.08 s this way and 0.6 s as a
    TaQL ``gmax`` query.
    """
    uv_max = w_max = 0.0
    with _open(path) as main:
        for start in range(0, main.nrows(), _BLOCK_ROWS):
            uvw = main.getcol("UVW", startrow=start, nrow=min(_BLOCK_ROWS, main.nrows() - start))
            uvw = uvw[np.isfinite(uvw).all(axis=1)]  # rows with NaN UVW are flagged when read
            if len(uvw):
                uv_max = max(uv_max, float(np.sqrt(np.max(uvw[:, 0] ** 2 + uvw[:, 1] ** 2))))
                w_max = max(w_max, float(np.max(np.abs(uvw[:, 2]))))
    return uv_max, w_max


#: What an imaging run reads from an MS, besides its data column: a change to any of these changes the run.
IMAGING_COLUMNS = ("UVW", "TIME", "INTERVAL", "ANTENNA1", "ANTENNA2", "FLAG", "FLAG_ROW", "WEIGHT", "WEIGHT_SPECTRUM")
_BLOCK_ROWS = 200_000


def ms_checksum(path: str | Path, data_column: str = "DATA") -> str:
    """SHA-256 of what imaging reads from an MS: ``data_column``, coordinates, flags, weights, frequencies, phase centre.

    Unlike a checksum of every byte of the MS folder, this one does not change when other
    columns are written (CORRECTED_DATA, MODEL_DATA), so writing calibrated data back does
    not make an imaging run's finished stages look stale.
    """
    import hashlib

    digest = hashlib.sha256()
    with _open(path) as main:
        columns = [name for name in (data_column, *IMAGING_COLUMNS) if name in main.colnames()]
        for start in range(0, main.nrows(), _BLOCK_ROWS):
            count = min(_BLOCK_ROWS, main.nrows() - start)
            for name in columns:
                digest.update(name.encode())
                digest.update(np.ascontiguousarray(main.getcol(name, startrow=start, nrow=count)).tobytes())
    for table, column in (("SPECTRAL_WINDOW", "CHAN_FREQ"), ("FIELD", "PHASE_DIR"), ("POLARIZATION", "CORR_TYPE")):
        with _subtable(path, table) as sub:
            digest.update(np.ascontiguousarray(sub.getcol(column)).tobytes())
    return "sha256:" + digest.hexdigest()
