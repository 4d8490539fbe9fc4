"""payops in JupyterLab: the runbooks' forms, approvals panel, go-live control and break table (ipywidgets).

Contract
--------
- ``payops lab`` (:mod:`payops.lab.server`) starts JupyterLab on loopback with a token, on the project's
  ``runbooks/`` and ``notebooks/``, with the environment resolved to absolute paths (database, Stripe base
  address, output folder) and ``PAYOPS_LAB=1`` set for its kernels. Secrets reach the kernels from that
  environment only: no widget asks for one and no saved notebook holds one (widget state is not saved).
- A runbook notebook calls :func:`manual_payout_panel` / :func:`recon_panel` in one cell. They draw
  widgets only when :func:`interactive` — a kernel of ``payops lab`` (``PAYOPS_LAB=1``) running a notebook
  that nobody injected parameters into (no ``run_id``). Papermill (the runner) and nbval always
  inject ``run_id``: there the cell returns ``None``, shows nothing and changes nothing.
- Everything a widget does goes through the same code as the CLI: parameters through
  ``manual.gather_params`` / ``runner.resolve_manual_payout`` / ``runner.preflight_key``, runs through
  ``runner.prepare_run`` / ``runner.execute`` (papermill, run records, the sealed archive), approvals
  through ``payops.approvals`` (signed, re-verified), the go-live through ``runner.preflight_live``
  (the operator signs with their roster key), reconciliation through ``payops.reconcile.store``.

This module is light (the runner's kernels import it while warming up); ipywidgets is imported only
when a panel is drawn.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

ENV_FLAG = "PAYOPS_LAB"

__all__ = ["ENV_FLAG", "interactive", "manual_payout_panel", "recon_panel"]


def interactive(namespace: Mapping[str, Any]) -> bool:
    """True in a ``payops lab`` kernel running a notebook whose ``run_id`` nobody injected (``namespace`` is the
    notebook's ``globals()``; a panel cell run before the parameters cell counts as not injected)."""
    return os.environ.get(ENV_FLAG) == "1" and namespace.get("run_id") is None


def manual_payout_panel(step: str, namespace: Mapping[str, Any]) -> Any:
    """The manual payout control panel (form, preview, approvals, go-live) — or ``None`` when not interactive."""
    if not interactive(namespace):
        return None
    from payops.lab.manual_panel import ManualPayoutPanel

    return ManualPayoutPanel(step=step).widget


def recon_panel(namespace: Mapping[str, Any]) -> Any:
    """The reconciliation break table with filters, explain and sign-off — or ``None`` when not interactive."""
    if not interactive(namespace):
        return None
    from payops.lab.recon_table import ReconPanel

    return ReconPanel().widget
