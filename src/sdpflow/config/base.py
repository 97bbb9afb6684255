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
            options[flag if flag.startswith("-") else flag_prefix + flag] = (key, field)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            options.update(cli_options(annotation, prefix=f"{key}.", flag_prefix=str(extra.get("cli_prefix", "--"))))
    return options


def cli_aliases(field: Any) -> tuple[str, ...]:
    """Other flags of a field's option (``json_schema_extra={"cli_aliases": ["--nmajor"]}``), e.g. an older name."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return tuple(extra.get("cli_aliases", ()))


def keyword_values(model: type[BaseModel], options: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """Python keyword options as the nested values :func:`sdpflow.config.load_config` takes.

    A keyword is a top-level field of ``model`` (``ms="obs.ms"``; a section as a dict or a model,
    ``imaging={"size": [64, 64]}``), or an option's flag in Python spelling (``niter`` for
    ``--niter``, ``T_first_selfcal`` for ``--T-first-selfcal``), so the keywords are the flags the
    pipeline's ``sdpflow run`` command has. Anything else is a :class:`ConfigError` naming it.
    """
    from sdpflow.errors import ConfigError

    flags = cli_options(model)
    flags.update({alias: entry for entry in list(flags.values()) for alias in cli_aliases(entry[1])})
    values: dict[str, Any] = {}
    for keyword, value in options.items():
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_unset=True)
        if keyword in model.model_fields:
            key = keyword
        elif "--" + keyword.replace("_", "-") in flags:
            key = flags["--" + keyword.replace("_", "-")][0]
        elif "-" + keyword in flags:  # a short flag: j for -j
            key = flags["-" + keyword][0]
        else:
            hint = f": see `sdpflow config show {name}` for the valid keys" if name else ""
            raise ConfigError(f"{keyword!r} is not an option of {name or model.__name__}{hint} "
                              "(a field, or a flag of `sdpflow run` with _ for -)")
        set_dotted(values, key, value)
    return values


def set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    """Set ``values["a"]["b"] = value`` for the key ``"a.b"`` (sections made as needed; a tuple as a list)."""
    node = values
    *sections, last = key.split(".")
    for section in sections:
        node = node.setdefault(section, {})
    node[last] = list(value) if isinstance(value, tuple) else value


def command_arguments(config: BaseModel, *, leave_out: tuple[str, ...] = ("cluster",)) -> list[str]:
    """The options of ``sdpflow run`` that give ``config``: every value that differs from its default.

    A field with a flag is given as the flag (``--size 512 512``, ``--no-wstacking``), one
    without as ``--set key=value`` (JSON, which --set reads as YAML). Sections named in
    ``leave_out`` are left out (the cluster says where a run ran, not what it made).
    """
    import json

    default = type(config)().model_dump(mode="json")
    given = config.model_dump(mode="json")
    options = {key: (flag, field) for flag, (key, field) in cli_options(type(config)).items()}
    arguments: list[str] = []
    for key, value in _leaves(given):
        if key.split(".")[0] in leave_out or _value_at(default, key) == value:
            continue
        flag, field = options.get(key, (None, None))
        if flag is None or value is None:
            arguments.append(f"--set={key}={json.dumps(value)}")
        elif isinstance(value, bool):
            arguments.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, list) and _comma_list(field):
            arguments += [flag, ",".join(str(item) for item in value)]  # --multiscale-scales 0,4,16
        elif isinstance(value, list):
            arguments += [flag, *(str(item) for item in value)]
        else:
            arguments += [flag, str(value)]
    return arguments


def _comma_list(field: Any) -> bool:
    """Whether a list field's option takes its items as one comma-separated word (its type is ``str | list``)."""
    import types
    import typing

    annotation = field.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return str in typing.get_args(annotation)
    return False


def _leaves(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    leaves = []
    for name, value in values.items():
        if isinstance(value, dict):
            leaves += _leaves(value, f"{prefix}{name}.")
        else:
            leaves.append((f"{prefix}{name}", value))
    return leaves


def _value_at(values: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(values, dict) or part not in values:
            return None
        values = values[part]
    return values
