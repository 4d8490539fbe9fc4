"""Widget building blocks: a form whose errors sit next to their fields, a status line, HTML helpers.

A problem (``FieldProblem``) is shown next to the field it names — ``amount``, ``--note``, ``approvals.ops``
all map to their widget (leading dashes dropped, ``-`` read as ``_``); one no field claims goes to the
form's general error line. Nothing here writes anything: callers validate with the library first.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import ipywidgets as w

from payops.errors import FieldProblem, ParamsInvalid, PayopsError

LABEL_WIDTH = "230px"
INPUT_WIDTH = "380px"


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def pre(text: str) -> str:
    return f'<pre style="white-space:pre-wrap;margin:2px 0;font-size:12px">{esc(text)}</pre>'


def field_key(name: str) -> str:
    """``--ledger-payout-id`` / ``ledger_payout_id`` → ``ledger_payout_id``."""
    return name.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    placeholder: str = ""
    kind: str = "text"  # text | textarea | check | password-free: never a secret
    value: Any = ""


class Form:
    """Labelled inputs, each with its error line beside it (CSS classes ``payops-field-NAME`` and
    ``payops-error-NAME`` for tests and styling)."""

    def __init__(self, fields: Iterable[Field], *, prefix: str = "payops") -> None:
        self.fields = list(fields)
        self.inputs: dict[str, Any] = {}
        self.errors: dict[str, w.HTML] = {}
        rows = []
        for f in self.fields:
            if f.kind == "check":
                inp: Any = w.Checkbox(value=bool(f.value), description="", indent=False,
                                      layout=w.Layout(width="auto"))
            elif f.kind == "textarea":
                inp = w.Textarea(value=str(f.value or ""), placeholder=f.placeholder,
                                 layout=w.Layout(width=INPUT_WIDTH, min_width=INPUT_WIDTH, height="60px"))
            else:
                inp = w.Text(value=str(f.value or ""), placeholder=f.placeholder,
                             layout=w.Layout(width=INPUT_WIDTH, min_width=INPUT_WIDTH))
            inp.add_class(f"{prefix}-field-{f.name.replace('_', '-')}")
            err = w.HTML("", layout=w.Layout(margin="0 0 0 8px", flex="1 1 auto"))
            err.add_class(f"{prefix}-error-{f.name.replace('_', '-')}")
            self.inputs[f.name], self.errors[f.name] = inp, err
            label = w.HTML(f"<b>{esc(f.label)}</b>", layout=w.Layout(width=LABEL_WIDTH, min_width=LABEL_WIDTH))
            rows.append(w.HBox([label, inp, err], layout=w.Layout(align_items="center")))
        self.general = w.HTML("")
        self.general.add_class(f"{prefix}-error-form")
        self.box = w.VBox([*rows, self.general])
        self.box.add_class(f"{prefix}-form")

    def values(self) -> dict[str, Any]:
        return {name: inp.value for name, inp in self.inputs.items()}

    def set_values(self, values: dict[str, Any]) -> None:
        for name, v in values.items():
            if name in self.inputs and v is not None:
                inp = self.inputs[name]
                inp.value = bool(v) if isinstance(inp, w.Checkbox) else str(v)

    def clear(self) -> None:
        for e in self.errors.values():
            e.value = ""
        self.general.value = ""

    def show_problems(self, problems: Iterable[FieldProblem], context: str = "") -> None:
        """Each problem next to its field; the others on the general line."""
        self.clear()
        loose = []
        for p in problems:
            key = field_key(p.field)
            if key in self.errors:
                self.errors[key].value = error_html(p.message)
            else:
                loose.append(str(p))
        if loose:
            self.general.value = error_html(("invalid " + context + ": " if context else "") + "; ".join(loose))

    def show_error(self, exc: BaseException) -> None:
        if isinstance(exc, ParamsInvalid):
            self.show_problems(exc.problems, exc.context)
        else:
            self.clear()
            self.general.value = error_html(str(exc))

    @property
    def has_errors(self) -> bool:
        return any(e.value for e in self.errors.values()) or bool(self.general.value)


def error_html(message: str) -> str:
    return f'<span style="color:#b00020;line-height:1.3">✗ {esc(message)}</span>'


def ok_html(message: str) -> str:
    return f'<span style="color:#1b7f3b">✓ {esc(message)}</span>'


def note_html(message: str) -> str:
    return f'<span style="color:#555">{esc(message)}</span>'


def button(description: str, css: str, *, style: str = "", tooltip: str = "") -> w.Button:
    b = w.Button(description=description, button_style=style, tooltip=tooltip or description,
                 layout=w.Layout(width="auto", align_self="flex-start", min_width="120px"))
    b.add_class(css)
    return b


def guarded(show: Callable[[BaseException], None]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A widget callback whose ``PayopsError`` is shown (``show``) instead of vanishing into the kernel log;
    anything else is shown too, then re-raised (ipywidgets logs it): never swallowed."""

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        def callback(*args: Any) -> None:
            try:
                fn(*args)
            except PayopsError as exc:
                show(exc)
            except Exception as exc:
                show(exc)
                raise

        return callback

    return wrap
