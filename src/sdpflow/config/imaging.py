"""Imaging, deconvolution, calibration and partitioning: the sections of continuum and ICAL.

Option names follow WSClean where WSClean has them (``--size``, ``--scale``, ``--niter``,
``--mgain``, ``--auto-threshold``, ``--weight``, ``--channels-out``, ``--data-column``...).
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from sdpflow.config.base import Section
from sdpflow.config.cluster import ClusterConfig

_ANGLE_UNITS_RAD = {
    "asec": math.pi / 180 / 3600, "arcsec": math.pi / 180 / 3600,
    "amin": math.pi / 180 / 60, "arcmin": math.pi / 180 / 60,
    "deg": math.pi / 180, "rad": 1.0, "mas": math.pi / 180 / 3600e3,
}


def angle_to_rad(text: str) -> float:
    """``'20asec'``, ``'1.5amin'``, ``'0.01deg'`` -> radians (a bare number is degrees, as in WSClean)."""
    match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([a-z]*)\s*", str(text))
    if not match:
        raise ValueError(f"{text!r} is not an angle like 20asec, 1amin or 0.01deg")
    value, unit = float(match.group(1)), match.group(2) or "deg"
    if unit not in _ANGLE_UNITS_RAD:
        raise ValueError(f"unknown angle unit {unit!r}: use asec, amin, deg or rad")
    return value * _ANGLE_UNITS_RAD[unit]


class ImagingConfig(Section):
    """How visibilities become images (ducc0 w-gridder)."""

    size: tuple[int, int] = Field((512, 512), description="image width and height in pixels (even)",
                                  json_schema_extra={"cli": "--size"})
    scale: str = Field("auto", description="pixel size, e.g. 20asec, 1amin, 0.01deg; auto = a third of the "
                       "finest fringe (1/(3 uv_max))", json_schema_extra={"cli": "--scale"})
    weight: str = Field("briggs 0", description="natural, uniform, or briggs ROBUST",
                        json_schema_extra={"cli": "--weight"})
    channels_out: int = Field(1, ge=1, description="output channels (1 = multi-frequency synthesis)",
                              json_schema_extra={"cli": "--channels-out"})
    pol: str = Field("I", description="polarisations to image, as WSClean's -pol: I, IQUV, IQU, QU, V, or "
                     "correlations xx,yy / rr,ll / xx,xy,yx,yy (Stokes I is always imaged too: self-calibration "
                     "and restored.fits use it); each gets restored-S.fits, residual-S.fits... cubes",
                     json_schema_extra={"cli": "--pol"})
    name: str | None = Field(
        None, description="also write each image under WSClean's file names in the run folder, one plane per file: "
        "NAME-0003-Q-image.fits, NAME-MFS-I-residual.fits... (as WSClean's -name)", json_schema_extra={"cli": "--name"})
    data_column: Literal["DATA", "CORRECTED_DATA", "MODEL_DATA"] = Field(
        "DATA", description="MS column to image", json_schema_extra={"cli": "--data-column"})
    epsilon: float = Field(1e-4, gt=0, lt=0.1, description="gridder accuracy (relative); 1e-4 as WSClean's wgridder",
                           json_schema_extra={"cli": "--epsilon"})
    precision: Literal["single", "double"] = Field(
        "single", description="gridding in complex64/float32 (single, ~30% faster) or complex128/float64 "
        "(double); an epsilon below 1e-5 always grids in double", json_schema_extra={"cli": "--precision"})
    wstacking: bool = Field(True, description="correct the w term", json_schema_extra={"cli": "--wstacking"})
    small_inversion: bool = Field(
        True, description="grid on the smallest image that Nyquist-samples the longest baseline and "
        "Fourier-interpolate to the requested size (WSClean's default; --no-small-inversion turns it off)",
        json_schema_extra={"cli": "--small-inversion"})
    threads_per_task: int = Field(1, ge=1, description="ducc0 threads in each gridding task")

    @field_validator("size")
    @classmethod
    def _even_sizes(cls, size: tuple[int, int]) -> tuple[int, int]:
        if any(side % 2 or side < 32 for side in size):
            raise ValueError(f"image size {size[0]} {size[1]}: both sides must be even and at least 32")
        return size

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str | None) -> str | None:
        if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name):
            raise ValueError(f"name {name!r}: a file-name prefix of letters, digits and . _ + - (the files go into "
                             "the run folder; choose the folder with --out)")
        return name

    @field_validator("pol")
    @classmethod
    def _valid_pol(cls, pol: str) -> str:
        from sdpflow.radio.stokes import parse_pol  # numpy only: no radio science at import

        parse_pol(pol)  # ValueError: neither Stokes parameters nor correlations
        return pol

    @property
    def stokes(self) -> tuple[str, ...]:
        """The Stokes parameters (or correlations) asked for, e.g. ("Q", "U") or ("XX", "YY")."""
        from sdpflow.radio.stokes import parse_pol

        return parse_pol(self.pol)

    @property
    def stokes_planes(self) -> tuple[str, ...]:
        """What the chunks hold and grid: Stokes I first (the PSF, weighting and self-calibration use it), then
        the others asked for (I, Q, U, V order; correlations as asked)."""
        return ("I",) + tuple(name for name in self.stokes if name != "I")

    @field_validator("scale")
    @classmethod
    def _valid_scale(cls, scale: str) -> str:
        if scale != "auto" and not 0 < angle_to_rad(scale) < float("inf"):
            raise ValueError(f"pixel size {scale!r} must be positive and finite, e.g. 20asec")
        return scale

    @field_validator("weight")
    @classmethod
    def _valid_weight(cls, weight: str) -> str:
        parts = weight.split()
        if parts and parts[0] in ("natural", "uniform") and len(parts) == 1:
            return weight
        if len(parts) == 2 and parts[0] == "briggs":
            float(parts[1])
            return weight
        raise ValueError(f"weight {weight!r}: use natural, uniform or 'briggs ROBUST' (e.g. briggs 0)")

    @property
    def weighting(self) -> str:
        return self.weight.split()[0]

    @property
    def robust(self) -> float:
        parts = self.weight.split()
        return float(parts[1]) if len(parts) == 2 else 0.0


class DeconvolutionConfig(Section):
    """The minor cycle (Hogbom or multi-scale CLEAN) and when the major cycles stop."""

    niter: int = Field(1000, ge=0, description="maximum CLEAN components of each image cleaned on its own (each "
                       "Stokes parameter and output channel unless joined), over all major cycles, as WSClean counts",
                       json_schema_extra={"cli": "--niter"})
    gain: float = Field(0.1, gt=0, le=1, description="loop gain", json_schema_extra={"cli": "--gain"})
    mgain: float = Field(0.8, gt=0, le=1, description="major-cycle gain: a minor cycle cleans the peak down by "
                         "this fraction", json_schema_extra={"cli": "--mgain"})
    threshold: float = Field(0.0, ge=0, description="stop at this peak residual (Jy/beam)",
                             json_schema_extra={"cli": "--threshold"})
    auto_threshold: float | None = Field(3.0, gt=0, description="stop at this many sigma of the residual "
                                         "(sigma from the MAD)", json_schema_extra={"cli": "--auto-threshold"})
    multiscale: bool = Field(False, description="multi-scale CLEAN instead of Hogbom",
                             json_schema_extra={"cli": "--multiscale"})
    scales: list[int] | None = Field(None, description="multi-scale scales in pixels (default 0, 4, 8, 16...)")
    nmajor: int = Field(5, ge=1, le=100, description="maximum major cycles", json_schema_extra={"cli": "--nmajor"})
    join_polarizations: bool = Field(
        False, description="with --pol: clean the Stokes parameters asked for together (peaks of the root sum of "
        "their squares, components at the same pixels in each), per channel, as WSClean's -join-polarizations; "
        "Hogbom only", json_schema_extra={"cli": "--join-polarizations"})
    join_channels: bool = Field(
        False, description="clean the output channels together: peaks of their mean (with --join-polarizations, "
        "of the root sum of the squares of each Stokes parameter's mean), components at the same pixels in each "
        "channel, as WSClean's -join-channels; Hogbom only", json_schema_extra={"cli": "--join-channels"})
    fit_spectral_pol: int | None = Field(
        None, ge=1, description="with --join-channels: each component's values across the output channels are "
        "replaced by the polynomial in frequency of this many terms fitted to them (weighted by the channels' "
        "imaging weights), as WSClean's -fit-spectral-pol", json_schema_extra={"cli": "--fit-spectral-pol"})

    @model_validator(mode="after")
    def _joined_hogbom(self) -> "DeconvolutionConfig":
        if self.fit_spectral_pol is not None and not self.join_channels:
            raise ValueError("--fit-spectral-pol fits each component across the joined channels: add --join-channels")
        if (self.join_polarizations or self.join_channels) and self.multiscale:
            raise ValueError("joined cleaning is Hogbom only: drop --multiscale, or --join-polarizations and "
                             "--join-channels")
        return self


class TermConfig(Section):
    """One calibration term of the context (T, G or B)."""

    first_selfcal: int = Field(1, ge=0, description="first major cycle whose model calibrates this term",
                               json_schema_extra={"cli": "first-selfcal"})
    phase_only: bool = Field(False, description="solve phases only", json_schema_extra={"cli": "phase-only"})
    timeslice: float | None = Field(None, gt=0, description="solution interval in seconds (none = each integration)",
                                    json_schema_extra={"cli": "timeslice"})


class CalibrationConfig(Section):
    """Self-calibration: which terms, from which cycle, over which interval."""

    context: str = Field("TG", description="terms solved in order: T (phase), G (complex), B (bandpass)",
                         json_schema_extra={"cli": "--calibration-context"})
    T: TermConfig = Field(TermConfig(first_selfcal=1, phase_only=True), json_schema_extra={"cli_prefix": "--T-"})
    G: TermConfig = Field(TermConfig(first_selfcal=3), json_schema_extra={"cli_prefix": "--G-"})
    B: TermConfig = Field(TermConfig(first_selfcal=4), json_schema_extra={"cli_prefix": "--B-"})
    normalise_amplitudes: bool = Field(True, description="hold the mean gain amplitude of G and B at 1, keeping "
                                       "the flux scale (CASA's solnorm)", json_schema_extra={"cli": "--normalise-amplitudes"})
    refant: int = Field(0, ge=0, description="reference antenna (its phase is zero)", json_schema_extra={"cli": "--refant"})
    tolerance: float = Field(1e-6, gt=0, description="gain solver convergence tolerance")
    write_corrected: bool = Field(False, description="write CORRECTED_DATA back to the MS at the end",
                                  json_schema_extra={"cli": "--write-corrected"})

    @field_validator("context")
    @classmethod
    def _valid_context(cls, context: str) -> str:
        if not context or any(term not in "TGB" for term in context) or len(set(context)) != len(context):
            raise ValueError(f"calibration context {context!r}: use letters T, G, B, each at most once (e.g. TG)")
        return context


class PartitionConfig(Section):
    """How visibilities are split into chunks that workers read and keep."""

    time_chunks: int = Field(4, ge=1, description="chunks along time (aligned to solution intervals)",
                             json_schema_extra={"cli": "--time-chunks"})
    frequency_chunks: int = Field(1, ge=1, description="chunks along frequency (continuum only)",
                                  json_schema_extra={"cli": "--frequency-chunks"})


class ContinuumConfig(Section):
    """Cotton-Schwab imaging: major cycles on the cluster, minor cycles on one worker."""

    ms: str | None = Field(None, description="input MeasurementSet", json_schema_extra={"cli": "--ms"})
    imaging: ImagingConfig = ImagingConfig()
    deconvolution: DeconvolutionConfig = DeconvolutionConfig()
    partition: PartitionConfig = PartitionConfig()
    cluster: ClusterConfig = ClusterConfig()

    @model_validator(mode="after")
    def _enough_channels(self) -> "ContinuumConfig":
        terms = self.deconvolution.fit_spectral_pol
        if terms is not None and terms > self.imaging.channels_out:
            raise ValueError(f"--fit-spectral-pol {terms} needs at least {terms} output channels "
                             f"(--channels-out is {self.imaging.channels_out})")
        return self


class IcalConfig(ContinuumConfig):
    """ICAL: continuum imaging with self-calibration between major cycles."""

    calibration: CalibrationConfig = CalibrationConfig()

    @model_validator(mode="after")
    def _time_only_partition(self) -> "IcalConfig":
        if self.partition.frequency_chunks != 1 and set(self.calibration.context) & {"T", "G"}:
            raise ValueError("partition.frequency_chunks must be 1 when T or G gains are solved over all channels")
        return self
