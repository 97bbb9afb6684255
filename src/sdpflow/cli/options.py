"""Command-line options generated from the configuration schema, so each is defined once.

A field that declares ``json_schema_extra={"cli": "--niter"}`` becomes a typer option of
the pipeline's ``run`` command; a value given on the command line overrides the YAML file.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Callable, Literal, Optional

import typer
from pydantic import BaseModel

from sdpflow.config import cli_options
from sdpflow.config.base import set_dotted

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
    """(flag, dotted key, parameter) for every option the model declares."""
    result = []
    for flag, (key, field) in cli_options(model).items():
        kind = _option_type(field.annotation)
        name = "opt_" + key.replace(".", "__")
        help_text = field.description or ""
        if kind is bool:
            declaration = typer.Option(f"{flag}/--no-{flag[2:]}", help=help_text, show_default=False)
        else:
            declaration = typer.Option(flag, help=help_text, show_default=False)
        parameter = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                      annotation=typing.Annotated[Optional[kind], declaration])
        result.append((flag, key, parameter))
    return result


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
