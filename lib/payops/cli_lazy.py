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
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup

try:
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover — typer before it vendored Click
    from click.exceptions import UsageError  # type: ignore[no-redef]

__all__ = ["Family", "LazyGroup", "lazy_group_class", "load_family"]


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

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:
            # Typer suggests from the loaded commands only: suggest from every name, as when all were mounted
            if self.suggest_commands and args:
                matches = get_close_matches(args[0], self.list_commands(ctx))
                if matches:
                    base = exc.message.split(". Did you mean ")[0].rstrip(".")
                    exc.message = f"{base}. Did you mean {', '.join(repr(m) for m in matches)}?"
            raise


def lazy_group_class(families: Mapping[str, Family]) -> type[LazyGroup]:
    """A :class:`LazyGroup` subclass bound to ``families`` (pass it to ``typer.Typer(cls=…)``)."""
    return type("PayopsGroup", (LazyGroup,), {"families": dict(families)})
