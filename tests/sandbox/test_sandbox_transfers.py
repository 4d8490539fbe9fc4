"""Transfers, reversals and money rules through the official SDK."""

from __future__ import annotations

import pytest
import stripe
from sandbox_helpers import STUDIO_A, STUDIO_B, STUDIO_C, transfer_params

from payops import demo_data
from payops.sandbox.testing import RunningSandbox


def test_create_retrieve_update_transfer(client: stripe.StripeClient) -> None:
    tr = client.v1.transfers.create(params=transfer_params(
        87_550, metadata={"ledger_payout_id": demo_data.REHEARSAL_LEDGER_PAYOUT_ID},
        transfer_group=demo_data.REHEARSAL_LEDGER_PAYOUT_ID, description="manual payout"))
    assert tr.id.startswith("tr_") and tr.amount == 87_550 and tr.currency == "cad"
    assert tr.destination == STUDIO_A and tr.destination_payment.startswith("py_")
    assert tr.livemode is False and tr.reversed is False and tr.amount_reversed == 0
    assert tr.metadata["ledger_payout_id"] == demo_data.REHEARSAL_LEDGER_PAYOUT_ID
    assert tr.last_response.headers["Request-Id"].startswith("req_")
    got = client.v1.transfers.retrieve(tr.id)
    assert got.to_dict() == tr.to_dict()
    upd = client.v1.transfers.update(tr.id, params={"metadata": {"note": "x"}, "description": "changed"})
    assert upd.metadata.to_dict() == {"ledger_payout_id": demo_data.REHEARSAL_LEDGER_PAYOUT_ID, "note": "x"}
    assert upd.description == "changed"
    upd = client.v1.transfers.update(tr.id, params={"metadata": {"note": ""}})
    assert "note" not in upd.metadata
    found = client.v1.transfers.list(params={"transfer_group": demo_data.REHEARSAL_LEDGER_PAYOUT_ID})
    assert [t.id for t in found.data] == [tr.id]


def test_seeded_history(client: stripe.StripeClient) -> None:
    paid = [hp for hp in demo_data.demo_history() if hp.transfer_id]
    planted = {pt.transfer_id for pt in demo_data.recon_demo_transfers()}
    listed = list(client.v1.transfers.list(params={"limit": 100}).auto_paging_iter())
    assert {t.id for t in listed} == {hp.transfer_id for hp in paid} | planted
    hp = paid[0]
    tr = client.v1.transfers.retrieve(hp.transfer_id)
    assert tr.amount == hp.net and tr.transfer_group == hp.ledger_payout_id
    assert tr.metadata.to_dict() == {"ledger_payout_id": hp.ledger_payout_id, "run_id": hp.run_id,
                                     "studio_id": hp.studio.studio_id, "source": "automated",
                                     "cycle_date": hp.cycle_date.isoformat()}
    assert tr.created == int(hp.transferred_at.timestamp())
    pending = client.v1.transfers.list(params={"transfer_group": demo_data.REHEARSAL_LEDGER_PAYOUT_ID})
    assert pending.data == []
    po = client.v1.payouts.retrieve(hp.payout_id, options={"stripe_account": hp.studio.account_id})
    assert po.status == "paid" and po.arrival_date == tr.created + 2 * 86400


def test_list_filters(client: stripe.StripeClient) -> None:
    a = client.v1.transfers.create(params=transfer_params(100))
    b = client.v1.transfers.create(params=transfer_params(200, "usd", STUDIO_B, transfer_group="g1"))
    by_dest = client.v1.transfers.list(params={"destination": STUDIO_B, "limit": 100})
    assert b.id in [t.id for t in by_dest.data] and a.id not in [t.id for t in by_dest.data]
    assert all(t.destination == STUDIO_B for t in by_dest.data)
    assert [t.id for t in client.v1.transfers.list(params={"transfer_group": "g1"}).data] == [b.id]


def test_created_filters(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    first = client.v1.transfers.create(params=transfer_params(100))
    sb.advance_clock(100)
    second = client.v1.transfers.create(params=transfer_params(100))
    ids = lambda **c: [t.id for t in client.v1.transfers.list(params={"created": c, "limit": 100}).data]  # noqa: E731
    assert ids(gte=second.created) == [second.id]
    assert ids(gt=first.created) == [second.id]
    assert first.id in ids(lt=second.created) and second.id not in ids(lt=second.created)
    assert ids(gte=first.created, lte=first.created) == [first.id]
    exact = client.v1.transfers.list(params={"created": second.created})
    assert [t.id for t in exact.data] == [second.id]


def test_pagination_over_1000_objects(client: stripe.StripeClient) -> None:
    created = {client.v1.transfers.create(params=transfer_params(1, "usd", STUDIO_B)).id for _ in range(1_050)}
    seen = [t.id for t in client.v1.transfers.list(params={"limit": 100, "destination": STUDIO_B})
            .auto_paging_iter()]
    assert len(seen) == len(set(seen)) and created <= set(seen)
    # manual walk with starting_after, then back with ending_before
    pages, cursor = [], None
    while True:
        params: dict[str, object] = {"limit": 37}
        if cursor:
            params["starting_after"] = cursor
        page = client.v1.transfers.list(params=params)
        pages.append([t.id for t in page.data])
        if not page.has_more:
            break
        cursor = page.data[-1].id
    flat = [i for p in pages for i in p]
    seeded = sum(1 for hp in demo_data.demo_history() if hp.transfer_id) + len(demo_data.recon_demo_transfers())
    assert len(flat) == len(set(flat)) == len(created) + seeded
    created_order = [client.v1.transfers.retrieve(i).created for i in flat[:5]]
    assert created_order == sorted(created_order, reverse=True)
    back = client.v1.transfers.list(params={"limit": 37, "ending_before": pages[2][0]})
    assert [t.id for t in back.data] == pages[1] and back.has_more is True
    first = client.v1.transfers.list(params={"limit": 37, "ending_before": pages[1][0]})
    assert [t.id for t in first.data] == pages[0] and first.has_more is False


def test_limit_bounds(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.list(params={"limit": 101})
    assert err.value.param == "limit"


def test_reversals_partial_then_full(client: stripe.StripeClient) -> None:
    tr = client.v1.transfers.create(params=transfer_params(1_000))
    before = _available(client, "cad")
    part = client.v1.transfers.reversals.create(tr.id, params={"amount": 300, "metadata": {"why": "test"}})
    assert part.object == "transfer_reversal" and part.amount == 300 and part.transfer == tr.id
    tr = client.v1.transfers.retrieve(tr.id)
    assert tr.amount_reversed == 300 and tr.reversed is False and tr.reversals.data[0].id == part.id
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.reversals.create(tr.id, params={"amount": 701})
    assert err.value.param == "amount"
    rest = client.v1.transfers.reversals.create(tr.id)
    assert rest.amount == 700
    tr = client.v1.transfers.retrieve(tr.id)
    assert tr.reversed is True and tr.amount_reversed == 1_000
    assert _available(client, "cad") == before + 1_000
    listed = client.v1.transfers.reversals.list(tr.id)
    assert [r.id for r in listed.data] == [rest.id, part.id]
    assert client.v1.transfers.reversals.retrieve(tr.id, part.id).metadata["why"] == "test"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.reversals.create(tr.id, params={"amount": 1})
    events = client.v1.events.list(params={"type": "transfer.reversed"})
    assert len(events.data) == 2 and events.data[0].data.object.id == tr.id


def _available(client: stripe.StripeClient, currency: str, account: str | None = None) -> int:
    opts = {"stripe_account": account} if account else {}
    bal = client.v1.balance.retrieve(options=opts)  # type: ignore[arg-type]
    return next(b.amount for b in bal.available if b.currency == currency)


def test_balance_insufficient(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.create(params=transfer_params(demo_data.PLATFORM_BALANCE["usd"] + 1, "usd", STUDIO_B))
    assert err.value.code == "balance_insufficient" and err.value.http_status == 400
    assert err.value.request_id and err.value.request_id.startswith("req_")
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.create(params=transfer_params(5, "eur"))
    assert err.value.code == "balance_insufficient"


def test_amount_must_be_a_positive_integer(client: stripe.StripeClient) -> None:
    for bad in (875.5, "875.50", "abc"):
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.v1.transfers.create(params=transfer_params(bad))  # type: ignore[arg-type]
        assert err.value.code == "parameter_invalid_integer" and err.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.create(params=transfer_params(0))
    assert err.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.create(params={"currency": "cad", "destination": STUDIO_A})
    assert err.value.code == "parameter_missing" and err.value.param == "amount"


def test_destination_must_be_able_to_receive(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.create(params=transfer_params(100, destination=STUDIO_C))
    assert err.value.code == "insufficient_capabilities_for_transfer" and err.value.param == "destination"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.create(params=transfer_params(100, destination="acct_nope"))
    assert err.value.code == "resource_missing" and err.value.param == "destination"


def test_retrieve_missing_is_404(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.retrieve("tr_missing")
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
