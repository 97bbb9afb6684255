"""Imaging weights: natural, uniform and Briggs, from a weight density summable across chunks.

Uniform and Briggs weighting need the density of weights on the uv grid of the whole
observation. Each chunk computes :func:`weight_density` of its own visibilities; the sum of
those arrays over all chunks is the density to pass to :func:`imaging_weights`.
"""

from __future__ import annotations

import numpy as np

from sdpflow.radio.datamodels import SPEED_OF_LIGHT, Visibility, single_plane, unflagged_weights


def output_channel_index(n_channels: int, channels_out: int) -> np.ndarray:
    """Which output channel each of ``n_channels`` input channels goes to: equal contiguous groups."""
    if not 1 <= channels_out <= n_channels:
        raise ValueError(f"channels_out={channels_out} must be between 1 and the {n_channels} channels")
    return (np.arange(n_channels) * channels_out) // n_channels


def _grid_cells(vis: Visibility, npix_x: int, npix_y: int, cell_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """uv-grid cell indices [row, chan] of each sample (u flipped so the grid matches the image)."""
    scale = vis.frequency[None, :] / SPEED_OF_LIGHT
    du = 1.0 / (npix_x * cell_rad)
    dv = 1.0 / (npix_y * cell_rad)
    iu = np.rint(vis.uvw[:, 0:1] * scale / du).astype(np.int64)
    iv = np.rint(vis.uvw[:, 1:2] * scale / dv).astype(np.int64)
    return iu, iv


def weight_density(vis: Visibility, *, npix_x: int, npix_y: int, cell_rad: float, channels_out: int = 1,
                   channel_index: np.ndarray | None = None) -> np.ndarray:
    """Sum of Stokes I weights in each uv cell: float64 [channels_out, npix_y, npix_x].

    The uv cell is 1 / (npix * cell_rad) wavelengths, the cell of the FFT grid of an
    npix_x x npix_y image of pixel size cell_rad (radians). Each sample counts at (u, v) and
    at (-u, -v). Flagged samples count zero. Arrays from different chunks of one observation
    can be summed.

    >>> import numpy as np
    >>> from sdpflow.radio.layouts import low_like_configuration
    >>> from sdpflow.radio.simulate import make_visibility
    >>> vis = make_visibility(low_like_configuration(8), phase_centre=(0.26, -0.79),  # 8 stations: 28 baselines
    ...                       times=5.0e9 + 60.0 * np.arange(4), interval=60.0,       # 4 integrations (MJD s)
    ...                       frequency=np.array([1.0e8]), channel_width=np.array([1.0e6]))  # 1 channel (Hz)
    >>> vis.vis.shape, vis.vis.dtype                                   # [row, chan, pol], Jy
    ((112, 1, 1), dtype('complex128'))
    >>> cell = np.radians(60 / 3600)                                   # 60 arcsec pixels, in radians
    >>> density = weight_density(vis, npix_x=64, npix_y=64, cell_rad=cell)
    >>> density.shape, float(density.sum())                            # 112 samples, each at (u, v) and (-u, -v)
    ((1, 64, 64), 224.0)
    """
    weight = unflagged_weights(single_plane(vis))
    channel_index = output_channel_index(vis.n_channels, channels_out) if channel_index is None else channel_index
    iu, iv = _grid_cells(vis, npix_x, npix_y, cell_rad)
    size = channels_out * npix_y * npix_x
    density = np.zeros(size)
    for sign in (1, -1):  # bincount over flat cell indices: ~10x faster than np.add.at
        cells = _flat_cells(sign * iu, sign * iv, channel_index, npix_x, npix_y)
        density += np.bincount(cells.ravel(), weights=weight.ravel(), minlength=size)
    return density.reshape(channels_out, npix_y, npix_x)


def _flat_cells(iu: np.ndarray, iv: np.ndarray, channel_index: np.ndarray, npix_x: int, npix_y: int) -> np.ndarray:
    """Flat index [row, chan] into a [channels_out, npix_y, npix_x] grid of each sample's uv cell."""
    out = np.asarray(channel_index, dtype=np.int64)[None, :]
    return (out * npix_y + iv % npix_y) * npix_x + iu % npix_x


def imaging_weights(vis: Visibility, *, density: np.ndarray | None = None, weighting: str = "briggs",
                    robust: float = 0.0, npix_x: int | None = None, npix_y: int | None = None,
                    cell_rad: float | None = None, channel_index: np.ndarray | None = None) -> np.ndarray:
    """Stokes I imaging weights [row, chan] float64 (0 where flagged).

    weighting: "natural" (the data weights), "uniform" (weight / density of its uv cell) or
    "briggs" (weight / (1 + f2 * density) with f2 = (5 * 10**-robust)**2 / (sum(D**2) / sum(D)),
    as WSClean and Briggs 1995 define it; robust -2 is near uniform, +2 near natural).
    density: the summed :func:`weight_density` of the whole observation for uniform and
    Briggs (npix_x, npix_y and cell_rad must be those it was made with).

    >>> import numpy as np
    >>> from sdpflow.radio.layouts import low_like_configuration
    >>> from sdpflow.radio.simulate import make_visibility
    >>> vis = make_visibility(low_like_configuration(8), phase_centre=(0.26, -0.79),  # 8 stations: 28 baselines
    ...                       times=5.0e9 + 60.0 * np.arange(4), interval=60.0,       # 4 integrations (MJD s)
    ...                       frequency=np.array([1.0e8]), channel_width=np.array([1.0e6]))  # 1 channel (Hz)
    >>> vis.vis.shape, vis.vis.dtype                                   # [row, chan, pol], Jy
    ((112, 1, 1), dtype('complex128'))
    >>> cell = np.radians(60 / 3600)                                   # 60 arcsec pixels, in radians
    >>> density = weight_density(vis, npix_x=64, npix_y=64, cell_rad=cell)
    >>> uniform = imaging_weights(vis, density=density, weighting="uniform", npix_x=64, npix_y=64, cell_rad=cell)
    >>> uniform.shape, uniform.dtype, float(uniform.max())             # no uv cell weighs more than 1
    ((112, 1), dtype('float64'), 0.5)
    >>> briggs = imaging_weights(vis, density=density, weighting="briggs", robust=0.0, npix_x=64, npix_y=64,
    ...                          cell_rad=cell)
    >>> bool(np.all((briggs > 0) & (briggs < 1)))
    True
    """
    weight = unflagged_weights(single_plane(vis))
    if weighting == "natural":
        return weight
    if weighting not in ("uniform", "briggs"):
        raise ValueError(f"unknown weighting {weighting!r}: choose natural, uniform or briggs")
    if density is None or npix_x is None or npix_y is None or cell_rad is None:
        raise ValueError(f"{weighting} weighting needs density, npix_x, npix_y and cell_rad")
    channels_out = density.shape[0]
    channel_index = output_channel_index(vis.n_channels, channels_out) if channel_index is None else channel_index
    iu, iv = _grid_cells(vis, npix_x, npix_y, cell_rad)
    out = np.broadcast_to(np.asarray(channel_index)[None, :], weight.shape)
    cell_density = np.take(density.ravel(), _flat_cells(iu, iv, channel_index, npix_x, npix_y))
    with np.errstate(divide="ignore", invalid="ignore"):
        if weighting == "uniform":
            result = np.where(cell_density > 0, weight / cell_density, 0.0)
        else:
            f2 = np.empty(channels_out)
            for c in range(channels_out):
                total = density[c].sum()
                f2[c] = (5.0 * 10.0 ** (-robust)) ** 2 / ((density[c] ** 2).sum() / total) if total > 0 else 0.0
            result = weight / (1.0 + f2[out] * cell_density)
    return np.where(weight > 0, result, 0.0)
