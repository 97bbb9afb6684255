"""FITS images as WSClean writes them: RA---SIN, DEC--SIN, FREQ, STOKES axes, beam, observation and
imaging keywords, history.

On disk the axes are (NAXIS1 = RA, NAXIS2 = Dec, NAXIS3 = FREQ, NAXIS4 = STOKES), so the
numpy array is [stokes, freq, y, x]; in memory images are [chan, pol, y, x] (see
:mod:`sdpflow.radio.datamodels`). CDELT1 = -cell (RA increases to the left), CRPIX = npix/2 + 1.

Provenance is parseable: the record (JSON) is the one row of a ``PROVENANCE`` binary-table
extension, and ``SDPPROV`` in the primary header holds the SHA-256 of that text
(:func:`sdpflow.provenance.record_digest`); :func:`read_provenance` checks one against the other.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sdpflow.errors import DataError
from sdpflow.provenance import atomic_path, canonical_json, record_digest, replace_atomically
from sdpflow.radio.datamodels import Image

from sdpflow.radio.stokes import FITS_STOKES_NAMES, stokes_axis


#: The fourth axis of an image whose planes no FITS STOKES axis can list (numbered 1.., named in POLNAMES).
PLANE_AXIS = "PLANE"

#: The extension that holds a product's provenance record (its digest is SDPPROV in the primary header).
PROVENANCE_EXTENSION = "PROVENANCE"

#: Day 0 of the Modified Julian Date, the origin of MeasurementSet times.
MJD_EPOCH = datetime(1858, 11, 17)

#: A header card: (keyword of at most 8 characters, value, comment).
Card = tuple[str, Any, str]


def observation_cards(*, telescope: str, observer: str, field: str, start_time_s: float) -> list[Card]:
    """The observation keywords WSClean copies from the MeasurementSet into every image.

    telescope: OBSERVATION TELESCOPE_NAME; observer: OBSERVATION OBSERVER; field: FIELD NAME;
    start_time_s: the first row's TIME (seconds, MJD UTC), written as DATE-OBS (ISO, UTC) and
    MJD-OBS (days), both, so that a WCS reader has nothing to fill in.
    """
    start = MJD_EPOCH + timedelta(seconds=float(start_time_s))  # MJD days are 86400 s, as in the MS
    return [("TELESCOP", telescope, "telescope (MS OBSERVATION)"), ("OBSERVER", observer, "MS OBSERVATION"),
            ("OBJECT", field, "field name (MS FIELD)"),
            ("DATE-OBS", start.isoformat(timespec="milliseconds"), "UTC of the first integration (MS TIME)"),
            ("MJD-OBS", float(start_time_s) / 86400.0, "[d] MJD of DATE-OBS")]


def image_wcs(npix_x: int, npix_y: int, *, phase_centre: tuple[float, float], cell_rad: float,
              frequency: Sequence[float], channel_width: Sequence[float] | None = None,
              polarisation: Sequence[str] = ("I",)):
    """The 4-axis astropy WCS of an image (SIN projection about the phase centre, FK5 J2000)."""
    from astropy.wcs import WCS

    frequency = np.atleast_1d(np.asarray(frequency, dtype=float))
    if channel_width is None:
        step = float(np.diff(frequency).mean()) if len(frequency) > 1 else 1.0
    else:
        width = np.atleast_1d(np.asarray(channel_width, dtype=float))
        step = float(np.diff(frequency).mean()) if len(frequency) > 1 else float(width[0])
    wcs = WCS(naxis=4)
    fourth = "STOKES"
    try:
        stokes_first, stokes_step = stokes_axis(polarisation)  # I=1, Q=2, U=3, V=4; RR=-1...; XX=-5...
    except ValueError:  # e.g. I, XX, YY (a run's internal model): no linear STOKES axis holds them
        stokes_first, stokes_step, fourth = 1, 1, PLANE_AXIS
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN", "FREQ", fourth]
    wcs.wcs.cunit = ["deg", "deg", "Hz", ""]
    wcs.wcs.crpix = [npix_x // 2 + 1, npix_y // 2 + 1, 1, 1]
    wcs.wcs.crval = [np.degrees(phase_centre[0]) % 360.0, np.degrees(phase_centre[1]), frequency[0], stokes_first]
    wcs.wcs.cdelt = [-np.degrees(cell_rad), np.degrees(cell_rad), step, stokes_step]
    wcs.wcs.radesys = "FK5"
    wcs.wcs.equinox = 2000.0
    wcs.wcs.specsys = "TOPOCENT"
    return wcs


def write_fits_image(path: str | Path, data: np.ndarray, *, phase_centre: tuple[float, float], cell_rad: float,
                     frequency: Sequence[float] | float, channel_width: Sequence[float] | float | None = None,
                     beam: tuple[float, float, float] | None = None, unit: str = "JY/BEAM",
                     polarisation: Sequence[str] = ("I",), history: Sequence[str] = (),
                     provenance: dict | None = None,
                     beams: Sequence[tuple[float, float, float]] | None = None, cards: Sequence[Card] = ()) -> Path:
    """Write an image atomically (temporary file renamed onto ``path``).

    data: [y, x], [chan, y, x] or [chan, pol, y, x]; phase_centre: (ra, dec) radians of
    pixel (npix_y//2, npix_x//2); cell_rad: pixel size (radians); frequency: Hz per channel;
    beam: (bmaj, bmin, bpa) radians, written as BMAJ/BMIN/BPA degrees; unit: BUNIT; history:
    HISTORY lines (long ones continue on further cards); provenance: the record, written to the
    PROVENANCE extension with its digest as SDPPROV; cards: further primary-header keywords
    (observation, imaging parameters), in order.
    Raises DataError (and writes nothing) when a pixel is NaN or infinite: such an image is
    never a product. beams: a restoring beam (bmaj, bmin, bpa) radians per channel, written as
    CASA's per-plane beam table (a BEAMS binary table: BMAJ, BMIN arcsec, BPA deg, CHAN, POL for
    every channel and Stokes plane; CASAMBM = T in the primary header).
    """
    from astropy.io import fits

    data = np.asarray(data, dtype=np.float32)
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise DataError(f"{Path(path).name}: {bad} of {data.size} pixels are NaN or infinite; the image is not "
                        "written (look for corrupted or extreme visibilities in the input)")
    while data.ndim < 4:
        data = data[None] if data.ndim != 3 else data[:, None]
    n_chan, n_pol, npix_y, npix_x = data.shape
    frequency = np.atleast_1d(np.asarray(frequency, dtype=float))
    width = None if channel_width is None else np.atleast_1d(np.asarray(channel_width, dtype=float))
    if len(frequency) != n_chan:
        raise ValueError(f"{len(frequency)} frequencies for {n_chan} channels")
    wcs = image_wcs(npix_x, npix_y, phase_centre=phase_centre, cell_rad=cell_rad, frequency=frequency,
                    channel_width=width, polarisation=polarisation)
    header = wcs.to_header()
    header["BUNIT"] = unit
    if header["CTYPE4"] == PLANE_AXIS:
        header["POLNAMES"] = (",".join(polarisation), "the planes of axis 4, in order")
    header["BTYPE"] = "Intensity"
    header["EQUINOX"] = 2000.0
    if beam is not None:
        header["BMAJ"] = np.degrees(beam[0])
        header["BMIN"] = np.degrees(beam[1])
        header["BPA"] = np.degrees(beam[2])
    header["ORIGIN"] = "sdpflow"
    for keyword, value, comment in cards:
        header[keyword] = (value, comment)
    for line in history:
        header.add_history(line)
    hdus = [fits.PrimaryHDU(data=np.transpose(data, (1, 0, 2, 3)), header=header)]
    if provenance is not None:
        hdus[0].header["SDPPROV"] = record_digest(provenance)  # sha256 of the PROVENANCE record (no room for a comment)
        hdus.append(_provenance_table(provenance))
    if beams is not None:
        if len(beams) != n_chan:
            raise ValueError(f"{len(beams)} beams for {n_chan} channels")
        hdus[0].header["CASAMBM"] = (True, "per-plane restoring beams in the BEAMS table")
        hdus.append(_beams_table(beams, n_pol))
    path = Path(path)
    tmp = atomic_path(path)
    fits.HDUList(hdus).writeto(tmp, overwrite=True)
    replace_atomically(tmp, path)
    return path


def _beams_table(beams: Sequence[tuple[float, float, float]], n_pol: int):
    """CASA's BEAMS extension: one row per (channel, Stokes plane), BMAJ/BMIN in arcsec, BPA in degrees."""
    from astropy.io import fits

    beams = np.asarray(beams, dtype=float)  # [chan, 3] radians
    n_chan = len(beams)
    chan = np.tile(np.arange(n_chan, dtype=np.int32), n_pol)
    pol = np.repeat(np.arange(n_pol, dtype=np.int32), n_chan)
    arcsec = np.degrees(1.0) * 3600.0
    table = fits.BinTableHDU.from_columns([
        fits.Column(name="BMAJ", format="1E", unit="arcsec", array=beams[chan, 0] * arcsec),
        fits.Column(name="BMIN", format="1E", unit="arcsec", array=beams[chan, 1] * arcsec),
        fits.Column(name="BPA", format="1E", unit="deg", array=np.degrees(beams[chan, 2])),
        fits.Column(name="CHAN", format="1J", array=chan),
        fits.Column(name="POL", format="1J", array=pol),
    ], name="BEAMS")
    table.header["EXTVER"] = 1
    table.header["NCHAN"] = n_chan
    table.header["NPOL"] = n_pol
    return table


def _provenance_table(record: dict):
    """The PROVENANCE extension: one row, column RECORD holding the record's canonical JSON."""
    from astropy.io import fits

    text = canonical_json(record).encode()
    column = fits.Column(name="RECORD", format=f"{len(text)}A", array=np.array([text]))
    return fits.BinTableHDU.from_columns([column], name=PROVENANCE_EXTENSION)


def read_provenance(path: str | Path) -> dict | None:
    """The provenance record of a FITS product (None when it has none), checked against its SDPPROV.

    Raises DataError when the record's digest differs from SDPPROV (the file was altered).
    """
    from astropy.io import fits

    with fits.open(path) as hdus:
        if PROVENANCE_EXTENSION not in hdus:
            return None
        text = hdus[PROVENANCE_EXTENSION].data["RECORD"][0]
        expected = hdus[0].header.get("SDPPROV")
    text = text.decode() if isinstance(text, bytes) else str(text)
    if hashlib.sha256(text.encode()).hexdigest() != expected:
        raise DataError(f"{path}: the provenance record does not match its SDPPROV digest: the file was altered")
    return json.loads(text)


def read_beams(path: str | Path) -> np.ndarray | None:
    """The per-channel restoring beams [chan, 3] (bmaj, bmin, bpa radians) of a FITS image's BEAMS
    table (the first Stokes plane's), or None when it has none."""
    from astropy.io import fits

    with fits.open(path) as hdus:
        if "BEAMS" not in hdus:
            return None
        table = hdus["BEAMS"].data
        first = table["POL"] == 0
        order = np.argsort(table["CHAN"][first])
        return np.stack([np.radians(table["BMAJ"][first][order] / 3600.0),
                         np.radians(table["BMIN"][first][order] / 3600.0),
                         np.radians(table["BPA"][first][order])], axis=1)


def read_fits_image(path: str | Path) -> Image:
    """Read a SIN-projected image (ours or WSClean's) as an Image with data [chan, pol, y, x]."""
    from astropy.io import fits

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such FITS image")
    try:
        with fits.open(path) as hdus:
            header = hdus[0].header
            data = np.asarray(hdus[0].data, dtype=np.float64)
    except OSError as error:
        raise DataError(f"{path}: not a readable FITS file: {error}") from None
    if header.get("CTYPE1", "") != "RA---SIN" or header.get("CTYPE2", "") != "DEC--SIN":
        raise DataError(f"{path}: axes 1 and 2 must be RA---SIN and DEC--SIN")
    while data.ndim < 4:
        data = data[None]
    data = np.transpose(data, (1, 0, 2, 3))  # [stokes, freq, y, x] -> [chan, pol, y, x]
    n_chan, n_pol = data.shape[:2]
    freq0 = float(header.get("CRVAL3", 0.0))
    step = float(header.get("CDELT3", 0.0))
    frequency = freq0 + step * (np.arange(n_chan) + 1 - float(header.get("CRPIX3", 1.0)))
    stokes0, stokes_step = int(header.get("CRVAL4", 1)), int(header.get("CDELT4", 1) or 1)
    stokes_pixel = float(header.get("CRPIX4", 1.0))
    codes = [int(round(stokes0 + stokes_step * (i + 1 - stokes_pixel))) for i in range(n_pol)]
    polarisation = tuple(FITS_STOKES_NAMES.get(code, str(code)) for code in codes)
    if header.get("CTYPE4") == PLANE_AXIS and header.get("POLNAMES"):
        polarisation = tuple(str(header["POLNAMES"]).split(","))
    beam = None
    if header.get("BMAJ"):
        beam = (np.radians(header["BMAJ"]), np.radians(header["BMIN"]), np.radians(header.get("BPA", 0.0)))
    npix_x, npix_y = data.shape[-1], data.shape[-2]
    if header["CRPIX1"] != npix_x // 2 + 1 or header["CRPIX2"] != npix_y // 2 + 1:
        raise DataError(f"{path}: the reference pixel is not the image centre (npix/2 + 1)")
    return Image(data=data, phase_centre=(np.radians(header["CRVAL1"]), np.radians(header["CRVAL2"])),
                 cell_rad=abs(np.radians(header["CDELT2"])), frequency=frequency,
                 channel_width=np.full(n_chan, abs(step)), polarisation=polarisation, beam=beam,
                 unit=str(header.get("BUNIT", "")))
