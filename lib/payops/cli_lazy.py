"""Command families that ``payops`` loads only when one of their commands runs.

Contract: ``payops --help`` (and ``payops`` alone) imports no family module — the root listing is drawn
from the static registry (:class:`Family`: module, attribute, one-line help). ``payops recon …`` imports
``payops.reconcile.cli`` and nothing of the other families. A family, once loaded, is exactly what
``app.add_typer(family_app, name=NAME)`` would have mounted: the same Click group, options, help texts,
exit codes — so loading lazily changes when the code is imported, nothing else.

How it works: the root Typer is created with ``cls=lazy_group_class(FAMILIES)``. The group's
``list_commands`` appends the registry's names (in registry order) to the eagerly defined commands;
``get_command`` imports ``Family.module``, converts ``Family.attr`` (a ``typer.Typer``) the way
``add_typer`` does and caches it — except while the group formats its own help, where a stand-in carrying
the registry's help line is enough. A test holds every registry line to the loaded family's own help, so
the listing cannot drift from the real commands.

Plain values without pydantic: Typer (0.2x) coerces every non-flag value through a pydantic
``TypeAdapter`` built on first use — importing pydantic and building adapters costs a quick command
more than its own work. :func:`plain_coercion` gives the ``str``, ``int`` and ``Path`` parameters of the
command about to run a coercion that answers the ordinary cases itself (a UTF-8 string; a plain decimal
integer; a path, checked by Typer's own ``coerce_cli_path`` as its adapter would) and hands
anything else to Typer's own adapter, so values, checks and error messages stay Typer's. With a Typer
without that machinery it does nothing.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup

try:
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover — typer before it vendored Click
    from click.exceptions import UsageError  # type: ignore[no-redef]

__all__ = ["Family", "LazyGroup", "lazy_group_class", "load_family", "plain_coercion"]


@dataclass(frozen=True)
class Family:
    """One ``payops NAME …`` command group: ``module.attr`` is its ``typer.Typer``; ``help`` the line
    ``payops --help`` shows for it (must equal the Typer's own help — a test checks)."""

    module: str
    attr: str
    help: str


def load_family(name: str, family: Family, *, rich_markup_mode: Any, suggest_commands: bool,
                pretty_exceptions_short: bool = True) -> typer.core.TyperGroup:
    """Import the family and build its Click group exactly as ``app.add_typer(family_app, name=name)`` would."""
    family_app = getattr(importlib.import_module(family.module), family.attr)
    holder = typer.Typer()
    holder.add_typer(family_app, name=name)
    return typer.main.get_group_from_info(
        holder.registered_groups[0], pretty_exceptions_short=pretty_exceptions_short,
        rich_markup_mode=rich_markup_mode, suggest_commands=suggest_commands)


# --- plain values without pydantic (see the module docstring) ----------------------------------------------
try:
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer._param_types import coerce_cli_path, lenient_issubclass, routes_to_path
except ImportError:  # pragma: no cover — a Typer without pydantic coercion: nothing to speed up
    RuntimeParam = None  # type: ignore[assignment,misc]

_PLAIN_INT = re.compile(r"0|[1-9][0-9]{0,17}")  # what int() and pydantic read alike


def _utf8(value: object) -> bool:
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")  # lone surrogates (undecodable argv bytes): pydantic's to judge
    except UnicodeEncodeError:
        return False
    return True


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class _PlainParam(RuntimeParam):  # type: ignore[misc,valid-type]
        """Typer's coercion of one parameter: built only for a value that needs it (Typer builds it even for an
        absent one), the ordinary ``str``/``int``/``Path`` values answered here."""

        kind: str  # str · int · path · other (always Typer's own)
        path_type: Any = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.kind == "str" and _utf8(value):
                return value
            if self.kind == "int":
                if type(value) is int:
                    return value
                if isinstance(value, str) and _PLAIN_INT.fullmatch(value):
                    return int(value)
            if self.kind == "path" and _utf8(value) and value:
                # Typer's checks (exists, file/dir, readable…) and messages on the value as typed; then the
                # path type, as its adapter would have made it (pydantic: path_type(value))
                return self.path_type(coerce_cli_path(value, self.parameter_info, path_type=None, param=param,
                                                      ctx=ctx))
            # anything else: Typer's own (pydantic) coercion, its result and its error message
            return build_runtime_param(param.type_descriptor)._coerce_value(value, param=param, ctx=ctx)

    def _plain(param: Any) -> Any:
        desc = getattr(param, "type_descriptor", None)
        if desc is None or getattr(param, "_runtime_param", "unset") is not None:
            return None
        info, ann = desc.parameter_info, desc.annotation
        if (desc.file_annotation is not None or info.parser is not None
                or getattr(info, "click_type", None) is not None or desc.is_choice):
            return _PlainParam(info, ann, "other")
        if ann is str:
            return _PlainParam(info, ann, "str")
        if ann is int and info.min is None and info.max is None and not info.clamp:
            return _PlainParam(info, ann, "int")
        if lenient_issubclass(ann, Path) and routes_to_path(ann, info) and not info.allow_dash:
            path_type = info.path_type or ann
            if lenient_issubclass(path_type, Path):
                return _PlainParam(info, ann, "path", path_type)
        return _PlainParam(info, ann, "other")


def _install(param: Any) -> Any:
    plain = _plain(param) if param is not None else None
    if plain is not None:
        param._runtime_param = plain
    return param


def _help_option_plain(get_help_option: Any) -> Any:
    """``get_help_option`` whose option (Click makes it on first use, from the context) gets the plain coercion."""
    def wrapped(ctx: Any) -> Any:
        return _install(get_help_option(ctx))

    wrapped.plain = True  # type: ignore[attr-defined]
    return wrapped


def plain_coercion(command: Any, *, subcommands: bool = True) -> None:
    """Give ``command``'s parameters (and its subcommands', for a group) the pydantic-free coercion."""
    if RuntimeParam is None:
        return
    for param in getattr(command, "params", ()):
        _install(param)
    help_option = getattr(command, "get_help_option", None)
    if help_option is not None and not getattr(help_option, "plain", False):
        command.get_help_option = _help_option_plain(help_option)
    for sub in (getattr(command, "commands", None) or {}).values() if subcommands else ():
        plain_coercion(sub)


class LazyGroup(TyperGroup):
    """A Typer group whose registered families are imported on first use (see the module docstring)."""

    families: ClassVar[Mapping[str, Family]] = {}
    _formatting_help = False

    def list_commands(self, ctx: Any) -> list[str]:
        eager = super().list_commands(ctx)
        return eager + [name for name in self.families if name not in self.commands]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands or cmd_name not in self.families:
            return super().get_command(ctx, cmd_name)
        family = self.families[cmd_name]
        if self._formatting_help:  # the root listing: the registry's line is all it shows
            return TyperGroup(name=cmd_name, help=family.help)
        group = load_family(cmd_name, family, rich_markup_mode=self.rich_markup_mode,
                            suggest_commands=self.suggest_commands)
        self.commands[cmd_name] = group
        return group

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._formatting_help = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._formatting_help = False

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        plain_coercion(self, subcommands=False)  # the root's own options (--help, --install-completion…)
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            name, cmd, rest = super().resolve_command(ctx, args)
        except UsageError as exc:
            # Typer suggests from the loaded commands only: suggest from every name, as when all were mounted
            if self.suggest_commands and args:
                matches = get_close_matches(args[0], self.list_commands(ctx))
                if matches:
                    base = exc.message.split(". Did you mean ")[0].rstrip(".")
                    exc.message = f"{base}. Did you mean {', '.join(repr(m) for m in matches)}?"
            raise
        if cmd is not None:
            plain_coercion(cmd)
        return name, cmd, rest


def lazy_group_class(families: Mapping[str, Family]) -> type[LazyGroup]:
    """A :class:`LazyGroup` subclass bound to ``families`` (pass it to ``typer.Typer(cls=…)``)."""
    return type("PayopsGroup", (LazyGroup,), {"families": dict(families)})
