"""Per-request context handed to resource handlers, and the shared list/expand helpers."""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from payops.sandbox.api_errors import StripeAPIError, invalid_param, missing
from payops.sandbox.forms import Params
from payops.sandbox.state import PLATFORM, SandboxState
from payops.sandbox.store import OrderedIndex, list_body, paginate

if TYPE_CHECKING:
    from collections.abc import Callable

    from payops.sandbox.faults import Faults


def new_request_id() -> str:
    """A ``Request-Id`` the way Stripe spells them (``req_`` + 14 characters)."""
    return "req_" + secrets.token_urlsafe(11).replace("-", "x").replace("_", "y")[:14]


@dataclass
class Ctx:
    """Who is calling, on whose behalf (``Stripe-Account``), and with which request id."""

    request_id: str
    account: str = PLATFORM
    api_key: str = ""
    idempotency_key: str | None = None
    faults: Faults | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_platform(self) -> bool:
        return self.account == PLATFORM

    def require_platform(self, what: str) -> None:
        if not self.is_platform:
            raise StripeAPIError(400, f"{what} can only be made by the platform account, not with a "
                                 "Stripe-Account header.", code="parameter_invalid", param=None)

    def payout_delay(self) -> float:
        return self.faults.current.payout_delay_seconds if self.faults is not None else 3.0


LIST_PARAMS = ("limit", "starting_after", "ending_before", "created")


def list_objects(state: SandboxState, p: Params, *, url: str, kind: str, index: OrderedIndex | None,
                 predicate: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """A Stripe list page (``limit`` 1..100, cursors, ``created`` range), newest first."""
    limit = p.int("limit", default=10, minimum=1, maximum=100)
    assert limit is not None
    created = p.range("created")
    cursors: dict[str, Any] = {}
    for name in ("starting_after", "ending_before"):
        oid = p.str(name)
        if oid:
            if oid not in state.sort_key or state.objects[oid].get("object") != kind:
                raise missing(kind.replace("_", " "), oid, param=name, status=400)
            cursors[name] = state.sort_key[oid]
    if "starting_after" in cursors and "ending_before" in cursors:
        raise invalid_param("ending_before", "You may only specify one of these parameters: "
                            "ending_before, starting_after.")
    page = paginate(index, limit=limit, created=created, starting_after=cursors.get("starting_after"),
                    ending_before=cursors.get("ending_before"), predicate=predicate)
    data = [state.objects[i] for i in page.ids]
    return expand(state, list_body(url, data, page.has_more), p, in_list=True)


def expand(state: SandboxState, obj: dict[str, Any], p: Params, *, in_list: bool = False) -> dict[str, Any]:
    """Apply ``expand[]``: replace id strings with the objects they name (one level deep)."""
    paths = p.str_list("expand") or []
    if not paths:
        return obj
    out = copy.deepcopy(obj)
    for path in paths:
        parts = path.split(".")
        if in_list:
            if parts[0] != "data" or len(parts) < 2:
                raise invalid_param("expand", f"This property cannot be expanded ({path}). "
                                    "Expansions on lists must start with 'data.'.")
            targets = out["data"]
            parts = parts[1:]
        else:
            targets = [out]
        for target in targets:
            _expand_one(state, target, parts, path)
    return out


def _expand_one(state: SandboxState, node: Any, parts: list[str], path: str) -> None:
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    last = parts[-1]
    if not isinstance(node, dict) or last not in node:
        raise invalid_param("expand", f"This property cannot be expanded ({path}).")
    value = node[last]
    if isinstance(value, str) and value in state.objects:
        node[last] = copy.deepcopy(state.objects[value])
