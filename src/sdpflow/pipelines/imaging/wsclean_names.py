"""``--name PREFIX``: the run's images also under WSClean's file names, one plane per file.

WSClean 3.x names its images ``PREFIX[-NNNN|-MFS][-S]-KIND.fits`` (checked against its output):

* KIND is ``image`` (restored), ``residual``, ``model``, ``dirty`` or ``psf``; with ``niter 0``
  only ``dirty`` and ``image`` are written;
* ``-NNNN`` (output channel, four digits from 0000) and the multi-frequency ``-MFS`` images
  appear only when there is more than one output channel;
* ``-S`` (I, Q, U, V) appears only when more than one polarisation is imaged; the PSF, the
  same for every polarisation, never carries it (its STOKES axis is the first polarisation's).

Each file is one plane (RA, Dec and length-1 FREQ and STOKES axes) with that channel's
restoring beam in BMAJ/BMIN/BPA, as WSClean writes them. The per-channel planes are those of
the run's cubes (``P-S.fits``, or ``P.fits`` for a Stokes I run); the image is the model
restored with the channel's beam plus the residual. The MFS planes are, as WSClean's, the
channels' planes averaged with the channels' summed imaging weights; the MFS image is the MFS
model restored with the beam fitted to the MFS PSF, plus the MFS residual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: WSClean's name of each sdpflow product.
WSCLEAN_KINDS = {"image": "restored", "residual": "residual", "model": "model", "dirty": "dirty", "psf": "psf"}


@dataclass(frozen=True)
class NamedPlane:
    """One WSClean-named file: its name, the sdpflow product, the polarisation and the output channel
    (None: the MFS plane)."""

    name: str
    kind: str
    stokes: str
    channel: int | None


def wsclean_names(prefix: str, stokes: tuple[str, ...], channels_out: int, niter: int) -> list[NamedPlane]:
    """The files WSClean writes for ``-name prefix -pol <stokes> -channels-out N -niter niter`` (see the module)."""
    kinds = ("dirty", "image") if niter == 0 else ("dirty", "image", "model", "residual", "psf")
    channels: list[int | None] = [None] if channels_out == 1 else [*range(channels_out), None]
    planes = []
    for channel in channels:
        part = "" if channels_out == 1 else ("-MFS" if channel is None else f"-{channel:04d}")
        for kind in kinds:
            for name in (stokes[:1] if kind == "psf" else stokes):
                pol = f"-{name}" if len(stokes) > 1 and kind != "psf" else ""
                planes.append(NamedPlane(f"{prefix}{part}{pol}-{kind}.fits", WSCLEAN_KINDS[kind], name, channel))
    return planes


def source_cube(kind: str, stokes: str, polarised: bool) -> str:
    """The run's cube that holds the planes of ``kind`` and ``stokes`` (the PSF: psf.fits, Stokes I's)."""
    if kind == "psf" or not polarised:
        return f"{kind}.fits"
    return f"{kind}-{stokes}.fits"


def mfs_mean(cube: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The channels of ``cube`` [chan, y, x] averaged with ``weights`` [chan] (summed imaging weights)."""
    weights = np.asarray(weights, dtype=np.float64)
    return np.tensordot(weights / weights.sum(), cube, axes=1)


def mfs_band(frequency: np.ndarray, width: np.ndarray) -> tuple[float, float]:
    """Centre and width (Hz) of the whole band of channels with centres ``frequency`` and widths ``width``."""
    low, high = float(np.min(frequency - width / 2)), float(np.max(frequency + width / 2))
    return (low + high) / 2, high - low


def write_planes(targets: list[tuple[str, NamedPlane]], sources: dict[str, str], cell_rad: float,
                 phase_centre: tuple[float, float], frequency: np.ndarray, width: np.ndarray,
                 beam: dict[str, Any], header) -> None:
    """Write the WSClean-named files ``targets`` ((path, plane), all of one polarisation) from the run's cubes.

    sources: the cube [chan, y, x] of each product (see :func:`source_cube`); frequency, width:
    Hz per output channel; beam: beam.json's record (``channels``: each output channel's beam,
    ``channel_weights``: each channel's summed imaging weights); header: the products'
    :class:`sdpflow.pipelines.imaging.headers.ProductHeader`.
    """
    from sdpflow.pipelines.imaging.products import ARCSEC_PER_RAD, beam_rad, fit_beam
    from sdpflow.radio import fits, restore

    needed = {plane.kind for _, plane in targets}
    if "restored" in needed:
        needed = (needed - {"restored"}) | {"model", "residual"}
    if any(plane.channel is None for _, plane in targets) and len(frequency) > 1:
        needed.add("psf")  # the MFS beam is fitted to the MFS PSF
    cubes = {kind: fits.read_fits_image(sources[kind]).data[:, 0] for kind in sorted(needed)}
    beams = [beam_rad(b) for b in beam["channels"]]
    mfs, mfs_beam = {}, None
    if "psf" in cubes and len(frequency) > 1:
        mfs = {kind: mfs_mean(data, beam["channel_weights"]) for kind, data in cubes.items()}
        theoretical = [b for b in beam.get("theoretical_arcsec", []) if b is not None]  # the MFS PSF's: the finest
        estimate = min(theoretical) / ARCSEC_PER_RAD if theoretical else None
        mfs_beam = beam_rad(fit_beam(mfs["psf"], cell_rad, estimate))
    for path, plane in targets:
        if plane.channel is None and mfs:
            planes, this_beam = mfs, mfs_beam
            centre, band = mfs_band(frequency, width)
        else:
            channel = plane.channel or 0
            planes = {kind: data[channel] for kind, data in cubes.items()}
            this_beam, centre, band = beams[channel], frequency[channel], width[channel]
        if plane.kind == "restored":
            data = restore.restore(planes["model"], planes["residual"], this_beam, cell_rad)
        else:
            data = planes[plane.kind]
        fits.write_fits_image(
            path, data, phase_centre=phase_centre, cell_rad=cell_rad, frequency=[centre], channel_width=[band],
            beam=this_beam, unit="JY/PIXEL" if plane.kind == "model" else "JY/BEAM", polarisation=(plane.stokes,),
            provenance=header.provenance, cards=header.cards,
            history=[f"sdpflow {plane.kind} image (WSClean's file name)", *header.history])


def run_stage(ctx, session, planes: list[NamedPlane]) -> dict[str, int]:
    """The ``wsclean-names`` stage: one task per polarisation writes its files from the run's cubes."""
    import json

    from sdpflow.engine.futures import gather
    from sdpflow.pipelines.imaging.products import output_frequencies

    client, config = ctx.client, session.config
    polarised = config.imaging.stokes != ("I",)
    beam = json.loads(ctx.product("cycles/beam.json").read_text())
    frequency, width = output_frequencies(session.metadata, session.grid.channels_out)
    writes = []
    for stokes in config.imaging.stokes:
        mine = [plane for plane in planes if plane.stokes == stokes]
        sources = {kind: str(ctx.product(source_cube(kind, stokes, polarised)))
                   for kind in ("dirty", "model", "residual", "psf")}
        writes.append(client.submit(write_planes, [(str(ctx.output(p.name)), p) for p in mine], sources,
                                    session.grid.cell_rad, session.metadata.phase_centre, frequency, width, beam,
                                    session.header(ctx, final=True), pure=False))
    gather(writes)
    return {"files": len(planes)}
