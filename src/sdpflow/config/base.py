"""The base of every configuration section, and the CLI options sections declare."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A configuration section: unknown keys are errors; values are checked on assignment; NaN and infinity
    are never a valid number (a NaN frequency or gain would run, and write nonsense)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def cli_options(model: type[BaseModel], prefix: str = "", flag_prefix: str = "--") -> dict[str, tuple[str, Any]]:
    """The command-line options a model's fields declare, as ``{flag: (key, field)}``.

    A field declares its option with ``json_schema_extra={"cli": "--niter"}``; nested
    sections are searched too, and the key is the dotted path (``deconvolution.niter``). A
    section field may declare ``cli_prefix`` (``"--T-"``) for flags its own fields give
    without dashes (``"first-selfcal"`` -> ``--T-first-selfcal``).
    """
    options: dict[str, tuple[str, Any]] = {}
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if "cli" in extra:
            flag = str(extra["cli"])
            options[flag if flag.startswith("--") else flag_prefix + flag] = (key, field)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            options.update(cli_options(annotation, prefix=f"{key}.", flag_prefix=str(extra.get("cli_prefix", "--"))))
    return options
