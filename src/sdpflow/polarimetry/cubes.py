"""Stokes cubes and cutouts (cubelets) of them.

A cube is a FITS image with two celestial axes, a FREQ axis and at most one Stokes plane (an
sdpflow or WSClean ``restored-S.fits``, a POSSUM/RACS cube); its per-channel restoring beams
come from a CASA-style ``BEAMS`` table, else from BMAJ/BMIN/BPA. :func:`open_cube` memory-maps
the data and is cached per process (keyed by the file's size and time), so a worker reads the
headers once and touches only the pixels of the cutouts it makes. A cubelet
(:func:`write_cubelet`) holds the I, Q and U planes of one island: axes RA, Dec, FREQ, STOKES
(1, 2, 3), its own WCS (reference pixel shifted to the cut) and the BEAMS table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from sdpflow.errors import DataError


@dataclass(frozen=True)
class Cube:
    """A cube: ``data`` [chan, y, x] (a memory-mapped view, Jy/beam), ``celestial`` (astropy WCS of the
    two sky axes), ``frequency_hz`` [chan], ``beams`` [chan, 3] (bmaj, bmin, bpa radians), ``unit``."""

    path: str
    data: np.ndarray
    celestial: object
    frequency_hz: np.ndarray
    beams: np.ndarray
    unit: str

    @property
    def pixel_deg(self) -> float:
        """The pixel size along Dec, degrees."""
        from astropy.wcs.utils import proj_plane_pixel_scales

        return float(proj_plane_pixel_scales(self.celestial)[1])


def open_cube(path: str | Path) -> Cube:
    """The cube at ``path``, opened once per process while the file is unchanged (module docstring)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        raise DataError(f"cube {path}: no such file: check the path") from None
    return _open_cube(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=8)
def _open_cube(path: str, size: int, mtime_ns: int) -> Cube:
    from astropy.io import fits
    from astropy.wcs import WCS

    from sdpflow.radio.fits import read_beams

    try:
        hdus = fits.open(path, memmap=True)  # kept open: the data stay memory-mapped
        header = hdus[0].header
        data = hdus[0].data
    except OSError as error:
        raise DataError(f"cube {path}: not a readable FITS file: {error}") from None
    if data is None or data.ndim < 3:
        raise DataError(f"cube {path}: needs two sky axes and a FREQ axis; it has {0 if data is None else data.ndim} axes")
    wcs = WCS(header)
    types = [str(t).upper() for t in wcs.wcs.ctype]
    spectral = [i for i, t in enumerate(types) if t.startswith("FREQ")]
    if not spectral or not wcs.has_celestial:
        raise DataError(f"cube {path}: axes {', '.join(types)}: needs RA/Dec and a FREQ axis")
    order = [wcs.wcs.lng, wcs.wcs.lat, spectral[0]]
    others = [i for i in range(wcs.naxis) if i not in order]
    index: list[object] = [slice(None)] * data.ndim
    for axis in others:  # a Stokes axis (or any other) must hold one plane
        length = data.shape[data.ndim - 1 - axis]
        if length != 1:
            raise DataError(f"cube {path}: axis {axis + 1} ({types[axis]}) has {length} planes: give one Stokes "
                            "parameter per cube")
        index[data.ndim - 1 - axis] = 0
    if sorted(order) != [0, 1, 2] or order[:2] != [0, 1]:
        raise DataError(f"cube {path}: axes 1 and 2 must be RA and Dec, a later one FREQ (found {', '.join(types)})")
    view = data[tuple(index)]  # [freq, y, x] when FREQ is axis 3 or 4
    n_chan = view.shape[0]
    spectral_wcs = wcs.sub([spectral[0] + 1])
    frequency = np.asarray(spectral_wcs.pixel_to_world_values(np.arange(n_chan)), dtype=np.float64).ravel()
    if str(spectral_wcs.wcs.cunit[0]) not in ("Hz", ""):
        frequency = frequency * {"kHz": 1e3, "MHz": 1e6, "GHz": 1e9}.get(str(spectral_wcs.wcs.cunit[0]), 1.0)
    beams = read_beams(path)
    if beams is None:
        if not header.get("BMAJ"):
            raise DataError(f"cube {path}: no restoring beam (neither a BEAMS table nor BMAJ/BMIN/BPA)")
        beams = np.tile(np.radians([header["BMAJ"], header["BMIN"], header.get("BPA", 0.0)]), (n_chan, 1))
    if len(beams) != n_chan:
        raise DataError(f"cube {path}: its BEAMS table has {len(beams)} channels, the cube {n_chan}")
    return Cube(path, view, wcs.celestial, frequency, np.asarray(beams, dtype=np.float64),
                str(header.get("BUNIT", "Jy/beam")))


def check_alike(cubes: list[Cube]) -> None:
    """DataError unless the cubes share their shape, channels and sky grid."""
    first = cubes[0]
    for other in cubes[1:]:
        if other.data.shape != first.data.shape:
            raise DataError(f"cubes {first.path} and {other.path} differ in shape: {first.data.shape} and "
                            f"{other.data.shape}")
        if not np.allclose(other.frequency_hz, first.frequency_hz, rtol=1e-9):
            raise DataError(f"cubes {first.path} and {other.path} have different channels")
        if not np.allclose(other.celestial.wcs.crval, first.celestial.wcs.crval) or \
                not np.allclose(other.celestial.wcs.cdelt, first.celestial.wcs.cdelt):
            raise DataError(f"cubes {first.path} and {other.path} have different sky grids")


def island_box(cube: Cube, ra_deg: np.ndarray, dec_deg: np.ndarray, maj_arcsec: np.ndarray,
               padding_beams: float) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1), the pixel box of an island: its components' positions, each padded by half its
    major axis plus ``padding_beams`` × the cube's largest BMAJ, clipped to the cube. DataError when a
    component lies outside the cube."""
    x, y = cube.celestial.world_to_pixel_values(np.asarray(ra_deg, dtype=float), np.asarray(dec_deg, dtype=float))
    ny, nx = cube.data.shape[1:]
    outside = ~np.isfinite(x) | ~np.isfinite(y) | (x < -0.5) | (y < -0.5) | (x > nx - 0.5) | (y > ny - 0.5)
    if np.any(outside):
        raise DataError(f"component at RA {float(np.asarray(ra_deg)[outside][0]):.5f}°, "
                        f"Dec {float(np.asarray(dec_deg)[outside][0]):.5f}° lies outside the cube")
    maj = np.nan_to_num(np.asarray(maj_arcsec, dtype=float), nan=0.0) / 3600.0
    pad = (padding_beams * np.degrees(cube.beams[:, 0].max()) + 0.5 * maj) / cube.pixel_deg
    y0 = int(max(0, np.floor(np.min(y - pad))))
    y1 = int(min(ny, np.ceil(np.max(y + pad)) + 1))
    x0 = int(max(0, np.floor(np.min(x - pad))))
    x1 = int(min(nx, np.ceil(np.max(x + pad)) + 1))
    return y0, y1, x0, x1


def write_cubelet(path: str | Path, cubes: list[Cube], box: tuple[int, int, int, int]) -> None:
    """The I, Q, U cubes (in that order) within ``box`` as one FITS cubelet (module docstring)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    y0, y1, x0, x1 = box
    data = np.stack([np.asarray(cube.data[:, y0:y1, x0:x1], dtype=np.float32) for cube in cubes])
    first = cubes[0]
    celestial = first.celestial
    frequency = first.frequency_hz
    wcs = WCS(naxis=4)
    wcs.wcs.ctype = [*celestial.wcs.ctype, "FREQ", "STOKES"]
    wcs.wcs.cunit = [*celestial.wcs.cunit, "Hz", ""]
    wcs.wcs.crval = [*celestial.wcs.crval, frequency[0], 1.0]
    wcs.wcs.crpix = [celestial.wcs.crpix[0] - x0, celestial.wcs.crpix[1] - y0, 1.0, 1.0]
    step = float(np.diff(frequency).mean()) if frequency.size > 1 else 1.0
    wcs.wcs.cdelt = [*celestial.wcs.get_cdelt(), step, 1.0]
    pc = np.eye(4)
    pc[:2, :2] = celestial.wcs.get_pc()
    wcs.wcs.pc = pc
    wcs.wcs.radesys = celestial.wcs.radesys or "FK5"
    if celestial.wcs.equinox == celestial.wcs.equinox:  # not NaN
        wcs.wcs.equinox = celestial.wcs.equinox
    header = wcs.to_header()
    header["BUNIT"] = first.unit
    header["BMAJ"], header["BMIN"], header["BPA"] = (float(np.degrees(v)) for v in first.beams[0])
    header["CASAMBM"] = (True, "per-plane restoring beams in the BEAMS table")
    header["ORIGIN"] = "sdpflow"
    header["EXTEND"] = True
    with open(path, "wb") as stream:
        fits.PrimaryHDU(data=data, header=header).writeto(stream)
        stream.write(_beams_extension(first.path, first.beams.tobytes()))


@lru_cache(maxsize=8)
def _beams_extension(path: str, beams: bytes) -> bytes:
    """The BEAMS table extension of a cube's cubelets (I, Q, U planes), serialised once per process:
    the same for every cutout of the cube, and a third of a cutout's writing time."""
    import io

    from astropy.io import fits

    from sdpflow.radio.fits import _beams_table

    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), _beams_table(np.frombuffer(beams).reshape(-1, 3), 3)]).writeto(buffer)
    return buffer.getvalue()[fits.PrimaryHDU().header.tostring().__len__():]


@dataclass(frozen=True)
class Cubelet:
    """A cubelet read back: ``data`` [3 (I, Q, U), chan, y, x], ``celestial`` WCS, ``frequency_hz``,
    ``beams`` [chan, 3] radians, ``pixel_deg``."""

    data: np.ndarray
    celestial: object
    frequency_hz: np.ndarray
    beams: np.ndarray
    pixel_deg: float


def read_cubelet(path: str | Path) -> Cubelet:
    """A cubelet written by :func:`write_cubelet`; DataError when it is not one (a corrupt file, say)."""
    from astropy.io import fits
    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales

    from sdpflow.radio.fits import read_beams

    try:
        with fits.open(path) as hdus:
            header = hdus[0].header
            data = np.asarray(hdus[0].data, dtype=np.float64)
        beams = read_beams(path)
    except Exception as error:  # noqa: BLE001 - astropy raises many kinds for a corrupt file
        raise DataError(f"cutout {Path(path).name} cannot be read: {str(error).splitlines()[0] if str(error) else error!r}") from None
    if data.ndim != 4 or data.shape[0] != 3 or beams is None or len(beams) != data.shape[1]:
        raise DataError(f"cutout {Path(path).name} is not an I, Q, U cubelet with a BEAMS table")
    wcs = WCS(header)
    n_chan = data.shape[1]
    frequency = np.asarray(wcs.sub([3]).pixel_to_world_values(np.arange(n_chan)), dtype=np.float64).ravel()
    return Cubelet(data, wcs.celestial, frequency, beams, float(proj_plane_pixel_scales(wcs.celestial)[1]))
