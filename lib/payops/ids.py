"""Deterministic identifiers: the same inputs give the same id on every machine.

The payout cycle derives its ``payout_runs.id`` and each ``ledger_payouts.id`` from the cycle date and
the studio, so a re-run of a cycle (or two runs racing) can only ever name the same rows; the demo
seed uses the same functions for its Stripe-looking ids.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import date

_NS = uuid.UUID("6f1d2c1e-0000-4000-8000-00000000a11e")


def stable_uuid(*parts: object) -> str:
    """Deterministic UUID (uuid5 in payops' namespace) of ``parts`` joined with ``:``."""
    return str(uuid.uuid5(_NS, ":".join(str(p) for p in parts)))


def stable_id(prefix: str, *parts: object, length: int = 24) -> str:
    """Deterministic Stripe-looking id: ``tr_…``, ``po_…``."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()
    return f"{prefix}_{digest[:length]}"


def payout_run_id(cycle_date: date) -> str:
    return stable_uuid("payout_run", cycle_date)


def ledger_payout_id(cycle_date: date, studio_id: str) -> str:
    return stable_uuid("ledger_payout", cycle_date, studio_id)
