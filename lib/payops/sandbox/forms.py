"""Decoding of Stripe's form encoding (``metadata[k]=v``, ``expand[0]=x``, ``created[gte]=1``).

stripe-python sends arrays as ``key[0]=…``; older clients and curl users send ``key[]=…``. Both
decode to lists. Parameter helpers raise Stripe-shaped errors naming the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from payops.sandbox.api_errors import invalid_param, missing_param, unknown_param

_PART = re.compile(r"\[([^\]]*)\]")
_CURRENCY = re.compile(r"^[a-z]{3}$")
# Keys whose nested dicts are user data (never turned into lists).
_FREEFORM = {"metadata"}


def decode_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nest bracketed keys; dicts whose keys are all indexes become lists."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        head, _, rest = raw_key.partition("[")
        parts = [head] + (_PART.findall("[" + rest) if rest else [])
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # key[] → append
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise invalid_param(raw_key, f"Invalid nesting for parameter {raw_key}.")
    return _listify(root, None)


def _listify(node: Any, key: str | None) -> Any:
    if not isinstance(node, dict):
        return node
    if key in _FREEFORM:
        return node
    out = {k: _listify(v, k) for k, v in node.items()}
    if out and key is not None and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out


def decode_form(body: bytes | str) -> dict[str, Any]:
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return decode_pairs(parse_qsl(text, keep_blank_values=True))


def canonical(body: bytes | str) -> tuple[tuple[str, str], ...]:
    """Order-insensitive form of the parameters, used to compare idempotent retries."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return tuple(sorted(parse_qsl(text, keep_blank_values=True)))


class Params:
    """Typed access to decoded parameters; unknown parameters are refused like Stripe does."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def check_known(self, allowed: Iterable[str]) -> None:
        allowed_set = set(allowed) | {"expand"}
        for key in self.data:
            if key not in allowed_set:
                raise unknown_param(key)

    def has(self, name: str) -> bool:
        return name in self.data

    def str(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self.data.get(name)
        if value is None:
            if required:
                raise missing_param(name)
            return default
        if not isinstance(value, str):
            raise invalid_param(name, f"Invalid string: {name} must be a string.", "parameter_invalid_string")
        if required and value == "":
            raise invalid_param(name, f"You passed an empty string for '{name}'. We assume empty values "
                                "are an attempt to unset a parameter; however '{name}' cannot be unset.",
                                "parameter_invalid_empty")
        return value

    def int(self, name: str, *, required: bool = False, default: int | None = None,
            minimum: int | None = None, maximum: int | None = None) -> int | None:
        value = self.data.get(name)
        if value is None:
            if required:
                raise missing_param(name)
            return default
        if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
            raise invalid_param(name, f"Invalid integer: {value}", "parameter_invalid_integer")
        number = int(value)
        if minimum is not None and number < minimum:
            if name == "amount":
                raise invalid_param(name, "This value must be greater than or equal to 1.",
                                    "parameter_invalid_integer")
            raise invalid_param(name, f"This value must be greater than or equal to {minimum}.",
                                "parameter_invalid_integer")
        if maximum is not None and number > maximum:
            raise invalid_param(name, f"This value must be less than or equal to {maximum}.",
                                "parameter_invalid_integer")
        return number

    def bool(self, name: str, default: bool | None = None) -> bool | None:
        value = self.data.get(name)
        if value is None:
            return default
        if value in ("true", "false"):
            return value == "true"
        raise invalid_param(name, f"Invalid boolean: {value}")

    def currency(self, name: str = "currency", *, required: bool = True) -> str | None:
        value = self.str(name, required=required)
        if value is None:
            return None
        value = value.lower()
        if not _CURRENCY.match(value):
            raise invalid_param(name, f"Invalid currency: {value}. Stripe currently supports these "
                                "currencies: 3-letter ISO codes, lower case.", "invalid_currency")
        return value

    def metadata(self, name: str = "metadata") -> dict[str, str] | None:
        """``None`` when absent; ``{}`` for ``metadata=`` (unset all); empty values unset keys."""
        value = self.data.get(name)
        if value is None:
            return None
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise invalid_param(name, "Invalid metadata: must be a hash of keys and values.")
        for key, val in value.items():
            if not isinstance(val, str):
                raise invalid_param(f"{name}[{key}]", "Metadata values must be strings.")
            if len(key) > 40 or len(val) > 500:
                raise invalid_param(f"{name}[{key}]", "Metadata keys are limited to 40 characters and "
                                    "values to 500 characters.")
        return value

    def str_list(self, name: str) -> list[str] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise invalid_param(name, f"Invalid array: {name}")

    def range(self, name: str) -> tuple[int | None, int | None] | None:
        """``created=5`` or ``created[gte|gt|lte|lt]=…`` → inclusive (low, high) bounds."""
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            exact = Params({name: value}).int(name)
            return exact, exact
        if not isinstance(value, dict):
            raise invalid_param(name, f"Invalid {name}: expected an integer or a hash.")
        low: int | None = None
        high: int | None = None
        for op, raw in value.items():
            number = Params({f"{name}[{op}]": raw}).int(f"{name}[{op}]")
            assert number is not None
            if op == "gte":
                low = number if low is None else max(low, number)
            elif op == "gt":
                low = number + 1 if low is None else max(low, number + 1)
            elif op == "lte":
                high = number if high is None else min(high, number)
            elif op == "lt":
                high = number - 1 if high is None else min(high, number - 1)
            else:
                raise unknown_param(f"{name}[{op}]")
        return low, high

