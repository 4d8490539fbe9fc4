"""API keys: secret keys (full access), restricted keys (per-resource read/write), live-key refusal.

Restricted key permissions are ``{resource: "read" | "write"}`` (write implies read) using the
sandbox's resource names: transfers, balance, balance_transactions, payouts, accounts, events,
webhook_endpoints, payment_intents, charges, disputes, checkout_sessions. A missing permission answers 403 in Stripe's
words, naming the ``rak_…`` permission that would allow the request.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from payops.sandbox.api_errors import StripeAPIError

# resource → Stripe's restricted-key permission stem
RAK_NAMES = {
    "transfers": "transfer", "balance": "balance", "balance_transactions": "balance_transaction_source",
    "payouts": "payout", "accounts": "connected_account", "events": "event",
    "webhook_endpoints": "webhook", "payment_intents": "payment_intent", "charges": "charge",
    "disputes": "dispute", "checkout_sessions": "checkout_session",
}


def redact(key: str) -> str:
    """``rk_test_payops_fallback`` → ``rk_test_*********llback`` (Stripe shows the last 6)."""
    prefix = key[:8] if key[:3] in ("sk_", "rk_", "pk_") else key[:3]
    tail = key[-6:] if len(key) > 14 else ""
    return prefix + "*" * max(len(key) - len(prefix) - len(tail), 4) + tail


def key_from_header(header: str | None) -> str:
    if not header:
        raise StripeAPIError(401, "You did not provide an API key. You need to provide your API key in the "
                             "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                             "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
                             "or we can help at https://support.stripe.com/.")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value).decode().split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise StripeAPIError(401, "Invalid Authorization header.") from exc
    elif scheme.lower() != "bearer":
        raise StripeAPIError(401, "Invalid Authorization header: use 'Bearer sk_test_…'.")
    return value.strip()


def authenticate(keys: dict[str, dict[str, Any]], header: str | None) -> tuple[str, dict[str, Any]]:
    key = key_from_header(header)
    if key.startswith(("sk_live_", "rk_live_", "pk_live_")):
        raise StripeAPIError(401, f"Live mode keys are refused: the payops Stripe sandbox accepts test keys "
                             f"only (sk_test_… or rk_test_…). You provided {redact(key)}.")
    info = keys.get(key)
    if info is None:
        raise StripeAPIError(401, f"Invalid API Key provided: {redact(key)}")
    return key, info


def authorize(key: str, info: dict[str, Any], resource: str, access: str, account: str) -> None:
    perms = info.get("permissions")
    if perms is None:  # secret key
        return
    granted = perms.get(resource)
    if granted == "write" or (granted == "read" and access == "read"):
        return
    rak = f"rak_{RAK_NAMES.get(resource, resource)}_{access}"
    raise StripeAPIError(403, f"The provided key '{redact(key)}' does not have the required permissions for "
                         f"this endpoint on account '{account}'. Having the '{rak}' permission would allow "
                         "this request to continue.")


def key_record(key: str, permissions: dict[str, str] | None = None) -> dict[str, Any]:
    """Validate a key for the key table (test keys only; restricted keys need permissions)."""
    if not key.startswith(("sk_test_", "rk_test_")):
        raise ValueError("sandbox keys must start with sk_test_ or rk_test_")
    if key.startswith("rk_test_"):
        if permissions is None:
            raise ValueError("a restricted key (rk_test_…) needs a permissions map")
        for resource, access in permissions.items():
            if resource not in RAK_NAMES or access not in ("read", "write"):
                raise ValueError(f"bad permission {resource}={access}; resources: {sorted(RAK_NAMES)}")
        return {"kind": "restricted", "permissions": dict(permissions)}
    return {"kind": "secret", "permissions": None}
