"""What runs on a worker for one chunk of visibilities: read, weight, and one fused major cycle.

These functions compose radio kernels and are sent to workers by :mod:`sdpflow.pipelines.imaging.flow`;
they know nothing of Dask. A chunk's visibilities stay in its worker's memory for the whole
run; only images, models and gain tables travel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdpflow.radio.calibration import apply_gains, normalise_amplitudes, solve_gains, unsolved_samples
from sdpflow.radio.datamodels import GainTable, Visibility
from sdpflow.radio.imaging import ImageSum, gridding_dtypes, invert, invert_psf, predict
from sdpflow.radio.ms import MSMetadata, read_visibility_counted
from sdpflow.radio.weighting import imaging_weights, output_channel_index, weight_density
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

    def gridder_options(self) -> dict:
        return {"cell_rad": self.cell_rad, "epsilon": self.epsilon, "nthreads": self.nthreads,
                "do_wstacking": self.wstacking, "precision": self.precision,
                "small_inversion": self.small_inversion, "bandwidth": self.bandwidth}

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
    """A chunk held by a worker: its Stokes I visibilities and imaging weights [row, chan].

    non_finite: samples (row × channel × correlation of the MS) flagged at read for a NaN or
    infinite visibility, weight or UVW.
    """

    chunk: Chunk
    vis: Visibility
    weights: np.ndarray | None = None
    non_finite: int = 0


def read_chunk(ms_path: str, chunk: Chunk, data_column: str, metadata: MSMetadata | None = None) -> ChunkData:
    """Read one chunk from the MS as Stokes I (on the worker that will keep it); ``metadata``: the MS's, if known."""
    vis, non_finite = read_visibility_counted(ms_path, rows=chunk.rows, channels=chunk.channels,
                                              data_column=data_column, allow_all_flagged=True, metadata=metadata)
    return ChunkData(chunk, vis, non_finite=non_finite)


def non_finite_count(data: ChunkData) -> int:
    """How many of this chunk's samples were flagged at read for NaN or infinite values."""
    return data.non_finite


def chunk_density(data: ChunkData, grid: ImageGrid) -> np.ndarray:
    """This chunk's gridded weight density (summed over chunks for uniform/Briggs weighting)."""
    return weight_density(data.vis, npix_x=grid.npix_x, npix_y=grid.npix_y, cell_rad=grid.cell_rad,
                          channels_out=grid.channels_out, channel_index=_channel_index(data, grid))


def weigh_chunk(data: ChunkData, density: np.ndarray | None, grid: ImageGrid, weighting: str, robust: float) -> ChunkData:
    """The chunk with its imaging weights computed from the observation's total density."""
    weights = imaging_weights(data.vis, density=density, weighting=weighting, robust=robust, npix_x=grid.npix_x,
                              npix_y=grid.npix_y, cell_rad=grid.cell_rad, channel_index=_channel_index(data, grid))
    return ChunkData(data.chunk, data.vis, weights, data.non_finite)


def chunk_psf(data: ChunkData, grid: ImageGrid) -> ImageSum:
    """The unnormalised PSF of this chunk."""
    return invert_psf(data.vis, npix_x=grid.npix_x, npix_y=grid.npix_y, weights=data.weights,
                      channels_out=grid.channels_out, channel_index=_channel_index(data, grid), **grid.gridder_options())


def major_cycle(
    data: ChunkData, model: np.ndarray | None, grid: ImageGrid, terms: tuple[SolveTerm, ...] = (),
    refant: int = 0, tolerance: float = 1e-6,
) -> tuple[ImageSum, dict[str, GainTable]]:
    """Predict the model, solve and apply the gain terms in order, subtract, invert the residual.

    model: [chan_out, y, x] Jy/pixel or None (empty). Returns this chunk's unnormalised
    residual image and the gain table of each solved term.
    """
    channel_index = _channel_index(data, grid)
    observed = data.vis.vis[:, :, 0].astype(grid.vis_dtype)
    if model is not None and np.any(model):
        model_vis = predict(data.vis, model, channel_index=channel_index, **grid.gridder_options())
    else:
        model_vis, terms = None, ()  # nothing to calibrate against
    corrected, tables, weights = observed, {}, data.weights
    for term in terms:
        # the solver only reads weights and flags: share them rather than with_vis's copies
        table = solve_gains(data.vis.with_vis(corrected, weight=data.vis.weight, flag=data.vis.flag), model_vis,
                            mode=term.mode, timeslice=term.timeslice,
                            refant=refant, tol=tolerance)
        if term.normalise and term.mode != "T":
            table = normalise_amplitudes(table)
        corrected = apply_gains(corrected, table, data.vis.antenna1, data.vis.antenna2, data.vis.time, inverse=True)
        unsolved = unsolved_samples(data.vis.n_channels, table, data.vis.antenna1, data.vis.antenna2, data.vis.time)
        if unsolved.any():
            weights = np.where(unsolved, 0.0, weights if weights is not None else data.vis.weight[:, :, 0])
        tables[term.name] = table
    # the model visibilities are not needed after this: subtract into them rather than a new array
    residual = corrected if model_vis is None else np.subtract(corrected, model_vis, out=model_vis)
    # weights and flags are only read by invert: share them instead of with_vis's copies
    image = invert(data.vis.with_vis(residual, weight=data.vis.weight, flag=data.vis.flag), npix_x=grid.npix_x, npix_y=grid.npix_y, weights=weights,
                   channels_out=grid.channels_out, channel_index=channel_index, **grid.gridder_options())
    return image, tables


def weight_sum(image: ImageSum) -> np.ndarray:
    """The summed imaging weights of a gridded image, per output channel."""
    return image.weight_sum


def normalised(image: ImageSum) -> np.ndarray:
    """A summed image divided by its weights: Jy/beam, [chan, y, x].

    Here rather than in the flow module, so a worker's first use of it imports nothing new.
    """
    return image.normalised()


def corrected_chunk(data: ChunkData, tables: list[GainTable]) -> np.ndarray:
    """The chunk's visibilities corrected by the given gain tables in order, [row, chan] complex."""
    corrected = data.vis.vis[:, :, 0].astype(np.complex128)
    for table in tables:
        corrected = apply_gains(corrected, table, data.vis.antenna1, data.vis.antenna2, data.vis.time, inverse=True)
    return corrected


def _channel_index(data: ChunkData, grid: ImageGrid) -> np.ndarray:
    """Output channel of each of this chunk's channels, by its place in the whole band."""
    start, stop = data.chunk.channels
    return output_channel_index(data.chunk.band_channels, grid.channels_out)[start:stop]
