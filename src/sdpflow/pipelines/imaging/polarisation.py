"""The per-Stokes products of an imaging run with ``--pol`` (WSClean's -pol): names and writes.

A run with ``--pol IQUV`` (or IQU, QU, V...) grids Stokes I and each parameter asked for in
every chunk; the images travel as [stokes × chan_out, y, x] (Stokes-major). Besides the
Stokes I products of a plain run (``restored.fits``... unchanged), it writes for each Stokes
parameter S asked for ``P-S.fits`` for P in psf, dirty, model, residual, restored: cubes over
the output channels with FREQ and STOKES axes; the restored cubes are restored channel by
channel with each channel's fitted beam, listed in CASA's BEAMS table (BMAJ/BMIN/BPA in the
header are the first channel's, as for ``restored.fits``). A Stokes I run writes none of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sdpflow.config.imaging import ContinuumConfig

#: The products written per Stokes parameter, by the stage that writes them.
STOKES_PRODUCTS = {"psf": ("psf",), "cycle-01": ("dirty",), "restore": ("model", "residual", "restored")}


def is_polarised(config: ContinuumConfig) -> bool:
    """Whether the run images more than Stokes I."""
    return config.imaging.stokes != ("I",)


def stokes_outputs(config: ContinuumConfig, stage: str) -> list[str]:
    """The ``P-S.fits`` files a stage writes (none for a Stokes I run)."""
    if not is_polarised(config):
        return []
    return [f"{kind}-{name}.fits" for kind in STOKES_PRODUCTS.get(stage, ()) for name in config.imaging.stokes]


def joined_planes(config: ContinuumConfig) -> tuple[int, ...]:
    """Indices among the chunks' Stokes planes of those cleaned together (``--join-polarizations``:
    the Stokes parameters asked for, when more than one), else ()."""
    planes, asked = config.imaging.stokes_planes, config.imaging.stokes
    if not config.deconvolution.join_polarizations or len(asked) < 2:
        return ()
    return tuple(planes.index(name) for name in asked)


def tiled_psf(psf: np.ndarray, n_stokes: int) -> np.ndarray:
    """The Stokes I PSF [chan, y, x] repeated for each Stokes plane: [stokes × chan, y, x]."""
    return np.tile(psf, (n_stokes, 1, 1))


def first_beam(beam: dict[str, Any]) -> dict[str, Any]:
    """The beam of ``restored.fits`` (the first channel's), without the per-channel list."""
    return {key: value for key, value in beam.items() if key != "channels"}


def write_stokes_images(session, client, ctx, kind: str, image: Any, header,
                        beam: dict | None = None) -> list[Any]:
    """Submit the writes of ``kind-S.fits`` for every Stokes parameter asked for; their futures.

    image: a future of a [stokes × chan, y, x] image of the session's grid (None: empty model);
    header: the products' :class:`sdpflow.pipelines.imaging.headers.ProductHeader`.
    """
    from sdpflow.pipelines.imaging import products

    if not is_polarised(session.config):
        return []
    return [client.submit(products.write_image, str(ctx.output(f"{kind}-{name}.fits")), image, session.grid,
                          session.metadata, kind, beam, header, name)
            for name in session.config.imaging.stokes]


def write_psf_cubes(session, client, ctx, psf: Any, beam: dict) -> dict:
    """Fit each channel's beam and write ``psf-S.fits`` (a polarised run only); the beam with its
    ``channels`` list added (for beam.json and the summary)."""
    from sdpflow.engine.futures import gather, result
    from sdpflow.pipelines.imaging import products

    estimates = [None if b is None else b / products.ARCSEC_PER_RAD for b in beam.get("theoretical_arcsec", [])]
    beam = {**beam, "channels": result(client.submit(products.fit_beams, psf, session.grid.cell_rad,
                                                     estimates or None))}
    if not is_polarised(session.config):
        return beam
    tiled = client.submit(tiled_psf, psf, len(session.grid.stokes))
    gather(write_stokes_images(session, client, ctx, "psf", tiled, session.header(ctx), beam))
    return beam


def write_restored_cubes(session, client, ctx, model: Any, residual: Any, beam: dict, header) -> list[Any]:
    """Submit the writes of ``model-S``, ``residual-S`` and ``restored-S.fits`` (restored channel by channel
    with ``beam["channels"]``); their futures (none for a Stokes I run)."""
    from sdpflow.pipelines.imaging import products

    if not is_polarised(session.config):
        return []
    cube = client.submit(products.restore_cube, model, residual, beam["channels"], session.grid.cell_rad)
    writes = []
    for kind, image in (("model", model), ("residual", residual), ("restored", cube)):
        writes += write_stokes_images(session, client, ctx, kind, image, header,
                                      beam if kind == "restored" else first_beam(beam))
    return writes
