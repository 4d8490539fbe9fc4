"""The monitoring figures for Prometheus (``prometheus_client``), so Grafana shows what the rules compare.

Each scrape takes one snapshot (:func:`payops.monitor.check.evaluate_at` — the same data functions as the rules
and dashboards) and the open alerts, and exposes them as gauges. Served at ``/metrics`` by
``payops monitor serve`` and by the webhook server (``payops webhooks serve``). Labels stay bounded: runs are
reported as "latest"/"prior" cycle, never one series per cycle date.

A scrape that cannot read the database answers the exposition anyway, with ``payops_monitor_up 0`` (and the
error in the log), so an alert on ``payops_monitor_up == 0`` catches a broken monitor.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from payops.config import Settings, get_settings

log = logging.getLogger("payops.monitor")


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels or [])


class MonitorCollector:
    """A custom collector: every figure is computed at scrape time from the database."""

    def __init__(self, settings: Callable[[], Settings] = get_settings,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings, self.clock = settings, clock

    def describe(self) -> list[Metric]:
        return []  # computed at scrape time (and no database access at registration)

    def collect(self) -> Iterator[Metric]:
        up = _gauge("payops_monitor_up", "1 when the monitor could read the database on this scrape")
        try:
            families = list(self._families())
        except Exception as exc:  # noqa: BLE001 — reported as payops_monitor_up 0, and logged
            log.error("metrics scrape failed: %s: %s", type(exc).__name__, exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[Metric]:
        from sqlalchemy import func, select

        from payops.db import session_scope
        from payops.db.models import Alert
        from payops.monitor import rules
        from payops.monitor.check import evaluate_at
        from payops.monitor.thresholds import Thresholds

        settings = self.settings()
        th = Thresholds.from_settings(settings)
        at = self.clock()
        snap, conditions = evaluate_at(settings, at, th)
        cond = _gauge("payops_monitor_conditions", "Conditions holding now, per rule and severity",
                      ["rule", "severity"])
        for (rule, sev), n in sorted(Counter((c.rule, c.severity) for c in conditions).items()):
            cond.add_metric([rule, sev], n)
        yield cond
        with session_scope(settings) as s:
            rows = s.execute(select(Alert.rule, Alert.severity, func.count()).where(Alert.status == "open")
                             .group_by(Alert.rule, Alert.severity)).all()
        alerts = _gauge("payops_monitor_open_alerts", "Open alerts (paged/posted) per rule and severity",
                        ["rule", "severity"])
        for rule, sev, n in rows:
            alerts.add_metric([rule, sev], n)
        yield alerts
        yield from self._payouts(snap, th)
        yield from self._fallback(snap, th, rules)
        yield from self._credentials(snap, th, rules)
        yield from self._reserves(snap, th, rules)

    @staticmethod
    def _payouts(snap: Any, th: Any) -> Iterator[Metric]:
        runs = sorted(snap.runs, key=lambda r: r.cycle_date)
        nxt = _gauge("payops_payout_next_cycle_timestamp_seconds", "The next scheduled payout cycle (unix time)")
        if snap.next_cycle_at:
            nxt.add_metric([], snap.next_cycle_at.timestamp())
        yield nxt
        dur = _gauge("payops_payout_run_duration_seconds", "Duration of the latest and prior payout runs", ["run"])
        ratio = _gauge("payops_payout_run_processed_ratio", "Studios processed / scheduled", ["run"])
        unpaid = _gauge("payops_payout_run_unpaid", "Ledger payouts still unpaid", ["run"])
        paid = _gauge("payops_payout_run_paid_minor_units", "Net paid by the run (automated), minor units",
                      ["run", "currency"])
        for label, run in zip(("latest", "prior"), reversed(runs[-2:]), strict=False):
            took = run.duration(snap.at)
            if took is not None:
                dur.add_metric([label], took.total_seconds())
            if run.scheduled:
                ratio.add_metric([label], run.processed / run.scheduled)
            unpaid.add_metric([label], run.unpaid)
            for cur, total in sorted(run.paid_totals.items()):
                paid.add_metric([label, cur], total)
        yield from (dur, ratio, unpaid, paid)

    @staticmethod
    def _fallback(snap: Any, th: Any, rules: Any) -> Iterator[Metric]:
        uses = rules.fallback_in_window(snap, th)
        count = _gauge("payops_fallback_manual_payouts", "Live manual payouts in the rolling window")
        count.add_metric([], len(uses))
        amount = _gauge("payops_fallback_amount_minor_units", "Paid via fallback in the window", ["currency"])
        auto = _gauge("payops_fallback_automated_minor_units", "Paid by the automated cycle in the window",
                      ["currency"])
        share = _gauge("payops_fallback_share_ratio", "Fallback / automated volume in the window", ["currency"])
        totals = Counter()  # type: Counter[str]
        for u in uses:
            totals[u.currency] += u.amount
        for cur in sorted(set(totals) | set(snap.automated_volume)):
            amount.add_metric([cur], totals.get(cur, 0))
            auto.add_metric([cur], snap.automated_volume.get(cur, 0))
            if snap.automated_volume.get(cur):
                share.add_metric([cur], totals.get(cur, 0) / snap.automated_volume[cur])
        yield from (count, amount, auto, share)

    @staticmethod
    def _credentials(snap: Any, th: Any, rules: Any) -> Iterator[Metric]:
        days = _gauge("payops_credential_days_left", "Days before the credential must be replaced", ["name", "kind"])
        for c in snap.credentials:
            found = rules.credential_deadline(c, th)
            if found:
                days.add_metric([c.name, c.kind], round(rules.days_left(found[0], snap.at), 3))
        yield days

    @staticmethod
    def _reserves(snap: Any, th: Any, rules: Any) -> Iterator[Metric]:
        held = _gauge("payops_reserve_held_minor_units", "Reserve held across studios", ["currency"])
        buffer = _gauge("payops_reserve_studios_under_buffer", "Studios under the buffer above their minimum",
                        ["currency"])
        below = _gauge("payops_reserve_studios_below_minimum", "Studios below their minimum (held or projected)",
                       ["currency"])
        capped = _gauge("payops_reserve_held_payouts", "Unpaid payouts whose reserve is under the studio minimum",
                        ["currency"])
        per: dict[str, list[int]] = {}
        for lv in rules.reserve_levels(snap, th):
            c = per.setdefault(lv.studio.currency, [0, 0, 0])
            c[0] += lv.studio.reserve_now
            c[1] += (not lv.below_minimum()) and lv.under_buffer(th)
            c[2] += lv.below_minimum()
        for cur, (total, n_buffer, n_below) in sorted(per.items()):
            held.add_metric([cur], total)
            buffer.add_metric([cur], n_buffer)
            below.add_metric([cur], n_below)
        for cur, (n, _net) in sorted(snap.held_by_reserve.items()):
            capped.add_metric([cur], n)
        yield from (held, buffer, below, capped)


def registry(settings: Callable[[], Settings] = get_settings, clock: Callable[[], datetime] | None = None
             ) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(MonitorCollector(settings, clock or (lambda: datetime.now(UTC))))  # type: ignore[arg-type]
    return reg


def metrics_endpoint(reg: CollectorRegistry) -> Callable[[Any], Any]:
    """A Starlette endpoint answering the Prometheus text exposition (the scrape runs in a worker thread)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response

    async def metrics(_request: Any) -> Response:
        body = await run_in_threadpool(generate_latest, reg)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics


def metrics_app(settings: Callable[[], Settings] = get_settings) -> Any:
    """``payops monitor serve``: just ``/metrics``."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    return Starlette(routes=[Route("/metrics", metrics_endpoint(registry(settings)), methods=["GET"])])
