"""Worker-side steps that turn arrays into products: minor cycle, restore, statistics, files.

Plain functions composing radio kernels and writers; the imaging flow sends them to workers.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

import numpy as np

from sdpflow.pipelines.imaging.headers import ProductHeader
from sdpflow.radio import deconvolution, fits, hdf5, restore
from sdpflow.radio.calibration import combined_gains
from sdpflow.radio.datamodels import GainTable, concatenate_gaintables
from sdpflow.radio.ms import MSMetadata, write_column
from sdpflow.radio.weighting import output_channel_index

ARCSEC_PER_RAD = 180 / np.pi * 3600


def minor_cycle(residual: np.ndarray, psf: np.ndarray, model: np.ndarray | None, settings: dict[str, Any],
                niter: int | Sequence[int], joined: tuple[int, ...] = (),
                spectral: np.ndarray | None = None,
                fits_mask: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Clean ``residual`` (Jy/beam, [chan, y, x]) and add the components to ``model`` (Jy/pixel).

    settings: the deconvolution section (gain, mgain, threshold, auto_threshold, multiscale,
    scales); niter: components still allowed, for every plane or one count per plane. Every
    plane is cleaned on its own, each Stokes plane of a [stokes × chan, y, x] residual with the
    Stokes I ``psf`` [chan, y, x] of its channel, with its own count, noise and thresholds (as
    WSClean cleans each polarisation and output channel); a plane with no components left is
    not cleaned. joined: Stokes plane indices cleaned together channel by channel (Hogbom, see
    :mod:`sdpflow.radio.joined_clean`), the others alone; planes cleaned together share one
    count. spectral: with joined channels, the [chan, chan] fit applied to each component's
    channel values (``--fit-spectral-pol``, see :func:`sdpflow.radio.joined_clean.spectral_projection`).
    fits_mask: [y, x] bool (``--fits-mask``). Masks as WSClean's: settings ``auto_mask`` (σ, 0: off)
    cleans to that level until a minor cycle stops there (``auto_mask_reached``), then only where
    ``model`` has components (see :func:`clean_mask`); while nothing is above that level and the
    model is empty, a cycle cleans as without it; ``local_rms`` and ``no_negative`` as in
    :func:`sdpflow.radio.deconvolution.deconvolve`. Returns the new model and the cycle's metrics,
    with each plane's components and stop reason ("" where it was not cleaned).
    """
    n_chan = psf.shape[0]
    if psf.shape[0] != residual.shape[0]:
        psf = np.tile(psf, (residual.shape[0] // psf.shape[0], 1, 1))
    peak = float(np.max(np.abs(residual)))
    sigma = float(deconvolution.mad_sigma(residual))
    budgets = np.broadcast_to(np.asarray(niter, dtype=np.int64), residual.shape[:1])
    options = dict(gain=settings["gain"], threshold=settings["threshold"],
                   auto_threshold=settings["auto_threshold"], mgain=settings["mgain"],
                   algorithm="multiscale" if settings["multiscale"] else "hogbom")
    if settings["multiscale"] and settings.get("scales"):
        options["scales"] = settings["scales"]
    options["mask"], options["auto_mask"] = clean_mask(model, settings, fits_mask, residual.shape[-2:])
    if settings.get("local_rms"):
        from sdpflow.radio.masks import beam_pixels

        options["local_rms_window"] = settings["local_rms_window"] * beam_pixels(psf[0])
    if settings.get("no_negative"):
        options["no_negative"] = True
    join_channels = bool(settings.get("join_channels")) and n_chan > 1
    units, alone = _cleaning_units(residual.shape[0], n_chan, joined, join_channels)
    alone = [plane for plane in alone if budgets[plane] > 0]

    def clean(options: dict[str, Any]):
        delta, left = None, residual
        counts, reasons = np.zeros(residual.shape[0], np.int64), [""] * residual.shape[0]
        if len(alone) == residual.shape[0]:  # every plane alone: no copies of the cube
            result = _deconvolve_on_every_core(residual, psf, budgets, options)
            delta, left = result.model_delta, result.residual
        elif alone:
            result = _deconvolve_on_every_core(residual[alone], psf[alone], budgets[alone], options)
            left, delta = residual.copy(), np.zeros_like(residual)
            delta[alone], left[alone] = result.model_delta, result.residual
        if alone:
            counts[alone] = result.plane_components
            for plane, reason in zip(alone, result.plane_stop_reasons):
                reasons[plane] = reason
        for planes, groups in units:
            if budgets[planes[0]] <= 0:
                continue
            from sdpflow.radio.joined_clean import deconvolve_joined

            result = deconvolve_joined(residual[planes], psf[planes], gain=options["gain"],
                                       niter=int(budgets[planes[0]]), threshold=options["threshold"],
                                       auto_threshold=options["auto_threshold"], mgain=options["mgain"],
                                       groups=groups, spectral=spectral if join_channels else None,
                                       mask=options.get("mask"), auto_mask=options.get("auto_mask"))
            left = residual.copy() if left is residual else left
            delta = np.zeros_like(residual) if delta is None else delta
            delta[planes], left[planes] = result.model_delta, result.residual
            counts[planes] = result.n_components
            for plane in planes:
                reasons[plane] = result.stop_reason
        # a joined component counts once
        components = int(sum(counts[p] for p in alone) + sum(counts[planes[0]] for planes, _ in units))
        delta = np.zeros_like(residual) if delta is None else delta
        return delta, left, counts, reasons, components

    delta, left, counts, reasons, components = clean(options)
    if options["auto_mask"] and components == 0 and "auto-mask" in reasons and (model is None or not np.any(model)):
        # Nothing above the auto-mask level and no model yet: a mask of no component would stop
        # cleaning for good (and ICAL would have nothing to calibrate against), so clean as without it.
        delta, left, counts, reasons, components = clean({**options, "auto_mask": None})
    new_model = delta if model is None else model + delta
    cleaned = [reason for reason in reasons if reason]
    metrics = {
        "peak_residual_jy": peak,
        "rms_residual_jy": float(np.sqrt(np.mean(residual**2))),
        "sigma_mad_jy": sigma,
        "components": components,
        "stop_reason": "niter" if "niter" in cleaned else "mgain" if "mgain" in cleaned else
                       (cleaned[0] if cleaned else "niter"),
        "plane_components": counts.tolist(),
        "plane_stop_reasons": reasons,
        "peak_after_minor_jy": float(np.max(np.abs(left))),
        "model_flux_jy": float(np.sum(new_model[0]) if new_model.ndim == 3 else np.sum(new_model)),
    }
    if settings.get("auto_mask"):
        metrics["auto_mask_reached"] = bool(settings.get("auto_mask_reached")) or "auto-mask" in cleaned
    return new_model, metrics


def clean_mask(model: np.ndarray | None, settings: dict[str, Any],
               fits_mask: np.ndarray | None, shape: tuple[int, int]) -> tuple[np.ndarray | None, float | None]:
    """(mask [y, x] bool or None, auto-mask level σ or None) of a minor cycle, as WSClean's -auto-mask.

    Until a minor cycle has stopped at the auto-mask level (settings ``auto_mask_reached``), it
    cleans everywhere (within ``fits_mask``) down to ``auto_mask`` σ; after, only where ``model``
    ([plane, y, x] Jy/pixel, None: none yet) holds components, down to the usual thresholds. shape: (y, x).
    """
    level = settings.get("auto_mask") or 0.0
    if not level:
        return fits_mask, None
    if not settings.get("auto_mask_reached"):
        return fits_mask, float(level)
    from sdpflow.radio.masks import component_mask

    found = component_mask(model) if model is not None else np.zeros(shape, bool)
    return (found & fits_mask if fits_mask is not None else found), None


def _deconvolve_on_every_core(residual: np.ndarray, psf: np.ndarray, budgets: np.ndarray,
                              options: dict[str, Any]) -> deconvolution.DeconvolutionResult:
    """:func:`deconvolution.deconvolve` of planes [plane, y, x] cleaned alone, runs of planes shared out over
    a thread per core (the CLEAN loops release the GIL); the same result as one call."""
    from concurrent.futures import ThreadPoolExecutor

    n_threads = min(len(residual), len(os.sched_getaffinity(0)))
    if n_threads < 2:
        return deconvolution.deconvolve(residual, psf, niter=budgets, **options)
    bounds = np.linspace(0, len(residual), n_threads + 1).astype(int)
    runs = [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]
    model, left = np.empty(residual.shape), np.empty(residual.shape)

    def clean(run: slice) -> deconvolution.DeconvolutionResult:
        result = deconvolution.deconvolve(residual[run], psf[run], niter=budgets[run], **options)
        model[run], left[run] = result.model_delta, result.residual
        return result

    with ThreadPoolExecutor(n_threads) as pool:
        results = list(pool.map(clean, runs))
    reasons = sum((result.plane_stop_reasons for result in results), ())
    return deconvolution.DeconvolutionResult(model, left, sum(result.n_components for result in results),
                                             "niter" if "niter" in reasons else reasons[0],
                                             sum((result.plane_components for result in results), ()), reasons)


def _cleaning_units(n_planes: int, n_chan: int, joined: tuple[int, ...],
                    join_channels: bool) -> tuple[list[tuple[list[int], list[list[int]] | None]], list[int]]:
    """The planes of [stokes × chan, y, x] cleaned together (see :func:`minor_cycle`), as (planes, groups as
    positions among the planes) units, and those cleaned alone: with joined channels each Stokes parameter's
    channels together (the ``joined`` Stokes parameters all in one unit, one group each), else each
    channel's ``joined`` Stokes planes together."""
    n_stokes = n_planes // n_chan
    channels = range(n_chan)
    if join_channels:
        stokes_units = ([list(joined)] if joined else []) + [[k] for k in range(n_stokes) if k not in joined]
        units = [([k * n_chan + c for k in members for c in channels],
                  [[i * n_chan + c for c in channels] for i in range(len(members))]) for members in stokes_units]
        return units, []
    if not joined:
        return [], list(range(n_planes))
    units = [([k * n_chan + c for k in joined], None) for c in channels]
    return units, [k * n_chan + c for k in range(n_stokes) if k not in joined for c in channels]


def fit_beam(psf: np.ndarray, cell_rad: float, beam_estimate_rad: float | None = None) -> dict[str, float]:
    """The restoring beam fitted to the PSF as WSClean fits it: FWHM major/minor (arcsec) and position angle (deg).

    beam_estimate_rad: WSClean's theoretical beam (radians), which sizes the fitting box (see
    :func:`sdpflow.radio.restore.fit_restoring_beam`)."""
    plane = psf[0] if psf.ndim == 3 else psf
    bmaj, bmin, bpa = restore.fit_restoring_beam(plane, cell_rad, beam_estimate_rad=beam_estimate_rad)
    return {"bmaj_arcsec": float(bmaj * ARCSEC_PER_RAD), "bmin_arcsec": float(bmin * ARCSEC_PER_RAD),
            "bpa_deg": float(np.degrees(bpa))}


def fit_beams(psf: np.ndarray, cell_rad: float, beam_estimates_rad: list[float | None] | None = None
              ) -> list[dict[str, float]]:
    """:func:`fit_beam` of each channel of a PSF [chan, y, x] (``beam_estimates_rad``: each channel's)."""
    estimates = beam_estimates_rad if beam_estimates_rad is not None else [None] * len(psf)
    return [fit_beam(plane, cell_rad, estimate) for plane, estimate in zip(psf, estimates)]


def beam_rad(beam: dict[str, float]) -> tuple[float, float, float]:
    """(bmaj, bmin, bpa) in radians of a beam as :func:`fit_beam` writes it (arcsec, deg)."""
    return beam["bmaj_arcsec"] / ARCSEC_PER_RAD, beam["bmin_arcsec"] / ARCSEC_PER_RAD, np.radians(beam["bpa_deg"])


def chosen_beam(beam: dict[str, Any], deconvolution) -> dict[str, Any]:
    """The restoring beam (as :func:`fit_beam` writes it, with its ``channels``) after ``--beam-shape``,
    ``--beam-size`` (every channel gets that beam) or ``--circular-beam`` (minor axis = major, PA 0),
    as WSClean's options; ``deconvolution``: the DeconvolutionConfig."""
    fixed = deconvolution.fixed_beam_rad

    def chosen(one: dict[str, Any]) -> dict[str, Any]:
        if fixed is not None:
            one = {**one, "bmaj_arcsec": fixed[0] * ARCSEC_PER_RAD, "bmin_arcsec": fixed[1] * ARCSEC_PER_RAD,
                   "bpa_deg": float(np.degrees(fixed[2]))}
        if deconvolution.circular_beam:
            one = {**one, "bmin_arcsec": one["bmaj_arcsec"], "bpa_deg": 0.0}
        return one

    result = chosen(beam)
    if "channels" in beam:
        result["channels"] = [chosen(channel) for channel in beam["channels"]]
    return result


def write_sources(path: str, model: np.ndarray | None, grid, metadata: MSMetadata,
                  channel_weights: list[float] | None, terms: int | None = None) -> int:
    """Write the Stokes I components of ``model`` ([stokes × chan, y, x] Jy/pixel) as WSClean's sources.txt."""
    from sdpflow.radio.source_list import write_source_list

    frequency = output_frequencies(metadata, grid.channels_out)[0]
    planes = stokes_plane(model, grid, "I") if model is not None else np.zeros((grid.channels_out, grid.npix_y,
                                                                                 grid.npix_x))
    return write_source_list(path, planes, phase_centre=metadata.phase_centre, cell_rad=grid.cell_rad,
                             frequency=frequency, weights=channel_weights, terms=terms or 1)


def restore_image(model: np.ndarray | None, residual: np.ndarray, beam: dict[str, float], cell_rad: float,
                  grid=None) -> np.ndarray:
    """Model convolved with the restoring beam plus the residual (Jy/beam); of Stokes I alone when ``grid``
    says the images hold several Stokes planes."""
    if grid is not None:
        model, residual = stokes_plane(model, grid, "I"), stokes_plane(residual, grid, "I")
    if model is None:
        return residual.copy()
    return restore.restore(model, residual, beam_rad(beam), cell_rad)


def restore_cube(model: np.ndarray | None, residual: np.ndarray, beams: list[dict[str, float]],
                 cell_rad: float) -> np.ndarray:
    """Restore a [stokes × chan, y, x] image, each channel with its own beam (``beams`` [chan])."""
    if model is None:
        return residual.copy()
    n_chan = len(beams)
    return np.array([restore.restore(model[k], residual[k], beam_rad(beams[k % n_chan]), cell_rad)
                     for k in range(residual.shape[0])])


def stokes_plane(image: np.ndarray | None, grid, name: str) -> np.ndarray | None:
    """The [chan, y, x] planes of Stokes ``name`` in a [stokes × chan, y, x] image of ``grid``."""
    if image is None or len(grid.stokes) == 1:
        return image
    index = grid.stokes.index(name)
    return image[index * grid.channels_out:(index + 1) * grid.channels_out]


def image_statistics(restored: np.ndarray, residual: np.ndarray, grid=None) -> dict[str, float]:
    """Peak of the restored image, noise (σ from the MAD of the residual), dynamic range; of Stokes I
    when ``grid`` says the images hold several Stokes planes."""
    if grid is not None:
        restored, residual = stokes_plane(restored, grid, "I"), stokes_plane(residual, grid, "I")
    noise = float(deconvolution.mad_sigma(residual))
    peak = float(np.max(restored))
    return {"peak_jy_per_beam": peak, "noise_jy_per_beam": noise,
            "rms_residual_jy_per_beam": float(np.sqrt(np.mean(residual**2))),
            "dynamic_range": peak / noise if noise > 0 else float("inf")}


def stokes_noise(residual: np.ndarray, grid) -> dict[str, Any]:
    """Robust noise (σ from the MAD, Jy/beam) of each Stokes parameter's residual: over all its
    channels ("stokes") and per output channel ("channels", Stokes -> [chan_out]).

    residual: [stokes × chan, y, x] of ``grid`` (Stokes-major; [chan, y, x] for Stokes I).
    """
    cubes = {name: stokes_plane(residual, grid, name) for name in grid.stokes}
    return {"stokes": {name: float(deconvolution.mad_sigma(cube)) for name, cube in cubes.items()},
            "channels": {name: [float(deconvolution.mad_sigma(plane)) for plane in cube] for name, cube in cubes.items()}}


def strict_json(value: Any, **dumps: Any) -> str:
    """``value`` as JSON that every parser reads: NaN and ±Infinity (not JSON) become null.

    A dynamic range with zero noise is infinite, say; Python's json would write the bare
    token ``Infinity``, which other JSON readers reject.
    """
    def finite(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {key: finite(inner) for key, inner in item.items()}
        if isinstance(item, (list, tuple)):
            return [finite(inner) for inner in item]
        return item

    return json.dumps(finite(value), allow_nan=False, **dumps)


def read_image(path: str) -> np.ndarray:
    """An image [stokes × chan, y, x] (Stokes-major; [chan, y, x] for Stokes I) from a FITS file
    written by :func:`write_image`."""
    data = fits.read_fits_image(path).data  # [chan, pol, y, x]
    return np.transpose(data, (1, 0, 2, 3)).reshape(-1, *data.shape[2:])


def write_image(path: str, image: np.ndarray | None, grid, metadata: MSMetadata, kind: str,
                beam: dict[str, float] | None, header: ProductHeader, stokes: str | None = None) -> None:
    """Write an image (None = empty model) as FITS with its WCS, beam and ``header`` (observation and
    imaging keywords, command line, provenance: see :mod:`sdpflow.pipelines.imaging.headers`).

    image: [chan, y, x] (Stokes I) or [stokes × chan, y, x] with the grid's Stokes planes;
    stokes: write only that Stokes plane (None: every plane the image holds). A beam with
    per-channel ``channels`` beams gets CASA's BEAMS table too.
    """
    n_out = grid.channels_out
    data = np.zeros((grid.n_planes, grid.npix_y, grid.npix_x)) if image is None else np.asarray(image)
    names = grid.stokes if data.shape[0] == len(grid.stokes) * n_out else ("I",)
    if stokes is not None:
        index = names.index(stokes)
        data, names = data[index * n_out:(index + 1) * n_out], (stokes,)
    cube = np.transpose(data.reshape(len(names), n_out, *data.shape[1:]), (1, 0, 2, 3))  # [chan, pol, y, x]
    frequency, bandwidth = output_frequencies(metadata, n_out)
    beams = [beam_rad(b) for b in beam["channels"]] if beam and stokes is not None and "channels" in beam else None
    fits.write_fits_image(
        path, cube, phase_centre=metadata.phase_centre, cell_rad=grid.cell_rad, frequency=frequency,
        channel_width=bandwidth, beam=beam_rad(beam) if beam else None, polarisation=names,
        unit="JY/PIXEL" if kind == "model" else "JY/BEAM", provenance=header.provenance,
        history=[f"sdpflow {kind} image", *header.history], beams=beams, cards=header.cards,
    )


def output_frequencies(metadata: MSMetadata, channels_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre and width (Hz) of each output channel, grouped as the gridder groups them."""
    group = output_channel_index(metadata.n_channels, channels_out)
    centres = np.array([metadata.frequency[group == c].mean() for c in range(channels_out)])
    widths = np.array([metadata.channel_width[group == c].sum() for c in range(channels_out)])
    return centres, widths


def joined_terms(tables: list[dict[str, GainTable]]) -> dict[str, GainTable]:
    """Each term's gain table (T, G, B), the chunks' solutions joined in time."""
    terms: dict[str, list[GainTable]] = {}
    for chunk_tables in tables:
        for name, table in chunk_tables.items():
            terms.setdefault(name, []).append(table)
    return {name: concatenate_gaintables(parts) for name, parts in terms.items()}


def write_gains(path: str, tables: list[dict[str, GainTable]], provenance: dict[str, Any]) -> None:
    """Write each term's gain table, the chunks' solutions joined in time, to one HDF5 file."""
    joined = joined_terms(tables)
    hdf5.write_gaintables_hdf5(path, joined, combined_gains(list(joined.values())), provenance=provenance)


def write_h5parm_gains(path: str, tables: list[dict[str, GainTable]], metadata: MSMetadata,
                       provenance: dict[str, Any]) -> None:
    """Write the product of the terms (the gains to apply) as H5parm (LoSoTo/DP3, see :mod:`sdpflow.radio.h5parm`),
    with the MS's antenna names and positions and a pol axis of its parallel hands."""
    from sdpflow.radio.h5parm import write_h5parm

    combined = combined_gains(list(joined_terms(tables).values()))
    hands = {"linear": ("XX", "YY"), "circular": ("RR", "LL")}.get(metadata.feed_type, ("I",))
    write_h5parm(path, combined, antenna_names=metadata.antenna_names, antenna_positions=metadata.antenna_positions,
                 phase_centre=metadata.phase_centre, correlations=hands, provenance=provenance)


def write_corrected(ms_path: str, data, tables: dict[str, GainTable], data_column: str = "DATA",
                    solutions: GainTable | None = None) -> None:
    """Write this chunk's calibrated visibilities to CORRECTED_DATA.

    A Stokes I chunk writes its corrected Stokes I to the parallel hands (cross hands 0); a
    chunk of several Stokes planes re-reads its correlations from ``data_column`` and writes
    each corrected by the (scalar, Stokes I) gains, so the polarisation is kept; after the
    ``--apply-solutions`` table ``solutions`` (which the chunk's own data had at read).
    """
    from sdpflow.pipelines.imaging.chunks import chunk_solutions, corrected_chunk
    from sdpflow.radio.calibration import apply_gains, apply_solutions
    from sdpflow.radio.ms import read_visibility

    rows, channels = data.chunk.rows, data.chunk.channels
    if data.vis.vis.shape[2] == 1:
        write_column(ms_path, "CORRECTED_DATA", corrected_chunk(data, list(tables.values())),
                     rows=rows, channels=channels)
        return
    vis = read_visibility(ms_path, rows=rows, channels=channels, data_column=data_column, correlations=True,
                          allow_all_flagged=True)
    if solutions is not None:
        vis = apply_solutions(vis, chunk_solutions(solutions, data.chunk))
    corrected = vis.vis.astype(np.complex128)
    for table in tables.values():
        corrected = apply_gains(corrected, table, vis.antenna1, vis.antenna2, vis.time, inverse=True)
    write_column(ms_path, "CORRECTED_DATA", corrected, rows=rows, channels=channels)
