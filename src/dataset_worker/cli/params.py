"""Typer's option and argument conversion for plain types, without pydantic.

Typer (0.2x) converts every non-flag value with a pydantic TypeAdapter, built when the command
runs: importing pydantic and building the adapters costs about 50 ms, more than the whole of
`commp` on a small file. The CLI's values are mostly plain str, int, Path and list[str], which
this module converts as pydantic does (str as is, `-?[0-9]+` with int(), a str with Path())
and hands to Typer's own code for anything else (other types, bounds, unusual spellings, every
error), so results and error messages stay Typer's.

It fills the lazily built converter each Typer parameter keeps (`_runtime_param`); a Typer
without that attribute is simply left alone (tests/unit/test_cli_params.py notices).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, get_args, get_origin

_INTEGER = re.compile(r"-?[0-9]{1,100}")


class PlainConversion:
    """Converts the values of one parameter of a plain type; defers the rest to Typer."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._typer_conversion: Any = None

    def coerce(self, value: Any, *, param: Any, ctx: Any) -> Any:
        """The value for the command function (Typer's RuntimeParam.coerce contract)."""
        if value is None:  # not given: as Typer does
            return () if param.multiple or param.nargs == -1 else None
        converted = self._convert(value, param, ctx)
        if converted is _DEFER:
            return self._typer(param).coerce(value, param=param, ctx=ctx)
        return converted

    def _convert(self, value: Any, param: Any, ctx: Any) -> Any:
        kind = self._kind
        if kind == "str" and isinstance(value, str):
            return value
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "int" and isinstance(value, str) and _INTEGER.fullmatch(value):
            return int(value)
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "path" and isinstance(value, str | Path):
            from typer._param_types import coerce_cli_path

            # Path(value) is what pydantic makes of a str; Typer's own checks follow.
            info = param.type_descriptor.parameter_info
            return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
        if kind == "str-list" and isinstance(value, list | tuple):
            if all(isinstance(item, str) for item in value):
                return list(value)
        return _DEFER

    def _typer(self, param: Any) -> Any:
        if self._typer_conversion is None:
            from typer._coercion import build_runtime_param

            self._typer_conversion = build_runtime_param(param.type_descriptor)
        return self._typer_conversion


_DEFER = object()


def plain_kind(param: Any) -> str | None:
    """The kind of a parameter this module converts (str, bool, int, path, str-list), or None."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or descriptor.file_annotation is not None:
        return None
    info = descriptor.parameter_info
    if info.parser is not None or getattr(info, "click_type", None) is not None:
        return None
    annotation = descriptor.annotation
    multiple = bool(getattr(param, "multiple", False))
    if get_origin(annotation) is list:
        plain = multiple and param.nargs == 1 and get_args(annotation) == (str,)
        return "str-list" if plain else None
    if multiple or param.nargs != 1:
        return None
    if annotation is str or annotation is bool:
        return annotation.__name__
    if annotation is int and info.min is None and info.max is None and not info.clamp:
        return "int"
    if annotation is Path and not _path_options(info):
        return "path"
    return None


def _path_options(info: Any) -> bool:
    # Options under which Typer's Path handling does more than Path(value) and its checks.
    return bool(info.allow_dash or info.path_type is not None or info.resolve_path)


def install_on_command(command: Any) -> None:
    """Plain conversions for the command's parameters and its --help flag."""
    install(command.params)
    # Click makes the --help option when a command line is parsed: convert it once made.
    make_help_option = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None:
            install([option])
        return option

    command.get_help_option = get_help_option


def install(params: Iterable[Any]) -> None:
    """Give each plain-typed Typer parameter a converter that needs no pydantic."""
    for param in params:
        if getattr(param, "_runtime_param", "absent") is not None:
            continue  # not a Typer parameter, a Typer without the lazy converter, or built
        kind = plain_kind(param)
        if kind is not None:
            param._runtime_param = PlainConversion(kind)
