"""The one configuration schema: pydantic models, a module per section, and their loader.

Each pipeline's top-level model is named by its :class:`sdpflow.pipelines.Pipeline` (this
layer knows no pipelines). A configuration comes from a YAML file plus ``key=value``
overrides (``imaging.niter=500``), validated before any work starts; an unknown key or a wrong
type is a :class:`ConfigError` naming the key and the file. The CLI reuses these models for
its options (see :func:`cli_options`), so an option is defined once, here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ValidationError

from sdpflow.config.base import Section, cli_options
from sdpflow.config.cluster import ClusterConfig
from sdpflow.errors import ConfigError

__all__ = [
    "ClusterConfig",
    "Section",
    "cli_options",
    "default_values",
    "defaults_yaml",
    "load_config",
    "parse_overrides",
]


def default_values(model: type[BaseModel]) -> dict[str, Any]:
    """The defaults of a configuration model as plain (JSON) values; a key without a default is None."""
    try:
        return model().model_dump(mode="json")
    except ValidationError:
        defaults = model.model_construct().model_dump(mode="json", warnings=False)
        return {name: defaults.get(name) for name in model.model_fields}


def defaults_yaml(model: type[BaseModel]) -> str:
    """The defaults of a configuration model, as YAML a user can copy and edit.

    A key without a default (one the user must give) is shown as ``null``. Each key is preceded
    by its description as a YAML comment.
    """
    return "".join(_commented_yaml(model, default_values(model), indent=0))


def _commented_yaml(model: type[BaseModel], data: dict[str, Any], indent: int) -> list[str]:
    """Lines of YAML for ``data`` (a dump of ``model``), each key after its field's description as ``# ...``."""
    import textwrap

    lines: list[str] = []
    pad = " " * indent
    for name, value in data.items():
        field = model.model_fields.get(name)
        annotation = field.annotation if field is not None else None
        description = (field.description or "") if field is not None else ""
        if not description and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            description = (annotation.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        if description:
            lines += [f"{pad}# {line}\n" for line in textwrap.wrap(description, width=max(40, 100 - indent))]
        if isinstance(value, dict) and value and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.append(f"{pad}{name}:\n")
            lines += _commented_yaml(annotation, value, indent + 2)
            continue
        flow = None if isinstance(value, list) else False  # a list of numbers on one line: size: [512, 512]
        dumped = yaml.safe_dump({name: value}, sort_keys=False, default_flow_style=flow, width=1000)
        lines += [pad + line + "\n" for line in dumped.splitlines()]
    return lines


def parse_overrides(overrides: Iterable[str], source: str = "--set") -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[1, 2]"]`` into a nested dict; values are parsed as YAML."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{source}: {item!r} is not key=value (e.g. imaging.niter=500)")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: {key!r} sets inside a value that is not a section")
        node[parts[-1]] = value
    return nested


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``update``, sections merged key by key."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    model: type[BaseModel],
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    values: dict[str, Any] | None = None,
    section: str | None = None,
    name: str | None = None,
) -> BaseModel:
    """Validate a configuration of ``model`` from a YAML file, explicit values and overrides.

    Precedence, lowest first: defaults, the YAML file, ``values`` (from CLI options),
    ``overrides`` (``--set key=value``). With ``section`` (e.g. ``"cluster"``) the model is
    that one section, read from the file's key of that name when it has one. ``name`` (a
    pipeline's, as the user gave it) turns an error's hint into ``sdpflow config show NAME``.
    """
    data: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        path = Path(path)
        source = str(path)
        data = _read_yaml(path)
        if section is not None and isinstance(data.get(section), dict):
            data = data[section]
    if values:
        data = deep_merge(data, values)
    data = deep_merge(data, parse_overrides(overrides))
    try:
        return model.model_validate(data)
    except ValidationError as error:
        hint = f"; see `sdpflow config show {name}` for the valid keys" if name else ""
        raise ConfigError(_describe(error, source, prefix=f"{section}." if section else "") + hint) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: give the path of a YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}: fix the syntax") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} cannot be read: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not a {type(data).__name__}")
    return data


def _describe(error: ValidationError, source: str, prefix: str = "") -> str:
    """One line for the first problem (and a count of the others)."""
    problems = error.errors()
    first = problems[0]
    key = prefix + ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        what = "unknown key"
    else:
        what = f"{first['msg']} (got {first.get('input')!r})"
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    return f"{source}: key '{key}': {what}{more}"
