"""What runs on a worker for one chunk of visibilities: read, weight, and one fused major cycle.

These functions compose radio kernels and are sent to workers by :mod:`sdpflow.pipelines.imaging.flow`;
they know nothing of Dask. A chunk's visibilities stay in its worker's memory for the whole
run; only images, models and gain tables travel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sdpflow.radio.calibration import apply_gains, apply_solutions, normalise_amplitudes, solve_gains, unsolved_samples
from sdpflow.radio.datamodels import SPEED_OF_LIGHT, GainTable, Visibility, unflagged_weights
from sdpflow.radio.imaging import ImageSum, gridding_dtypes, invert, invert_psf, predict
from sdpflow.radio.ms import MSMetadata, read_visibility_counted
from sdpflow.radio.weighting import (WeightingOptions, gridded_weights, imaging_weights, output_channel_index,
                                     weight_density, weight_factors)
from sdpflow.pipelines.imaging.partition import Chunk


@dataclass(frozen=True)
class ImageGrid:
    """The image every chunk grids onto. cell_rad in radians; epsilon is the gridder accuracy;
    precision "single" or "double"; small_inversion with bandwidth, the observation's highest
    spatial frequency in wavelengths (None: each chunk's own, so chunks may grid on different
    small grids), see :mod:`sdpflow.radio.imaging`."""

    npix_x: int
    npix_y: int
    cell_rad: float
    channels_out: int = 1
    epsilon: float = 1e-5
    wstacking: bool = True
    nthreads: int = 1
    precision: str = "double"
    small_inversion: bool = True
    bandwidth: float | None = None
    stokes: tuple[str, ...] = ("I",)  # the planes each chunk holds and grids, Stokes I first
    padding: float = 1.0  # WSClean's -padding (see sdpflow.radio.imaging)

    @property
    def n_planes(self) -> int:
        """Planes of a gridded image: one per Stokes parameter and output channel, Stokes-major."""
        return len(self.stokes) * self.channels_out

    def gridder_options(self) -> dict:
        return {"cell_rad": self.cell_rad, "epsilon": self.epsilon, "nthreads": self.nthreads,
                "do_wstacking": self.wstacking, "precision": self.precision,
                "small_inversion": self.small_inversion, "bandwidth": self.bandwidth, "padding": self.padding}

    @property
    def vis_dtype(self) -> type:
        """complex64 or complex128: what the gridder takes and predict returns."""
        return gridding_dtypes(self.precision, self.epsilon)[0]


@dataclass(frozen=True)
class SolveTerm:
    """One gain term to solve in a major cycle: mode T/G/B, interval in seconds (None = each integration)."""

    name: str
    mode: str
    timeslice: float | None
    normalise: bool = True  # hold the mean amplitude at 1 (amplitude terms only)


@dataclass
class ChunkData:
    """A chunk held by a worker: its Stokes visibilities and imaging weights [row, chan].

    vis: [row, chan, stokes] with the grid's Stokes planes, Stokes I first (only I for a Stokes I
    run); weights: imaging weights from Stokes I's weights and density, used for every plane
    (zero where that plane is flagged), None for natural weighting (each plane its own
    weights); non_finite: samples (row × channel × correlation of the MS) flagged at read for a
    NaN or infinite visibility, weight or UVW.
    """

    chunk: Chunk
    vis: Visibility
    weights: np.ndarray | None = None
    non_finite: int = 0

    @property
    def vis_i(self) -> Visibility:
        """Stokes I alone: what weighting, the PSF and self-calibration use."""
        return self.plane(0)

    def plane(self, index: int) -> Visibility:
        """One Stokes plane as a one-plane Visibility (views of this chunk's arrays, no copy)."""
        if self.vis.vis.shape[2] == 1:
            return self.vis
        keep = slice(index, index + 1)
        return self.vis.with_vis(self.vis.vis[:, :, keep], polarisation=(self.vis.polarisation[index],),
                                 weight=self.vis.weight[:, :, keep], flag=self.vis.flag[:, :, keep])


def read_chunk(ms_path: str, chunk: Chunk, data_column: str, metadata: MSMetadata | None = None,
               stokes: tuple[str, ...] = ("I",), solutions: GainTable | None = None) -> ChunkData:
    """Read one chunk from the MS as its Stokes planes (on the worker that will keep it); ``metadata``:
    the MS's, if known; stokes: the planes, Stokes I first; solutions: gains to correct the data by
    (``--apply-solutions``: antennas in the MS's order, one channel or the MS's channels)."""
    vis, non_finite = read_visibility_counted(ms_path, rows=chunk.rows, channels=chunk.channels,
                                              data_column=data_column, allow_all_flagged=True, metadata=metadata,
                                              stokes=None if stokes == ("I",) else stokes)
    if solutions is not None:
        vis = apply_solutions(vis, chunk_solutions(solutions, chunk))
    return ChunkData(chunk, vis, non_finite=non_finite)


def chunk_solutions(solutions: GainTable, chunk: Chunk) -> GainTable:
    """The channels of ``solutions`` (one, or the MS's) that a chunk's channels take."""
    if len(solutions.frequency) == 1:
        return solutions
    channels = slice(*chunk.channels)
    return replace(solutions, gain=solutions.gain[:, :, channels], weight=solutions.weight[:, :, channels],
                   frequency=solutions.frequency[channels])


def non_finite_count(data: ChunkData) -> int:
    """How many of this chunk's samples were flagged at read for NaN or infinite values."""
    return data.non_finite


def chunk_density(data: ChunkData, grid: ImageGrid, options: WeightingOptions) -> np.ndarray:
    """This chunk's gridded weight density (summed over chunks for uniform/Briggs weighting)."""
    return weight_density(data.vis_i, npix_x=grid.npix_x, npix_y=grid.npix_y, cell_rad=grid.cell_rad,
                          channels_out=grid.channels_out, channel_index=_channel_index(data, grid),
                          padding=options.padding)


def weighting_grid(density: np.ndarray, grid: ImageGrid, options: WeightingOptions,
                   mf_weighting: bool = False) -> np.ndarray:
    """The cells' factors on the data weights (:func:`weight_factors`) from the observation's summed density,
    computed once for all chunks. mf_weighting: one grid for all output channels (their densities
    summed), as WSClean's -join-channels; else each output channel has its own."""
    if mf_weighting:
        density = density.sum(axis=0, keepdims=True)
    return weight_factors(density, options, grid.cell_rad)


def weigh_chunk(data: ChunkData, factors: np.ndarray | None, grid: ImageGrid, options: WeightingOptions) -> ChunkData:
    """The chunk with its imaging weights: data weights times the cells' ``factors`` (:func:`weighting_grid`;
    one plane: the same for every output channel), or None for plain natural weighting."""
    if factors is None:
        weights = imaging_weights(data.vis_i, npix_x=grid.npix_x, npix_y=grid.npix_y, cell_rad=grid.cell_rad,
                                  options=options)
    else:
        channel_index = _channel_index(data, grid)
        channel_index = np.zeros_like(channel_index) if factors.shape[0] == 1 else channel_index
        weights = gridded_weights(data.vis_i, factors, npix_x=grid.npix_x, npix_y=grid.npix_y,
                                  cell_rad=grid.cell_rad, channel_index=channel_index, padding=options.padding)
    return ChunkData(data.chunk, data.vis, weights, data.non_finite)


def longest_baseline(data: ChunkData, grid: ImageGrid) -> np.ndarray:
    """The longest |uvw| in wavelengths of the chunk's weighted samples per output channel [channels_out]
    (0 where none): WSClean's theoretical beam is 1 / its maximum over the observation."""
    weights = data.weights if data.weights is not None else unflagged_weights(data.vis_i)
    vis = data.vis_i
    length = np.linalg.norm(vis.uvw, axis=1)[:, None] * vis.frequency[None, :] / SPEED_OF_LIGHT
    length = np.where(weights > 0, length, 0.0)
    longest = np.zeros(grid.channels_out)
    np.maximum.at(longest, _channel_index(data, grid), length.max(axis=0, initial=0.0))
    return longest


def chunk_psf(data: ChunkData, grid: ImageGrid) -> ImageSum:
    """The unnormalised PSF of this chunk (of Stokes I: the minor cycle uses it for every plane)."""
    return invert_psf(data.vis_i, npix_x=grid.npix_x, npix_y=grid.npix_y, weights=data.weights,
                      channels_out=grid.channels_out, channel_index=_channel_index(data, grid), **grid.gridder_options())


def major_cycle(
    data: ChunkData, model: np.ndarray | None, grid: ImageGrid, terms: tuple[SolveTerm, ...] = (),
    refant: int = 0, tolerance: float = 1e-6, stokes: tuple[int, ...] | None = None,
) -> tuple[ImageSum, dict[str, GainTable]]:
    """Predict the model, solve and apply the gain terms in order, subtract, invert the residual.

    model: [stokes × chan_out, y, x] Jy/pixel (Stokes-major, as :attr:`ImageGrid.n_planes`) or
    None (empty). The gains are solved on Stokes I and, being scalar per antenna, applied to
    every Stokes plane alike. stokes: the Stokes parameters (indices into ``grid.stokes``)
    besides I to grid (None: all); the others come back as zero images, neither predicted nor
    inverted (their cleaning has finished). Returns this chunk's unnormalised residual image
    [stokes × chan_out, y, x] and the gain table of each solved term.
    """
    channel_index = _channel_index(data, grid)
    vis_i = data.vis_i
    n_out = grid.channels_out
    model_i = None if model is None else model[:n_out]
    observed = vis_i.vis[:, :, 0].astype(grid.vis_dtype)
    if model_i is not None and np.any(model_i):
        model_vis = predict(vis_i, model_i, channel_index=channel_index, **grid.gridder_options())
    else:
        model_vis, terms = None, ()  # nothing to calibrate against
    corrected, tables, weights, unsolved_any = observed, {}, data.weights, None
    for term in terms:
        # the solver only reads weights and flags: share them rather than with_vis's copies
        table = solve_gains(vis_i.with_vis(corrected, weight=vis_i.weight, flag=vis_i.flag), model_vis,
                            mode=term.mode, timeslice=term.timeslice,
                            refant=refant, tol=tolerance)
        if term.normalise and term.mode != "T":
            table = normalise_amplitudes(table)
        corrected = apply_gains(corrected, table, vis_i.antenna1, vis_i.antenna2, vis_i.time, inverse=True)
        unsolved = unsolved_samples(vis_i.n_channels, table, vis_i.antenna1, vis_i.antenna2, vis_i.time)
        if unsolved.any():
            weights = np.where(unsolved, 0.0, weights if weights is not None else vis_i.weight[:, :, 0])
            unsolved_any = unsolved if unsolved_any is None else unsolved_any | unsolved
        tables[term.name] = table
    # the model visibilities are not needed after this: subtract into them rather than a new array
    residual = corrected if model_vis is None else np.subtract(corrected, model_vis, out=model_vis)
    # weights and flags are only read by invert: share them instead of with_vis's copies
    image = invert(vis_i.with_vis(residual, weight=vis_i.weight, flag=vis_i.flag), npix_x=grid.npix_x, npix_y=grid.npix_y, weights=weights,
                   channels_out=grid.channels_out, channel_index=channel_index, **grid.gridder_options())
    stokes_i = image
    for index in range(1, len(grid.stokes)):
        if stokes is None or index in stokes:
            other = _other_plane(data, index, model, grid, channel_index, tables, unsolved_any)
        else:
            other = ImageSum(np.zeros_like(stokes_i.image), np.zeros_like(stokes_i.weight_sum))
        image = _concatenate(image, other)
    return image, tables


def _other_plane(data: ChunkData, index: int, model: np.ndarray | None, grid: ImageGrid, channel_index: np.ndarray,
                 tables: dict[str, GainTable], unsolved: np.ndarray | None) -> ImageSum:
    """The residual image of Stokes plane ``index`` (not I): corrected by Stokes I's gains, its model
    (planes index × chan_out ...) subtracted, inverted with the chunk's imaging weights."""
    vis = data.plane(index)
    n_out = grid.channels_out
    corrected = vis.vis[:, :, 0].astype(grid.vis_dtype)
    for table in tables.values():
        corrected = apply_gains(corrected, table, vis.antenna1, vis.antenna2, vis.time, inverse=True)
    plane_model = None if model is None else model[index * n_out:(index + 1) * n_out]
    if plane_model is not None and np.any(plane_model):
        corrected = corrected - predict(vis, plane_model, channel_index=channel_index, **grid.gridder_options())
    weights = data.weights
    if unsolved is not None:
        weights = np.where(unsolved, 0.0, weights if weights is not None else vis.weight[:, :, 0])
    return invert(vis.with_vis(corrected, weight=vis.weight, flag=vis.flag), npix_x=grid.npix_x,
                  npix_y=grid.npix_y, weights=weights, channels_out=n_out, channel_index=channel_index,
                  **grid.gridder_options())


def _concatenate(first: ImageSum, second: ImageSum) -> ImageSum:
    """Two images' planes one after the other (Stokes-major)."""
    return ImageSum(np.concatenate([first.image, second.image]), np.concatenate([first.weight_sum, second.weight_sum]))


def weight_sum(image: ImageSum) -> np.ndarray:
    """The summed imaging weights of a gridded image, per output channel."""
    return image.weight_sum


def normalised(image: ImageSum) -> np.ndarray:
    """A summed image divided by its weights: Jy/beam, [chan, y, x].

    Here rather than in the flow module, so a worker's first use of it imports nothing new.
    """
    return image.normalised()


def corrected_chunk(data: ChunkData, tables: list[GainTable]) -> np.ndarray:
    """The chunk's Stokes I visibilities corrected by the given gain tables in order, [row, chan] complex."""
    vis_i = data.vis_i
    corrected = vis_i.vis[:, :, 0].astype(np.complex128)
    for table in tables:
        corrected = apply_gains(corrected, table, vis_i.antenna1, vis_i.antenna2, vis_i.time, inverse=True)
    return corrected


def _channel_index(data: ChunkData, grid: ImageGrid) -> np.ndarray:
    """Output channel of each of this chunk's channels, by its place in the whole band."""
    start, stop = data.chunk.channels
    return output_channel_index(data.chunk.band_channels, grid.channels_out)[start:stop]
