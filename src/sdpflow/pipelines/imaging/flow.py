"""Continuum and ICAL imaging on Dask: chunks stay on workers, only images and gains move.

Stages (each checkpointed by the flow engine):

``psf``            read the chunks (each worker its own), weight them, grid the PSF, fit the beam
``cycle-01..NN``   one major cycle each: per chunk one fused task (predict the model, solve and
                   apply the gain terms due in this cycle, subtract, invert); partial images
                   tree-summed; the minor cycle on one worker; the new model written
``restore``        a last major cycle with the final model; restored, residual, model images,
                   gains and ``summary.json``
``report``         ``report.html``

The client only submits tasks and receives small metrics; files are written by workers, so
the output folder must be on a file system the workers share. Each chunk prefers one worker
(so chunks grid in parallel), and the gridding of the next major cycle is submitted as soon
as its model exists, so it overlaps the writing of this stage's files.
"""

from __future__ import annotations

import json
import logging
import operator
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdpflow.config.imaging import ContinuumConfig, IcalConfig, angle_to_rad
from sdpflow.engine.cluster import check_worker_memory
from sdpflow.engine.distribute import HeldProducts, SubmittedAhead, spread_over_workers, tree_sum
from sdpflow.engine.flow import Stage, StageContext
from sdpflow.engine.futures import gather, result
from sdpflow.errors import ConfigError, DataError
from sdpflow.provenance import checksum
from sdpflow.pipelines.imaging import chunks as chunk_tasks
from sdpflow.pipelines.imaging import polarisation, products, wsclean_names
from sdpflow.pipelines.imaging.chunks import ImageGrid, SolveTerm
from sdpflow.pipelines.imaging.headers import ProductHeader, product_header
from sdpflow.pipelines.imaging.selection import selected_metadata
from sdpflow.pipelines.imaging.partition import Chunk, chunk_bytes, image_bytes, plan_chunks
from sdpflow.pipelines.imaging.summary import ImageShape, ImagingSummary, write_summary
from sdpflow.radio.datamodels import SPEED_OF_LIGHT
from sdpflow.radio.ms import MSMetadata, check_stokes, ms_checksum, read_ms_metadata
from sdpflow.radio.imaging import padded_size
from sdpflow.radio.small_inversion import image_bandwidth


def cycle_name(cycle: int) -> str:
    return f"cycle-{cycle:02d}"


@dataclass
class ImagingSession:
    """State one run's stages share: the MS layout and the futures that live on the workers."""

    config: ContinuumConfig
    calibrate: bool
    metadata: MSMetadata
    grid: ImageGrid
    chunks: list[Chunk]
    data_futures: list[Any] = field(default_factory=list)
    placement: list[dict] = field(default_factory=list)
    ahead: SubmittedAhead = field(default_factory=SubmittedAhead)  # major cycles by (model key, terms)
    held: HeldProducts = field(default_factory=lambda: HeldProducts(products.read_image))  # psf, models
    fits_mask: np.ndarray | None = None  # --fits-mask [y, x] bool
    weight_sum: float | None = None  # the summed imaging weights, once the psf stage has them
    solutions: Any = None  # --apply-solutions: the GainTable applied at read (antennas and channels of the MS)

    # -- on the workers ---------------------------------------------------------------
    def load(self, client) -> list[Any]:
        """Submit the chunk reads and weighting once; the futures keep the data on the workers.

        Chunk i prefers worker i mod n (a loose restriction: Dask may still move it, and
        re-reads it elsewhere when its worker is lost), so every task of a chunk runs where
        its visibilities are and the chunks' gridding runs in parallel.
        """
        if self.data_futures:
            return self.data_futures
        imaging = self.config.imaging
        self.placement = spread_over_workers(client, len(self.chunks))
        raw = [client.submit(chunk_tasks.read_chunk, self.config.ms, chunk, imaging.data_column, self.metadata,
                             self.grid.stokes, self.solutions, key=f"read-chunk-{chunk.index:04d}-{_token(self)}",
                             **where)
               for chunk, where in zip(self.chunks, self.placement)]
        factors, options = None, imaging.weighting_options()
        if options.needs_density:
            density = tree_sum(client, [client.submit(chunk_tasks.chunk_density, part, self.grid, options, **where)
                                        for part, where in zip(raw, self.placement)])
            # one weighting grid for all channels with -join-channels, as WSClean
            factors = client.submit(chunk_tasks.weighting_grid, density, self.grid, options,
                                    self.config.deconvolution.join_channels)
        self.data_futures = [
            client.submit(chunk_tasks.weigh_chunk, part, factors, self.grid, options,
                          key=f"chunk-{chunk.index:04d}-{_token(self)}", **where)
            for part, chunk, where in zip(raw, self.chunks, self.placement)
        ]
        return self.data_futures

    def per_chunk(self, client, function, *args, **kwargs) -> list[Any]:
        """``function(chunk_data, *args)`` for every chunk, each on its chunk's worker."""
        return [client.submit(function, part, *args, **kwargs, **where)
                for part, where in zip(self.load(client), self.placement)]

    def major_cycles(self, client, model: Any, terms: tuple[SolveTerm, ...],
                     stokes: tuple[int, ...] | None = None) -> list[Any]:
        """The chunks' major-cycle futures (residual image, gain tables) for ``model``; stokes: the Stokes
        parameters besides I to grid (None: all, see :func:`chunk_tasks.major_cycle`).

        Taken from :meth:`submit_ahead` when it was called with the same model, terms and Stokes parameters.
        """
        submitted = self.ahead.take((getattr(model, "key", None), terms, stokes))
        if submitted is not None:
            return submitted
        return self.per_chunk(client, chunk_tasks.major_cycle, model, self.grid, terms,
                              self.config.calibration.refant if self.calibrate else 0,
                              self.config.calibration.tolerance if self.calibrate else 1e-6, stokes, pure=False)

    def submit_ahead(self, client, model: Any, terms: tuple[SolveTerm, ...],
                     stokes: tuple[int, ...] | None = None) -> None:
        """Start the next major cycle now, so the workers grid while this stage writes its files."""
        self.ahead.clear()
        self.ahead.put((getattr(model, "key", None), terms, stokes), self.major_cycles(client, model, terms, stokes))

    def stokes_to_grid(self, metrics: dict | None, cycle: int) -> tuple[int, ...] | None:
        """The Stokes parameters besides I that major cycle ``cycle`` grids (None: all): a continuum run
        leaves out those whose every channel has finished cleaning (``metrics``: the cycle before's),
        until the final residual, which restore grids in full."""
        finished = (metrics or {}).get("plane_finished")
        if self.calibrate or not finished or cycle > self.config.deconvolution.nmajor or all(finished):
            return None
        n_chan = self.grid.channels_out
        return tuple(k for k in range(1, len(self.grid.stokes)) if not all(finished[k * n_chan:(k + 1) * n_chan]))

    def residual(self, client, results: list[Any]) -> Any:
        """The residual image (Jy/beam) of major-cycle ``results``: summed over chunks, normalised."""
        return client.submit(chunk_tasks.normalised,
                             tree_sum(client, [client.submit(operator.itemgetter(0), part) for part in results]))

    @staticmethod
    def gain_tables(client, results: list[Any]) -> list[Any]:
        """Each chunk's solved gain tables, from major-cycle ``results``."""
        return [client.submit(operator.itemgetter(1), part) for part in results]

    def write_image(self, client, path: Path, image: Any, kind: str, header: ProductHeader, beam: dict | None = None,
                    stokes: str | None = "I", **submit: Any) -> Any:
        """Write ``image`` (a future, None: empty model) as FITS on a worker, the plane ``stokes`` (None: all)."""
        return client.submit(products.write_image, str(path), image, self.grid, self.metadata, kind, beam, header,
                             stokes, **submit)

    def header(self, ctx: StageContext, *, final: bool = False) -> ProductHeader:
        """The header of this stage's image products (:mod:`sdpflow.pipelines.imaging.headers`); ``final``: a
        product written after the last major cycle, whose header counts the cycles run."""
        if self.weight_sum is None and ctx.product("cycles/beam.json").is_file():
            self.weight_sum = float(np.sum(_read_json(ctx.product("cycles/beam.json"))["channel_weights"]))
        nmajor = self.config.deconvolution.nmajor
        cycles = [_read_json(ctx.product(f"cycles/cycle-{c:02d}.json")) for c in range(1, nmajor + 1)] if final else None
        return product_header(self.config, self.calibrate, self.metadata, ctx.provenance(),
                              weight_sum=self.weight_sum, cycles=cycles)

    def theoretical_beams(self, client) -> list[float | None]:
        """WSClean's theoretical beam of each output channel (radians): 1 / the longest weighted baseline in
        wavelengths, or the Gaussian taper's FWHM when wider (None: a channel without weighted samples)."""
        longest = np.max(gather(self.per_chunk(client, chunk_tasks.longest_baseline, self.grid)), axis=0)
        taper = self.config.imaging.weighting_options().taper_gaussian_rad
        return [max(1.0 / float(length), taper) if length > 0 else None for length in longest]

    def non_finite_flagged(self, client) -> int:
        """Samples flagged at read for a NaN or infinite visibility, weight or UVW, over all chunks."""
        return int(sum(gather([client.submit(chunk_tasks.non_finite_count, part, **where)
                               for part, where in zip(self.load(client), self.placement)])))

    def psf(self, client, ctx: StageContext) -> Any:
        """The normalised PSF [chan, y, x] as a future (from psf.fits when resuming)."""
        return self.held.get(client, "psf.fits", str(ctx.product("psf.fits")))

    def model(self, client, ctx: StageContext, cycle: int) -> Any:
        """The model after ``cycle`` major cycles (None for 0), read back from disk when resuming."""
        if cycle == 0:
            return None
        name = model_name(cycle)
        return self.held.get(client, name, str(ctx.product(name)))

    def hold_model(self, cycle: int, model: Any) -> None:
        """Keep the model of ``cycle`` on the workers for the next stage (and let the one before go)."""
        self.held.hold(model_name(cycle), model)
        self.held.release(model_name(cycle - 1))

    def spectral_fit(self, ctx: StageContext) -> np.ndarray | None:
        """The channel fit of ``--fit-spectral-pol`` ([chan, chan], weighted by the channels' imaging weights), or None."""
        from sdpflow.radio.joined_clean import spectral_projection

        terms = self.config.deconvolution.fit_spectral_pol
        if terms is None:
            return None
        weights = _read_json(ctx.product("cycles/beam.json"))["channel_weights"]
        return spectral_projection(products.output_frequencies(self.metadata, self.grid.channels_out)[0], terms,
                                   np.asarray(weights))

    def terms_for(self, cycle: int) -> tuple[SolveTerm, ...]:
        """The gain terms solved when the model of ``cycle`` is subtracted (ARL's first_selfcal)."""
        if not self.calibrate:
            return ()
        calibration = self.config.calibration
        terms = []
        for name in calibration.context:
            term = getattr(calibration, name)
            if cycle >= term.first_selfcal:
                mode = "T" if (name == "T" or term.phase_only) and name != "B" else name
                terms.append(SolveTerm(name, mode, term.timeslice, calibration.normalise_amplitudes))
        return tuple(terms)


def previous_plane_totals(previous: dict | None, n_planes: int) -> list[int]:
    """Each image plane's components over the cycles before (``previous``: the last cycle's metrics)."""
    if previous is None:
        return [0] * n_planes
    return list(previous.get("plane_components_total") or [previous["components_total"]] * n_planes)


def plane_budgets(previous: dict | None, niter: int, n_planes: int, *, finished_stay: bool) -> list[int]:
    """Components each plane may still clean: niter counts each plane (Stokes parameter and output channel)
    cleaned on its own, over its cycles, as WSClean counts each of its images; with ``finished_stay`` a plane
    whose cleaning reached its threshold or niter is not cleaned again (continuum; ICAL cleans on against
    new gains)."""
    totals = previous_plane_totals(previous, n_planes)
    finished = (previous or {}).get("plane_finished") if finished_stay else None
    return [0 if finished and finished[p] else max(0, niter - totals[p]) for p in range(n_planes)]


def model_name(cycle: int) -> str:
    return f"cycles/model-{cycle:02d}.fits"


def _token(session: ImagingSession) -> str:
    return f"{id(session):x}"


# -- building the flow ----------------------------------------------------------------------
def build_continuum(config: ContinuumConfig) -> list[Stage]:
    return _build(config, calibrate=False)


def build_ical(config: IcalConfig) -> list[Stage]:
    return _build(config, calibrate=True)


def _build(config: ContinuumConfig, *, calibrate: bool) -> list[Stage]:
    if not config.ms:
        raise ConfigError("no MeasurementSet given: use --ms PATH (or ms: in the configuration file)")
    metadata = read_ms_metadata(config.ms)
    if config.imaging.data_column not in metadata.data_columns:
        raise DataError(f"{config.ms}: has no column {config.imaging.data_column} (it has "
                        f"{', '.join(metadata.data_columns) or 'no data column'}): choose one with --data-column")
    check_stokes(config.ms, metadata, config.imaging.stokes_planes)  # DataError: a correlation is missing
    metadata = selected_metadata(config, metadata)  # --interval, --channel-range, --field, --spws, --shift
    if config.imaging.predict:  # WSClean's -predict: the model's visibilities into MODEL_DATA, no imaging
        from sdpflow.pipelines.imaging.predict import predict_stages

        return predict_stages(config, metadata)
    if calibrate and config.calibration.refant >= metadata.n_antennas:
        raise ConfigError(f"--refant {config.calibration.refant}: {config.ms} has antennas 0..{metadata.n_antennas - 1}")
    grid = image_grid(config, metadata)
    intervals = tuple(getattr(config.calibration, name).timeslice for name in config.calibration.context) if calibrate else ()
    chunks = plan_chunks(metadata.time_rows, metadata.times, metadata.n_channels,
                         time_chunks=config.partition.time_chunks,
                         frequency_chunks=config.partition.frequency_chunks,
                         solution_intervals_s=intervals, integration_s=metadata.integration_s)
    check_memory(config, grid, metadata, chunks)
    session = ImagingSession(config, calibrate, metadata, grid, chunks, solutions=_solutions(config, metadata))
    session.fits_mask = load_fits_mask(config, grid, metadata)
    sections = {"imaging": config.imaging.model_dump(), "partition": config.partition.model_dump()}
    cycle_config = {**sections, "deconvolution": config.deconvolution.model_dump()}
    if calibrate:
        cycle_config["calibration"] = config.calibration.model_dump(exclude={"write_corrected"})
    nmajor = config.deconvolution.nmajor
    stages = [Stage("psf", lambda ctx: _psf_stage(ctx, session),
                    outputs=("psf.fits", "cycles/beam.json", *polarisation.stokes_outputs(config, "psf")),
                    inputs=(config.ms, *([config.apply_solutions] if config.apply_solutions else [])),
                    config=sections, retries=1,
                    input_checksum=lambda path: ms_checksum(path, config.imaging.data_column) if path == config.ms
                    else checksum(path))]
    previous = "psf"
    for cycle in range(1, nmajor + 1):
        outputs = [model_name(cycle), f"cycles/cycle-{cycle:02d}.json"]
        if cycle == 1:
            outputs += ["dirty.fits", *polarisation.stokes_outputs(config, "cycle-01")]
        if session.terms_for(cycle - 1):
            outputs.append(f"cycles/gains-{cycle:02d}.h5")
        stages.append(Stage(cycle_name(cycle), lambda ctx, c=cycle: _cycle_stage(ctx, session, c),
                            outputs=tuple(outputs), after=(previous,), config=cycle_config, retries=1,
                            inputs=tuple(filter(None, [config.deconvolution.fits_mask]))))
        previous = cycle_name(cycle)
    final = ["model.fits", "residual.fits", "restored.fits", "summary.json", *polarisation.stokes_outputs(config, "restore")]
    if config.deconvolution.save_source_list:
        final.append("sources.txt")
    if calibrate:
        final += ["gains.h5", "gains.h5parm"]
    restore_config = {**cycle_config, "write_corrected": calibrate and config.calibration.write_corrected}
    stages.append(Stage("restore", lambda ctx: _restore_stage(ctx, session), outputs=tuple(final),
                        after=(previous,), config=restore_config, retries=1))
    if config.imaging.name:
        named = wsclean_names.wsclean_names(config.imaging.name, config.imaging.stokes, config.imaging.channels_out,
                                            config.deconvolution.niter)
        stages.append(Stage("wsclean-names", lambda ctx: wsclean_names.run_stage(ctx, session, named),
                            outputs=tuple(plane.name for plane in named), after=("restore",),
                            config={"name": config.imaging.name}))
    stages.append(Stage("report", lambda ctx: _report_stage(ctx, session),
                        outputs=("report.html", "report-figures"), after=("restore",), config={}))
    return stages


def load_fits_mask(config: ContinuumConfig, grid: ImageGrid, metadata: MSMetadata) -> np.ndarray | None:
    """The --fits-mask as [y, x] bool, checked against the image grid (DataError, exit 2, before anything runs)."""
    if not config.deconvolution.fits_mask:
        return None
    from sdpflow.radio.masks import read_fits_mask

    return read_fits_mask(config.deconvolution.fits_mask, npix_x=grid.npix_x, npix_y=grid.npix_y,
                          cell_rad=grid.cell_rad, phase_centre=metadata.phase_centre)


def _solutions(config: ContinuumConfig, metadata: MSMetadata):
    """The ``--apply-solutions`` table for this MS (DataError, exit 2, before anything runs), or None."""
    if not config.apply_solutions:
        return None
    from sdpflow.radio.h5parm import solutions_for_ms

    return solutions_for_ms(config.apply_solutions, metadata.antenna_names, metadata.frequency, metadata.times)


def check_memory(config: ContinuumConfig, grid: ImageGrid, metadata: MSMetadata, chunks: list[Chunk]) -> None:
    """Refuse (exit 2) before anything starts an image or a chunk that no worker of the cluster can hold."""
    images = image_bytes(grid.npix_x, grid.npix_y, grid.n_planes)
    largest = max((chunk_bytes(chunk, len(metadata.polarisation)) for chunk in chunks), default=0)
    planes = f" ({grid.n_planes} planes)" if grid.n_planes > 1 else ""
    if images >= largest:
        what = f"--size {grid.npix_x} {grid.npix_y}{planes}"
        advice = "choose a smaller --size (or fewer --channels-out or --pol planes), or give workers more memory"
    else:
        what = f"--time-chunks {config.partition.time_chunks} of {config.ms}"
        advice = "give more --time-chunks (or --frequency-chunks), or give workers more memory"
    check_worker_memory(config.cluster, images + largest, what,
                        f"{advice} (cluster.memory_limit, cluster.cluster_kwargs.memory)")


def image_grid(config: ContinuumConfig, metadata: MSMetadata) -> ImageGrid:
    """The image size and cell; ``scale: auto`` is a third of the finest fringe spacing.

    With small inversion the observation's image bandwidth (wavelengths, from its longest
    baseline and largest |w| at the top frequency) goes with the grid, so that every chunk
    grids on the same small image.
    """
    width, height = config.imaging.size
    auto, small = config.imaging.scale == "auto", config.imaging.small_inversion
    uv_max, w_max = observation_uvw_max(config.ms, metadata) if auto or small else (None, None)
    if uv_max is not None and not uv_max > 0:
        raise DataError(f"{config.ms}: no row has a finite, non-zero UVW: nothing to image")
    cell = 1.0 / (3.0 * uv_max) if auto else angle_to_rad(config.imaging.scale)
    padding = config.imaging.padding  # the small grid must Nyquist-sample the padded field's w term too
    bandwidth = image_bandwidth(uv_max, w_max, padded_size(width, padding), padded_size(height, padding),
                                cell) if small else None
    return ImageGrid(width, height, cell, config.imaging.channels_out, config.imaging.epsilon,
                     config.imaging.wstacking, config.imaging.threads_per_task, config.imaging.precision,
                     config.imaging.small_inversion, bandwidth, config.imaging.stokes_planes, padding=padding)


def observation_uvw_max(ms_path: str, metadata: MSMetadata) -> tuple[float, float]:
    """(longest sqrt(u² + v²), largest |w|) in wavelengths at the top frequency."""
    from sdpflow.radio.ms import max_uvw_m

    uv_m, w_m = max_uvw_m(ms_path)
    if metadata.ms_phase_centre is not None:  # --shift rotates uvw: each part is bounded by the baseline's length
        uv_m = w_m = float(np.hypot(uv_m, w_m))
    per_metre = float(np.max(metadata.frequency)) / SPEED_OF_LIGHT
    return uv_m * per_metre, w_m * per_metre


# -- stages ---------------------------------------------------------------------------------
def _psf_stage(ctx: StageContext, session: ImagingSession) -> dict:
    client = ctx.client
    ctx.progress(0, 2, "gridding the PSF")
    psf_sum = tree_sum(client, session.per_chunk(client, chunk_tasks.chunk_psf, session.grid, priority=1))
    session.submit_ahead(client, None, session.terms_for(0))  # the dirty image grids while the beam is fitted
    non_finite = session.non_finite_flagged(client)
    if non_finite:
        ctx.log("non-finite-flagged", samples=non_finite)
        logging.getLogger(__name__).warning("%s: flagged %d samples with a NaN or infinite visibility, weight or UVW",
                                            session.config.ms, non_finite)
    channel_weights = np.asarray(result(client.submit(chunk_tasks.weight_sum, psf_sum)))
    if not np.any(channel_weights > 0):
        session.pending = None
        why = f" ({non_finite} samples NaN or infinite)" if non_finite else ""
        raise DataError(f"{session.config.ms}: every sample is flagged (or has zero weight){why}: nothing to image")
    psf = client.submit(chunk_tasks.normalised, psf_sum)
    session.weight_sum = float(channel_weights.sum())
    theoretical = session.theoretical_beams(client)
    beam = result(client.submit(products.fit_beam, psf, session.grid.cell_rad, theoretical[0], priority=1))
    ctx.progress(1, 2, "writing psf.fits")
    result(session.write_image(client, ctx.output("psf.fits"), psf, "psf", session.header(ctx), beam, priority=1))
    beam["theoretical_arcsec"] = [None if b is None else b * products.ARCSEC_PER_RAD for b in theoretical]
    beam = polarisation.write_psf_cubes(session, client, ctx, psf, beam)  # adds the channels' beams
    beam["channel_weights"] = channel_weights.ravel().tolist()  # the MFS images' weights
    ctx.output("cycles/beam.json").write_text(products.strict_json(beam))
    session.psf_future = psf
    ctx.progress(2, 2)
    return beam


def _cycle_stage(ctx: StageContext, session: ImagingSession, cycle: int) -> dict:
    """Major cycle ``cycle``: residual of model ``cycle-1``, then a minor cycle to model ``cycle``."""
    client = ctx.client
    started = time.perf_counter()
    previous = _read_json(ctx.product(f"cycles/cycle-{cycle - 1:02d}.json")) if cycle > 1 else None
    model = session.model(client, ctx, cycle - 1)
    deconvolution = session.config.deconvolution
    components_so_far = previous["components_total"] if previous else 0
    if previous and previous["converged"] and not session.calibrate:
        # Continuum stops when the minor cycle has reached its threshold: carry the model on.
        result(session.write_image(client, ctx.output(model_name(cycle)), model, "model",
                                   session.header(ctx), _beam(ctx), stokes=None))
        metrics = {**previous, "cycle": cycle, "skipped": "converged", "elapsed_s": 0.0}
        ctx.output(f"cycles/cycle-{cycle:02d}.json").write_text(products.strict_json(metrics))
        session.model_future, session.model_cycle = model, cycle
        ctx.log("major-cycle", **metrics)
        return metrics
    terms = session.terms_for(cycle - 1)
    ctx.progress(0, 3, f"major cycle {cycle}: predict, calibrate, invert")
    results = session.major_cycles(client, model, terms, session.stokes_to_grid(previous, cycle))
    residual = session.residual(client, results)
    writes = []  # waited for at the end of the stage, so they overlap the minor cycle and the next gridding
    if cycle == 1:
        header, beam = session.header(ctx), _beam(ctx)
        writes.append(session.write_image(client, ctx.output("dirty.fits"), residual, "dirty", header, beam))
        writes += polarisation.write_stokes_images(session, client, ctx, "dirty", residual, header, beam)
    if terms:
        writes.append(client.submit(products.write_gains, str(ctx.output(f"cycles/gains-{cycle:02d}.h5")),
                                    session.gain_tables(client, results), ctx.provenance()))
    ctx.progress(1, 3, f"major cycle {cycle}: minor cycle")
    settings = {**deconvolution.model_dump(), "auto_mask": session.config.auto_mask_sigma,
                "auto_mask_reached": bool(previous and previous.get("auto_mask_reached"))}
    left = plane_budgets(previous, deconvolution.niter, session.grid.n_planes, finished_stay=not session.calibrate)
    minor = client.submit(products.minor_cycle, residual, session.psf(client, ctx), model, settings, left,
                          polarisation.joined_planes(session.config), session.spectral_fit(ctx), session.fits_mask)
    new_model = client.submit(operator.itemgetter(0), minor)
    stats = result(client.submit(operator.itemgetter(1), minor))
    plane_totals = [done + now for done, now in zip(previous_plane_totals(previous, len(left)), stats["plane_components"])]
    finished = [budget <= 0 or reason in ("threshold", "auto-threshold", "niter") or total >= deconvolution.niter
                for budget, reason, total in zip(left, stats["plane_stop_reasons"], plane_totals)]
    # The next stage (the next cycle, or restore after the last or a converged one) grids this
    # model with terms_for(cycle) either way: start it before writing the model.
    session.submit_ahead(client, new_model, session.terms_for(cycle),
                         session.stokes_to_grid({"plane_finished": finished}, cycle + 1))
    ctx.progress(2, 3, f"major cycle {cycle}: writing the model")
    writes.append(session.write_image(client, ctx.output(model_name(cycle)), new_model, "model",
                                      session.header(ctx), _beam(ctx), stokes=None, priority=1))
    gather(writes)
    metrics = {
        "cycle": cycle,
        "calibrated_terms": [term.name for term in terms],
        **stats,
        "components_total": components_so_far + stats["components"],
        "plane_components_total": plane_totals,
        "plane_finished": finished,
        "converged": all(finished),
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    ctx.output(f"cycles/cycle-{cycle:02d}.json").write_text(products.strict_json(metrics))
    session.model_future, session.model_cycle = new_model, cycle
    ctx.log("major-cycle", **metrics)
    ctx.progress(3, 3)
    return metrics


def _restore_stage(ctx: StageContext, session: ImagingSession) -> dict:
    client = ctx.client
    started = time.perf_counter()
    nmajor = session.config.deconvolution.nmajor
    model = session.model(client, ctx, nmajor)
    data = session.load(client)
    terms = session.terms_for(nmajor)
    ctx.progress(0, 2, "final major cycle")
    results = session.major_cycles(client, model, terms)
    residual = session.residual(client, results)
    beam = products.chosen_beam(_read_json(ctx.product("cycles/beam.json")), session.config.deconvolution)
    provenance, header = ctx.provenance(), session.header(ctx, final=True)
    restored = client.submit(products.restore_image, model, residual, polarisation.first_beam(beam),
                             session.grid.cell_rad, session.grid)
    writes = [
        session.write_image(client, ctx.output(name), image, kind, header, polarisation.first_beam(beam))
        for name, image, kind in (("model.fits", model, "model"), ("residual.fits", residual, "residual"),
                                  ("restored.fits", restored, "restored"))
    ]
    writes += polarisation.write_restored_cubes(session, client, ctx, model, residual, beam, header)
    if session.calibrate:
        tables = session.gain_tables(client, results)
        writes.append(client.submit(products.write_gains, str(ctx.output("gains.h5")), tables, provenance))
        writes.append(client.submit(products.write_h5parm_gains, str(ctx.output("gains.h5parm")), tables,
                                    session.metadata, provenance))
    if session.config.deconvolution.save_source_list:
        writes.append(client.submit(products.write_sources, str(ctx.output("sources.txt")), model, session.grid,
                                    session.metadata, beam.get("channel_weights"),
                                    session.config.deconvolution.fit_spectral_pol))
    gather(writes)
    if session.calibrate and session.config.calibration.write_corrected:
        # One chunk at a time: concurrent writers to one MS would contend for its table lock.
        for part, table in zip(data, tables):
            result(client.submit(products.write_corrected, session.config.ms, part, table,
                                 session.config.imaging.data_column, session.solutions, pure=False))
    image_stats = result(client.submit(products.image_statistics, restored, residual, session.grid))
    noise = result(client.submit(products.stokes_noise, residual, session.grid))
    cycles = [_read_json(ctx.product(f"cycles/cycle-{c:02d}.json")) for c in range(1, nmajor + 1)]
    summary = ImagingSummary(
        pipeline="ical" if session.calibrate else "continuum",
        ms=str(Path(session.config.ms).resolve()),
        image=ImageShape(size=[session.grid.npix_x, session.grid.npix_y],
                         cell_arcsec=float(np.degrees(session.grid.cell_rad) * 3600),
                         channels_out=session.grid.channels_out),
        chunks=len(session.chunks),
        non_finite_flagged=session.non_finite_flagged(client),
        cycles=cycles,
        # cycles after the minor cycle reached its threshold or niter are recorded as skipped
        major_cycles_run=sum(1 for cycle in cycles if not cycle.get("skipped")),
        stop_reason=next((c["stop_reason"] for c in reversed(cycles) if not c.get("skipped")), None),
        restoring_beam=beam,
        **image_stats,
        stokes_noise_jy_per_beam=noise["stokes"], channel_noise_jy_per_beam=noise["channels"],
        channel_beams=beam["channels"],
        channel_frequencies_hz=products.output_frequencies(session.metadata, session.grid.channels_out)[0].tolist(),
        stage_seconds={**{cycle_name(m["cycle"]): m.get("elapsed_s") for m in cycles},
                       "restore": round(time.perf_counter() - started, 3)},
    )
    write_summary(ctx.output("summary.json"), summary)
    ctx.progress(2, 2)
    return summary


def _report_stage(ctx: StageContext, session: ImagingSession) -> None:
    from sdpflow.pipelines.imaging.report import imaging_section
    from sdpflow.report.html import run_section, write_report

    client = ctx.client

    def on_workers(function, jobs):  # the figures are drawn on the workers, in parallel, while the page's tables are made
        futures = client.map(function, list(jobs), pure=False)
        return (result(future) for future in futures)

    section = imaging_section(ctx.out_dir, session.config.model_dump(mode="json"))
    write_report(ctx.out_dir, ctx.output("report.html"), [section, run_section(ctx.out_dir)],
                 title=f"sdpflow {section.title.split()[0]} run", map_function=on_workers,
                 final_path=ctx.product("report.html"))


def _beam(ctx: StageContext) -> dict:
    """The restoring beam of ``restored.fits`` (beam.json's first channel), for the BMAJ/BMIN/BPA of every product."""
    return polarisation.first_beam(_read_json(ctx.product("cycles/beam.json")))


def _read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
