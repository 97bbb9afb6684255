"""WSClean's data selection and phase shift (-interval, -channel-range, -field, -spws, -shift) against an MS.

Checked when a run is built, before anything is read or written: a selection outside the MS is one
ConfigError line naming the option, what the MS holds and what to give instead.
"""

from __future__ import annotations

from sdpflow.config.imaging import ContinuumConfig
from sdpflow.errors import ConfigError
from sdpflow.radio.ms import MSMetadata


def selected_metadata(config: ContinuumConfig, metadata: MSMetadata) -> MSMetadata:
    """The MS's metadata narrowed to the timesteps and channels asked for and moved to ``--shift``'s centre."""
    imaging, ms = config.imaging, config.ms
    if imaging.field is not None and imaging.field >= metadata.n_fields:
        raise ConfigError(f"--field {imaging.field}: {ms} has {_ids(metadata.n_fields, 'field')}")
    if imaging.field is not None and imaging.field != metadata.field_id:
        raise ConfigError(f"--field {imaging.field}: the rows of {ms} hold field {metadata.field_id} only "
                          f"(sdpflow images one field per MS): give --field {metadata.field_id}, or split the MS")
    spws = imaging.spw_ids
    if spws is not None:
        outside = [spw for spw in spws if spw >= metadata.n_spws]
        if outside:
            raise ConfigError(f"--spws {imaging.spws}: {ms} has {_ids(metadata.n_spws, 'spectral window')}")
        if metadata.spw_id not in spws:
            raise ConfigError(f"--spws {imaging.spws}: the rows of {ms} hold spectral window {metadata.spw_id} only: "
                              f"give --spws {metadata.spw_id}")
    _check_range("--interval", imaging.interval, len(metadata.times), "timesteps", ms)
    _check_range("--channel-range", imaging.channel_range, metadata.n_channels, "channels", ms)
    return metadata.select(timesteps=imaging.interval, channels=imaging.channel_range, phase_centre=imaging.shift_rad)


def _ids(count: int, what: str) -> str:
    return f"{what} 0 only" if count == 1 else f"{what}s 0..{count - 1}"


def _check_range(option: str, span: tuple[int, int] | None, count: int, what: str, ms: str | None) -> None:
    if span is not None and span[1] > count:
        raise ConfigError(f"{option} {span[0]} {span[1]}: {ms} has {count} {what} (0..{count - 1}): give an END "
                          f"of at most {count}")
