"""Command-line options generated from the configuration schema, so each is defined once.

A field that declares ``json_schema_extra={"cli": "--niter"}`` becomes a typer option of
the pipeline's ``run`` command; a value given on the command line overrides the YAML file.
"""

from __future__ import annotations

import difflib
import inspect
import re
import types
import typing
from typing import Any, Callable, Literal, Optional

import typer
from pydantic import BaseModel

from sdpflow.config import cli_options
from sdpflow.config.base import cli_aliases, set_dotted
from sdpflow.config.wsclean import wsclean_default_note

#: WSClean spells Briggs weighting as two words (``-weight briggs 0``); we accept both spellings.
TWO_WORD_OPTIONS = {"--weight": ("briggs",)}


def join_two_word_options(argv: list[str]) -> list[str]:
    """``--weight briggs 0`` -> ``--weight 'briggs 0'``, as WSClean users type it."""
    joined: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if token in TWO_WORD_OPTIONS and index + 2 < len(argv) and argv[index + 1] in TWO_WORD_OPTIONS[token]:
            joined += [token, f"{argv[index + 1]} {argv[index + 2]}"]
            index += 3
            continue
        joined.append(token)
        index += 1
    return joined


#: A WSClean-style long option with one dash (``-size``, ``-channel-range``), perhaps with ``=VALUE``.
_SINGLE_DASH_LONG = re.compile(r"-([A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*)(=.*)?")


def accept_single_dash(root: Any, argv: list[str], note: Callable[[str], None]) -> list[str]:
    """``-size 512 512`` -> ``--size 512 512`` where ``--size`` is an option of the command being called.

    root: the click command of ``sdpflow``; argv: the words after ``sdpflow``; note: called with one
    line per rewritten option (WSClean's spelling and ours). The command is followed through its
    groups (``run`` -> ``continuum``) so only options it has are rewritten; real short options
    (``-v``, ``-vv``, ``-o DIR``, ``-j 4``) are left as they are, and so is every option's value
    (``--shift 5h -30d``). A single-dash word that is neither raises InputError naming the nearest option.
    """
    from sdpflow.errors import InputError

    command, path = root, ["sdpflow"]
    words = list(argv)
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            break
        if not word.startswith("-") or word == "-":
            sub = _subcommand(command, word)
            if sub is not None:
                command, path = sub, path + [word]
            index += 1
            continue
        params = _options_by_name(command)
        match = _SINGLE_DASH_LONG.fullmatch(word)
        name = word.split("=", 1)[0]
        long_name = "-" + name
        known_long = long_name in params  # WSClean's -channel-range wins over click's -c VALUE written together
        if match and name not in params and (known_long or not _short_cluster(name, params)) \
                and not _accepts_anything(command):
            if not known_long:
                close = difflib.get_close_matches(long_name, [o for o in params if o.startswith("--")], n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise InputError(f"no such option {name} for '{' '.join(path)}'{hint} (see '{' '.join(path)} --help')")
            note(f"note: {name} is WSClean's spelling; sdpflow's is {long_name}")
            word = long_name + (match.group(2) or "")
            words[index] = word
            name = long_name
        index += 1
        param = params.get(name)
        if param is not None and "=" not in word and not (getattr(param, "is_flag", False)
                                                          or getattr(param, "count", False)):
            index += max(1, param.nargs)  # the option's values, whatever they look like
    return words


def _subcommand(command: Any, word: str) -> Any:
    """The subcommand ``word`` of a group (None for a plain command or an unknown word)."""
    if not hasattr(command, "get_command"):
        return None
    import click

    try:
        return command.get_command(click.Context(command), word)
    except Exception:  # an argument, not a command name: typer reports it
        return None


def _options_by_name(command: Any) -> dict[str, Any]:
    names = {}
    for param in getattr(command, "params", ()):
        for name in [*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ())]:
            if name.startswith("-"):
                names[name] = param
    names.setdefault("--help", None)
    names.setdefault("-h", None)
    return names


def _short_cluster(word: str, params: dict[str, Any]) -> bool:
    """``-vv`` (short flags together) or ``-oDIR`` (a short option and its value): click's own short forms."""
    first = params.get(word[:2], False)
    if first is False:
        return False
    if first is not None and not (getattr(first, "is_flag", False) or getattr(first, "count", False)):
        return True
    return all(f"-{char}" in params for char in word[1:])


def _accepts_anything(command: Any) -> bool:
    return bool(getattr(command, "context_settings", {}).get("ignore_unknown_options"))
#: Options whose value may be left out, and the value a bare one means (``runs show RUN --json``: standard output).
OPTIONAL_VALUES = {"--json": "-"}


def fill_optional_values(argv: list[str]) -> list[str]:
    """``runs list --json`` -> ``runs list --json -``: a bare option of :data:`OPTIONAL_VALUES` (last, or
    followed by another option) gets its implied value; ``--json FILE`` is left as it is."""
    filled: list[str] = []
    for index, token in enumerate(argv):
        filled.append(token)
        following = argv[index + 1] if index + 1 < len(argv) else None
        if token in OPTIONAL_VALUES and (following is None or (following.startswith("-") and following != "-")):
            filled.append(OPTIONAL_VALUES[token])
    return filled


def _option_type(annotation: Any) -> Any:
    """The type typer should parse: Optional unwrapped, Literal as str."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _option_type(inner[0])
    if origin is Literal:
        return str
    if origin is list:
        return list[typing.get_args(annotation)[0]]
    return annotation


def model_options(model: type[BaseModel]) -> list[tuple[str, str, inspect.Parameter]]:
    """(flag, dotted key, parameter) for every option the model declares.

    Each option's help ends with its default and, where it differs, WSClean's
    (:data:`sdpflow.config.wsclean.WSCLEAN_DEFAULTS`).
    """
    from sdpflow.config import default_values

    defaults = default_values(model)
    result = []
    for flag, (key, field) in cli_options(model).items():
        kind = _option_type(field.annotation)
        name = "opt_" + key.replace(".", "__")
        shown = _shown(_dotted(defaults, key))
        help_text = (field.description or "") + f" (default: {shown}{wsclean_default_note(flag)})"
        if kind is bool:
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            declaration = typer.Option(f"{flag}/{extra.get('cli_off', '--no-' + flag[2:])}", help=help_text,
                                       show_default=False)
        else:
            declaration = typer.Option(flag, *cli_aliases(field), help=help_text, show_default=False)
        parameter = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                      annotation=typing.Annotated[Optional[kind], declaration])
        result.append((flag, key, parameter))
    return result


def _dotted(values: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        values = values.get(part) if isinstance(values, dict) else None
    return values


def _shown(value: Any) -> str:
    """A default as a user would type it: ``512 512``, ``on``/``off``, ``none``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(_shown(item) for item in value) or "none"
    return str(value)


def with_model_options(model: type[BaseModel], function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``function(ctx, values, **own)`` so typer also offers every option of ``model``.

    ``values`` is the nested dict of the options the user gave, ready for ``load_config``.
    """
    generated = model_options(model)
    own = inspect.signature(function, eval_str=True)
    own_parameters = [p for p in own.parameters.values() if p.name != "values"]
    keys = {parameter.name: key for _, key, parameter in generated}

    def command(**kwargs: Any) -> Any:
        values: dict[str, Any] = {}
        for name, key in keys.items():
            value = kwargs.pop(name, None)
            if value is None:
                continue
            set_dotted(values, key, value)
        return function(values=values, **kwargs)

    command.__signature__ = inspect.Signature(own_parameters + [p for _, _, p in generated])
    command.__doc__ = function.__doc__
    command.__name__ = function.__name__
    return command
