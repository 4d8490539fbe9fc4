"""Everything one reconciliation reads, loaded in one call: the report notebook's first step.

``load_inputs(ctx)`` reads the period's ledger payouts (``--ledger``), Stripe's side (``--stripe``: the API
pull, plus by id the transfers the ledger records outside the window; or a CSV export), and the ledger
payouts of other periods that the period's transfers name (:mod:`payops.reconcile.periods`). Adapters only:
matching is :func:`payops.reconcile.match.reconcile`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from payops.reconcile.load_ledger import load_ledger, load_ledger_ids
from payops.reconcile.load_stripe import describe_pull, load_stripe, load_stripe_csv, recorded_transfer_ids
from payops.reconcile.params import ReconContext, check_files
from payops.reconcile.periods import other_period_keys

__all__ = ["ReconInputs", "check_files", "load_inputs"]


@dataclass
class ReconInputs:
    """The frames of :mod:`payops.reconcile.schema` for one reconciliation, and how Stripe's were pulled."""

    ledger: pd.DataFrame          # the period's ledger payouts
    transfers: pd.DataFrame
    links: pd.DataFrame           # destination payment → payout
    other_period: pd.DataFrame    # ledger payouts of other periods that the period's transfers name
    pull_stats: dict[str, Any] = field(default_factory=dict)  # empty for a CSV export

    def summary(self) -> str:
        """One line per source, for the report."""
        stripe = describe_pull(self.pull_stats) if self.pull_stats else "from a CSV export (no payout chain)"
        return (f"ledger: {len(self.ledger):,} payout(s) in the period, {len(self.other_period):,} of other periods "
                f"named by its transfers\nstripe: {len(self.transfers):,} transfer(s), {len(self.links):,} payout "
                f"link(s) — {stripe}")


def load_inputs(ctx: ReconContext, progress: bool = True) -> ReconInputs:
    """Load both sides for ``ctx``'s parameters (``progress``: bars while pulling from Stripe)."""
    ledger = load_ledger(ctx.params.ledger, ctx.config, ctx.settings)
    if ctx.params.stripe == "api":
        transfers, links = load_stripe(ctx.stripe_client_factory(), ctx.config, ctx.cache_dir, progress=progress,
                                       recorded=recorded_transfer_ids(ledger))
    else:
        transfers, links = load_stripe_csv(ctx.params.stripe)
    other = load_ledger_ids(ctx.params.ledger, other_period_keys(transfers, ledger, ctx.config), ctx.config,
                            ctx.settings)
    return ReconInputs(ledger=ledger, transfers=transfers, links=links, other_period=other,
                       pull_stats=dict(transfers.attrs.get("pull_stats") or {}))
