"""``summary.json`` of an imaging run: one typed record, written and read here only.

The restore stage writes it; the CLI's headline, the report, the demo's assessment and the
benchmarks read it through :func:`read_summary`. Non-finite figures (a dynamic range with
zero noise) are written as null, so every JSON parser reads the file.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from sdpflow.errors import DataError

SUMMARY_NAME = "summary.json"


class Beam(BaseModel):
    """A restoring beam: FWHM major and minor axes (arcsec) and position angle (deg, east of north)."""

    bmaj_arcsec: float
    bmin_arcsec: float
    bpa_deg: float


class ImageShape(BaseModel):
    size: list[int]  # [x, y] pixels
    cell_arcsec: float
    channels_out: int


class MajorCycle(BaseModel):
    """One major cycle's minor-cycle metrics (Jy/beam for residuals, Jy for model flux)."""

    model_config = ConfigDict(extra="allow")

    cycle: int
    peak_residual_jy: float | None = None
    rms_residual_jy: float | None = None
    sigma_mad_jy: float | None = None
    components: int = 0
    components_total: int = 0
    stop_reason: str | None = None
    converged: bool = False
    calibrated_terms: list[str] = []
    skipped: str | None = None  # "converged" when the cycle carried the model on without cleaning
    elapsed_s: float | None = None


class ImagingSummary(BaseModel):
    """What an imaging run measured (all fluxes Jy/beam unless named otherwise)."""

    pipeline: str
    ms: str
    image: ImageShape
    chunks: int
    non_finite_flagged: int = 0  # samples flagged at read for a NaN or infinite visibility, weight or UVW
    cycles: list[MajorCycle]
    major_cycles_run: int
    stop_reason: str | None
    restoring_beam: Beam
    peak_jy_per_beam: float | None
    noise_jy_per_beam: float | None
    rms_residual_jy_per_beam: float | None
    dynamic_range: float | None
    #: robust noise (σ from the MAD, Jy/beam) of each imaged Stokes parameter's residual over all its channels
    stokes_noise_jy_per_beam: dict[str, float | None] = {}
    #: the same per output channel: Stokes parameter -> [chan_out]
    channel_noise_jy_per_beam: dict[str, list[float | None]] = {}
    #: the restoring beam of each output channel (fitted to that channel's PSF), [chan_out]
    channel_beams: list[Beam] = []
    #: centre frequency (Hz) of each output channel, [chan_out]
    channel_frequencies_hz: list[float] = []
    stage_seconds: dict[str, float | None] = {}


def write_summary(path: str | Path, summary: ImagingSummary) -> None:
    """Write ``summary`` as strict JSON (non-finite numbers as null)."""
    from sdpflow.pipelines.imaging.products import strict_json

    Path(path).write_text(strict_json(summary.model_dump(mode="python"), indent=2))


def read_summary(path: str | Path) -> ImagingSummary:
    """The summary of the imaging run folder (or summary file) ``path``."""
    path = Path(path)
    if path.is_dir():
        path = path / SUMMARY_NAME
    try:
        return ImagingSummary.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: the imaging run has not written its summary yet") from None
    except ValueError as error:
        raise DataError(f"{path} is not an imaging summary sdpflow can read: {str(error).splitlines()[0]}") from None


def format_noise(summary: ImagingSummary) -> str:
    """Per-Stokes noise as one line, e.g. "I 1.2e-03, Q 9.8e-04 Jy/beam" ("" when the summary has none)."""
    if not summary.stokes_noise_jy_per_beam:
        return ""
    parts = [f"{name} {format_figure(value, '.3g')}" for name, value in summary.stokes_noise_jy_per_beam.items()]
    return ", ".join(parts) + " Jy/beam"


def format_channel_beams(summary: ImagingSummary, most: int = 8) -> str:
    """Per-channel restoring beams as one line: bmaj×bmin (arcsec) at each frequency (MHz); the first
    and the last only when there are more than ``most`` channels."""
    beams = [f"{beam.bmaj_arcsec:.1f}″×{beam.bmin_arcsec:.1f}″ at {frequency / 1e6:.1f} MHz"
             for beam, frequency in zip(summary.channel_beams, summary.channel_frequencies_hz)]
    return ", ".join(beams) if len(beams) <= most else f"{beams[0]} … {beams[-1]} ({len(beams)} channels)"


def format_figure(value: float | None, spec: str) -> str:
    """A summary figure formatted with ``spec``, or "n/a" where the summary holds null (non-finite)."""
    return "n/a" if value is None else format(value, spec)
