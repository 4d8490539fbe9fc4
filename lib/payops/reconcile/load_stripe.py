"""The Stripe adapter: transfers (with reversals) and the payouts that settled them, pulled in parallel.

``load_stripe(client_factory, config, cache_dir)`` returns ``(transfers, links)`` with exactly
:data:`schema.TRANSFER_COLUMNS` and :data:`schema.PAYOUT_LINK_COLUMNS`:

1. transfers created in ``[period_from, period_to + cutoff_margin_days + 1 day)`` (UTC days): the window is
   split into half-open time slices ``created[gte]=lo & created[lt]=hi``; each slice is paged with
   ``starting_after`` in a thread pool, every thread with its own ``StripeClient`` (from
   ``client_factory``); a shared client-side pacer keeps under ``max_rps`` and every call goes through
   :func:`payops.stripe_api.with_backoff` (429 / 5xx / connection errors are retried, honouring
   ``Retry-After``). Objects are de-duplicated by id and kept only inside the window, so slice edges
   can neither lose nor double-count one;
2. for each destination account seen: its payouts created from ``period_from`` to 7 days after the
   window (``Stripe-Account`` header), and for each payout the balance transactions it settled
   (``balance_transactions.list(payout=po_…)``): each ``py_…`` source is a link row.

3. the transfers the ledger records (``recorded``: ``ledger_transfer_id`` / ``manual_transfer_id``) that the
   window did not return — typically a manual fallback paid after the cut-off, or a transfer made before the
   period — are retrieved by id, with their accounts' payouts from their ``created`` on: a transfer paid late is
   then a fact (TIMING_IN_TRANSIT, "created …, after the period end"), not a MISSING_IN_STRIPE to chase by
   hand; an id Stripe does not know (404) stays missing and is counted (``recorded_not_found``).

Raw pages are cached as JSON under ``cache_dir`` (``transfers/<lo>_<hi>.json``,
``payouts/<po_…>.json``). A cached transfer slice is reused when it was pulled at least
``cutoff_margin_days`` after its end (nothing new can land in it) and it is not the most recent slice,
which is always pulled again; a payout's transactions are cached once the payout is final (paid,
failed, canceled). Caveat: a reversal made after a slice was sealed is only seen once the cache of
that period is removed (``rm -r var/recon-cache/<period>``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import pandas as pd
import stripe
from tqdm import tqdm  # plain text bars: no widget warnings in executed notebooks

from payops.reconcile.schema import PAYOUT_LINK_COLUMNS, TRANSFER_COLUMNS, ReconConfig, currency_problem
from payops.stripe_pager import (  # the shared parallel pager (the checkout incident triage pulls with it too)
    DEFAULT_MAX_RPS,
    DEFAULT_THREADS,
    PAGE_LIMIT,
    ClientFactory,
    Pacer,
    PullStats,
    Slice,
    _Puller,
    describe_pull,
    in_window,
    plan_slices,
)

__all__ = ["BAR_DELAY", "BAR_INTERVAL_NOTEBOOK", "CSV_PAYOUT_COLUMNS", "DEFAULT_MAX_RPS", "DEFAULT_THREADS",
           "PAGE_LIMIT", "ClientFactory", "Pacer", "PullStats", "Slice", "describe_pull", "load_stripe",
           "load_stripe_csv", "plan_slices", "pull_payout_links", "pull_recorded", "pull_transfers",
           "recorded_transfer_ids", "window"]
MANUAL_SOURCE = "payops-manual-fallback"
FINAL_PAYOUT = frozenset({"paid", "failed", "canceled"})
PAYOUT_LOOKAHEAD = timedelta(days=7)
BAR_DELAY = 2.0
BAR_INTERVAL_NOTEBOOK = 10.0


def _bar(desc: str, progress: bool) -> Any:
    """A plain-text progress bar on stdout (no widgets in executed notebooks), shown only once a pull has taken
    ``BAR_DELAY`` seconds — a quick one would leave a "0obj" line in the archived report for nothing — and
    redrawn every second on a terminal, every ``BAR_INTERVAL_NOTEBOOK`` seconds elsewhere (each redraw is a
    line in a notebook's output)."""
    tty = sys.stdout.isatty()
    return tqdm(desc=desc, unit="obj", disable=not progress, leave=True, file=sys.stdout, delay=BAR_DELAY,
                mininterval=1.0 if tty else BAR_INTERVAL_NOTEBOOK)



# --- transfers ------------------------------------------------------------------------------------
def window(config: ReconConfig) -> tuple[int, int]:
    """``[period_from 00:00, period_to + margin + 1 day 00:00)`` in UTC seconds."""
    lo = datetime.combine(config.period_from, dtime(0), tzinfo=UTC)
    hi = datetime.combine(config.period_to + timedelta(days=config.cutoff_margin_days + 1), dtime(0), tzinfo=UTC)
    return int(lo.timestamp()), int(hi.timestamp())


def pull_transfers(client_factory: ClientFactory, lo: int, hi: int, *, slices: int = 16,
                   threads: int = DEFAULT_THREADS, cache_dir: Path | None = None, seal_after: int = 3 * 86400,
                   max_rps: float | None = DEFAULT_MAX_RPS, progress: bool = True,
                   stats: PullStats | None = None, now: float | None = None) -> list[dict[str, Any]]:
    """Every transfer with ``lo <= created < hi``, once each, newest first."""
    stats = stats or PullStats()
    plan = plan_slices(lo, hi, slices)
    now = time.time() if now is None else now
    bar = _bar("stripe transfers", progress)
    puller = _Puller(client_factory, max_rps, stats, bar)

    def one(sl: Slice) -> list[dict[str, Any]]:
        path = cache_dir / "transfers" / f"{sl.name}.json" if cache_dir is not None else None
        reusable = sl is not plan[-1] and path is not None and path.is_file()
        if reusable:
            assert path is not None
            doc = json.loads(path.read_text())
            if doc.get("sealed"):
                stats.add(slices_cached=1)
                bar.update(sum(len(p["data"]) for p in doc["pages"]))
                return list(doc["pages"])
        pages = puller.pages(lambda c, p: c.v1.transfers.list(params=p), {"created": {"gte": sl.lo, "lt": sl.hi}})
        stats.add(slices_pulled=1)
        if path is not None:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            doc = {"slice": [sl.lo, sl.hi], "fetched_at": now, "sealed": now >= sl.hi + seal_after, "pages": pages}
            tmp = path.with_suffix(".tmp")
            _write_private(tmp, json.dumps(doc))
            tmp.replace(path)
        return pages

    t0 = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="recon-pull") as pool:
            results = list(pool.map(one, plan))
    finally:
        bar.close()
    transfers = in_window(results, lo, hi)
    stats.add(transfers=len(transfers))
    stats.seconds += time.monotonic() - t0
    return transfers


def pull_recorded(client_factory: ClientFactory, ids: Iterable[str], *, threads: int = DEFAULT_THREADS,
                  max_rps: float | None = DEFAULT_MAX_RPS, stats: PullStats | None = None) -> list[dict[str, Any]]:
    """``GET /v1/transfers/{id}`` for each of ``ids`` (once each); the ones Stripe does not have (404) are left
    out and counted in ``stats.recorded_not_found``. Any other error is raised."""
    stats = stats or PullStats()
    puller = _Puller(client_factory, max_rps, stats, None)

    def one(tid: str) -> dict[str, Any] | None:
        try:
            return puller.call(lambda c: c.v1.transfers.retrieve(tid))
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                stats.add(recorded_not_found=1)
                return None
            raise

    t0 = time.monotonic()
    wanted = sorted({i for i in ids if isinstance(i, str) and i.startswith("tr_")})
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(wanted) or 1)), thread_name_prefix="recon-ids") as pool:
        found = [o for o in pool.map(one, wanted) if o is not None]
    stats.add(recorded_found=len(found))
    stats.seconds += time.monotonic() - t0
    return found


# --- payouts and the balance transactions they settled ---------------------------------------------------
def pull_payout_links(client_factory: ClientFactory, accounts: Iterable[str], lo: int, hi: int, *,
                      threads: int = DEFAULT_THREADS, cache_dir: Path | None = None,
                      max_rps: float | None = DEFAULT_MAX_RPS, progress: bool = True,
                      stats: PullStats | None = None) -> list[dict[str, Any]]:
    """One row per (destination payment, payout) for the payouts of ``accounts`` created in [lo, hi]."""
    stats = stats or PullStats()
    bar = _bar("stripe payouts", progress)
    puller = _Puller(client_factory, max_rps, stats, bar)

    def payouts_of(account: str) -> list[dict[str, Any]]:
        opts = {"stripe_account": account}
        pages = puller.pages(lambda c, p: c.v1.payouts.list(params=p, options=opts),  # type: ignore[arg-type]
                             {"created": {"gte": lo, "lte": hi}})
        return [{**po, "_account": account} for page in pages for po in page["data"]]

    def links_of(po: dict[str, Any]) -> list[dict[str, Any]]:
        path = cache_dir / "payouts" / f"{po['id']}.json" if cache_dir is not None else None
        if path is not None and path.is_file():
            doc = json.loads(path.read_text())
            if doc.get("status") == po["status"]:
                return _link_rows(po, doc["pages"])
        opts = {"stripe_account": po["_account"]}
        pages = puller.pages(lambda c, p: c.v1.balance_transactions.list(params=p, options=opts),  # type: ignore[arg-type]
                             {"payout": po["id"]})
        if path is not None and po["status"] in FINAL_PAYOUT:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write_private(path, json.dumps({"status": po["status"], "pages": pages}))
        return _link_rows(po, pages)

    t0 = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="recon-payouts") as pool:
            payouts = [po for batch in pool.map(payouts_of, sorted(set(accounts))) for po in batch]
            payouts = list({po["id"]: po for po in payouts}.values())
            rows = [r for batch in pool.map(links_of, payouts) for r in batch]
    finally:
        bar.close()
    rows = list({(r["destination_payment"], r["payout_id"]): r for r in rows}.values())
    stats.add(payouts=len(payouts), links=len(rows))
    stats.seconds += time.monotonic() - t0
    return rows


def _link_rows(po: dict[str, Any], pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"destination_payment": txn["source"], "payout_id": po["id"], "account": po["_account"],
             "payout_status": po["status"], "arrival_date": po.get("arrival_date"),
             "failure_code": po.get("failure_code")}
            for page in pages for txn in page["data"]
            if isinstance(txn.get("source"), str) and txn["source"].startswith("py_")]


# --- frames -----------------------------------------------------------------------------------------------
def transfers_frame(objs: list[dict[str, Any]]) -> pd.DataFrame:
    """Raw transfer objects → TRANSFER_COLUMNS."""
    rows = []
    for o in objs:
        meta = o.get("metadata") or {}
        rows.append({
            "transfer_id": o["id"], "created": int(o["created"]), "amount": int(o["amount"]),
            "currency": str(o["currency"]).upper(), "destination": o.get("destination"),
            "transfer_group": o.get("transfer_group"), "ledger_payout_id": meta.get("ledger_payout_id"),
            "source": "manual" if meta.get("source") == MANUAL_SOURCE else "automated",
            "amount_reversed": int(o.get("amount_reversed") or 0), "reversed": bool(o.get("reversed")),
            "destination_payment": o.get("destination_payment"),
        })
    return conform_transfers(pd.DataFrame(rows, columns=list(TRANSFER_COLUMNS)))


def conform_transfers(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for col, kind in TRANSFER_COLUMNS.items():
        if col == "created":
            raw = df[col]
            ts = (pd.to_datetime(raw.astype("int64"), unit="s", utc=True) if pd.api.types.is_numeric_dtype(raw)
                  else pd.to_datetime(raw, utc=True, format="ISO8601"))
            out[col] = ts.astype("datetime64[us, UTC]")
        elif kind == "string":
            s = df[col].astype("string")
            out[col] = s.mask(s.str.strip() == "")
        else:
            out[col] = df[col].astype(kind)
    out["currency"] = out["currency"].str.upper()
    return out.reset_index(drop=True)


def links_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(PAYOUT_LINK_COLUMNS))
    out = pd.DataFrame(index=df.index)
    for col, kind in PAYOUT_LINK_COLUMNS.items():
        if col == "arrival_date":
            out[col] = pd.to_datetime(df[col].astype("Int64"), unit="s", utc=True).astype("datetime64[us, UTC]")
        else:
            out[col] = df[col].astype(kind)
    return out.sort_values(["destination_payment", "payout_id"]).reset_index(drop=True)


def _write_private(path: Path, text: str) -> None:
    """A cache file: 0600 from its creation (raw Stripe pages name studios and amounts)."""
    from payops.filemodes import PRIVATE, create_file

    with open(create_file(path, PRIVATE), "w", encoding="utf-8") as fh:
        fh.truncate()
        fh.write(text)


def load_stripe(client_factory: ClientFactory, config: ReconConfig, cache_dir: Path | None,
                progress: bool = True, *, threads: int = DEFAULT_THREADS, slices: int | None = None,
                max_rps: float | None = DEFAULT_MAX_RPS,
                recorded: Iterable[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transfers in the period plus the cut-off margin, and the payout links of their accounts; plus the
    ``recorded`` transfer ids (what the ledger says it paid with) outside that window, by id (step 3 above).

    ``transfers.attrs["pull_stats"]`` holds the :class:`PullStats` of the pull.
    """
    lo, hi = window(config)
    stats = PullStats()
    days = max(1, (hi - lo) // 86400)
    lookahead = int(PAYOUT_LOOKAHEAD.total_seconds())
    objs = pull_transfers(client_factory, lo, hi, slices=slices or min(32, max(threads, days // 7)),
                          threads=threads, cache_dir=cache_dir, seal_after=config.cutoff_margin_days * 86400,
                          max_rps=max_rps, progress=progress, stats=stats)
    pulled = {o["id"] for o in objs}
    extra = pull_recorded(client_factory, (i for i in recorded if i not in pulled), threads=threads,
                          max_rps=max_rps, stats=stats)
    transfers = transfers_frame(objs + extra)  # extra: only ids the window did not return
    accounts = [a for a in transfers["destination"].dropna().unique().tolist() if a]
    links = pull_payout_links(client_factory, accounts, lo, hi + lookahead, threads=threads, cache_dir=cache_dir,
                              max_rps=max_rps, progress=progress, stats=stats)
    created: dict[str, list[int]] = {}  # the late/early transfers' accounts: payouts from their created on
    for o in extra:
        if o.get("destination"):
            created.setdefault(o["destination"], []).append(int(o["created"]))
    side = PullStats()  # payouts already counted above may come again: only the requests are added
    for account, times in sorted(created.items()):
        links += pull_payout_links(client_factory, [account], min(times), max(times) + lookahead, threads=threads,
                                   cache_dir=cache_dir, max_rps=max_rps, progress=False, stats=side)
    links = list({(r["destination_payment"], r["payout_id"]): r for r in links}.values())
    stats.add(requests=side.requests, retries=side.retries)
    stats.seconds += side.seconds
    stats.links = len(links)
    transfers.attrs["pull_stats"] = stats.as_dict()
    return transfers, links_frame(links)


def recorded_transfer_ids(ledger: pd.DataFrame) -> list[str]:
    """The transfer ids a ledger frame says it paid with (``ledger_transfer_id``, ``manual_transfer_id``)."""
    ids: set[str] = set()
    for col in ("ledger_transfer_id", "manual_transfer_id"):
        if col in ledger:
            ids.update(str(v) for v in ledger[col].dropna())
    return sorted(ids)


#: optional columns of a ``--stripe FILE.csv`` export: the payout that swept each transfer's destination payment
CSV_PAYOUT_COLUMNS = ("payout_id", "payout_status", "arrival_date", "failure_code")
PAYOUT_STATUSES = frozenset({"pending", "in_transit", "paid", "failed", "canceled"})


def load_stripe_csv(path: Path | str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``--stripe FILE.csv``: a transfers export with TRANSFER_COLUMNS (``created`` ISO 8601 or unix seconds,
    integer minor-unit amounts, ISO currencies), and optionally the payout chain per transfer:
    ``payout_id``, ``payout_status`` (pending · in_transit · paid · failed · canceled), ``arrival_date`` and
    ``failure_code`` of the payout that swept its ``destination_payment``. Without those columns there is no
    chain: every transfer is then "not swept by a payout yet" (TIMING_IN_TRANSIT at best).

    Every problem is raised at once as ``ParamsInvalid`` naming ``stripe.<column>``, before anything is used."""
    from payops.errors import FieldProblem, ParamsInvalid

    where = str(path)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in TRANSFER_COLUMNS if c not in raw.columns]
    if missing:
        raise ParamsInvalid([FieldProblem(f"stripe.{c}", f"column missing from {where}") for c in missing],
                            "Stripe export")
    problems = [FieldProblem(f"stripe.{c}", f"not integer minor units in {where}")
                for c in ("amount", "amount_reversed") if not raw[c].str.fullmatch(r"-?\d{1,18}").all()]
    blank = [c for c in ("transfer_id", "created", "currency") if (raw[c].str.strip() == "").any()]
    problems += [FieldProblem(f"stripe.{c}", f"empty in {int((raw[c].str.strip() == '').sum())} row(s) of {where}")
                 for c in blank]
    if (bad := currency_problem(raw["currency"], "stripe.currency", where)) is not None:
        problems.append(bad)
    chain = [c for c in CSV_PAYOUT_COLUMNS if c in raw.columns]
    if chain and chain != list(CSV_PAYOUT_COLUMNS):
        problems += [FieldProblem(f"stripe.{c}", f"column missing from {where} (the payout columns come together: "
                                                 f"{', '.join(CSV_PAYOUT_COLUMNS)})")
                     for c in CSV_PAYOUT_COLUMNS if c not in raw.columns]
    swept = raw[raw["payout_id"].str.strip() != ""] if chain == list(CSV_PAYOUT_COLUMNS) else raw.iloc[:0]
    if len(swept):
        status = swept["payout_status"].str.strip()
        if not status.isin(PAYOUT_STATUSES).all():
            first = status[~status.isin(PAYOUT_STATUSES)].iloc[0]
            problems.append(FieldProblem("stripe.payout_status", f"{first!r} in {where} is not one of "
                                                                 f"{', '.join(sorted(PAYOUT_STATUSES))}"))
        if (swept["destination_payment"].str.strip() == "").any():
            problems.append(FieldProblem("stripe.destination_payment", f"empty on a row with a payout_id in {where}"))
    created = _timestamps(raw["created"])
    arrival = _timestamps(swept["arrival_date"]) if len(swept) else pd.Series([], dtype="datetime64[us, UTC]")
    problems += [FieldProblem(f"stripe.{col}", f"not ISO 8601 or unix seconds in {where}")
                 for col, parsed in (("created", created), ("arrival_date", arrival)) if parsed is None]
    if problems:
        raise ParamsInvalid(problems, "Stripe export")
    raw["created"] = created
    raw["reversed"] = raw["reversed"].str.lower().isin(["true", "1", "yes"])
    if not len(swept):  # no payout columns, or no row with a payout
        return conform_transfers(raw), links_frame([])
    links = [{"destination_payment": dp.strip(), "payout_id": po.strip(), "account": acct.strip() or None,
              "payout_status": st.strip(), "arrival_date": None if pd.isna(at) else int(at.timestamp()),
              "failure_code": code.strip() or None}
             for dp, po, acct, st, at, code in zip(swept["destination_payment"], swept["payout_id"],
                                                   swept["destination"], swept["payout_status"], arrival,
                                                   swept["failure_code"], strict=True)]
    return conform_transfers(raw), links_frame(links)


def _timestamps(col: pd.Series) -> pd.Series | None:
    """ISO 8601 text or unix seconds → UTC timestamps (blank → NaT); None if any value is neither."""
    text = col.astype("string").str.strip()
    numeric = text.str.fullmatch(r"\d+").fillna(False).astype(bool)
    try:
        out = pd.Series(pd.NaT, index=col.index, dtype="datetime64[us, UTC]")
        if numeric.any():
            out[numeric] = pd.to_datetime(text[numeric].astype("int64"), unit="s", utc=True)
        iso = ~numeric & text.notna() & (text != "")
        if iso.any():
            out[iso] = pd.to_datetime(text[iso], utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return None
    return out
