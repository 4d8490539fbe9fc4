"""Constants and small helpers shared by the sandbox tests (importable as ``sandbox_helpers``)."""

from __future__ import annotations

STUDIO_A = "acct_test_studio_a"
STUDIO_B = "acct_test_studio_b"
STUDIO_C = "acct_test_studio_c"


def transfer_params(amount: object = 1_000, currency: str = "cad", destination: str = STUDIO_A,
                    **extra: object) -> dict[str, object]:
    return {"amount": amount, "currency": currency, "destination": destination, **extra}
