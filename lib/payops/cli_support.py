"""What every ``payops`` command module shares: the error wrapper, the consoles, duration and time parsing.

Contract: a leaf. It imports Typer, Rich's console/text and :mod:`payops.errors` only, never a command
module and never :mod:`payops.cli` — so ``payops.cli`` can load each family's ``cli.py`` lazily while
those modules import their helpers from here (no import circle).

- :func:`handles_errors` — a ``PayopsError`` becomes one red line on stderr and the error's exit code;
  nothing is swallowed, anything else propagates.
- :func:`parse_duration` — ``'30m'``, ``'90s'``, ``'1h'``, ``'1h30m'`` or plain seconds.
- :func:`parse_ts` — an ISO timestamp (``Z`` accepted; naive means UTC) or ``None``; the error names the flag.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from payops.errors import FieldProblem, ParamsInvalid, PayopsError

F = TypeVar("F", bound=Callable[..., Any])
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def handles_errors(fn: F) -> F:
    """PayopsError → one red line on stderr and the error's exit code; nothing is swallowed."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PayopsError as exc:
            # the message may carry user input: never interpret it as Rich markup
            err_console.print(Text.assemble(("error:", "bold red"), " ", str(exc)), soft_wrap=True)
            raise typer.Exit(exc.exit_code) from exc

    return wrapper  # type: ignore[return-value]


def parse_duration(text: str) -> float:
    """'30m', '90s', '1h', '1h30m' or plain seconds → seconds."""
    m = re.fullmatch(r"\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or not m or not any(m.groups()):
        raise ParamsInvalid(FieldProblem("--wait", f"{text!r} is not a duration like 30m, 90s or 1h"))
    h, mnt, s = m.groups()
    return int(h or 0) * 3600 + int(mnt or 0) * 60 + float(s or 0)


def parse_ts(text: str | None, flag: str = "--detected-at") -> datetime | None:
    """An ISO timestamp (``Z`` for UTC; a naive one is taken as UTC), or None; bad input names ``flag``."""
    if text is None:
        return None
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ParamsInvalid(FieldProblem(flag, f"{text!r} is not an ISO timestamp")) from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
