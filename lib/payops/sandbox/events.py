"""``/v1/events`` and ``/v1/webhook_endpoints``.

Events are stored per account: platform events (``transfer.*``, and ``payment_intent.*``,
``charge.*``, ``charge.dispute.*`` of destination charges, which live on the platform) on the
platform, Connect events (``payout.*``, ``account.updated``) on the connected account, with
``event.account`` set — list them with the ``Stripe-Account`` header like Stripe. Webhook
endpoints (platform) receive every matching event, platform and Connect alike (the sandbox has no
separate Connect endpoints), signed by :mod:`payops.sandbox.webhooks`. The endpoint's ``secret``
is returned by create only.
"""

from __future__ import annotations

import secrets
from typing import Any

from payops.sandbox.api_errors import invalid_param, missing
from payops.sandbox.context import Ctx, expand, list_objects
from payops.sandbox.forms import Params
from payops.sandbox.state import PLATFORM, SandboxState, random_id

EVENT_TYPES = ("transfer.created", "transfer.reversed", "payout.created", "payout.paid", "payout.failed",
               "payout.canceled", "account.updated",
               "payment_intent.created", "payment_intent.succeeded", "payment_intent.payment_failed",
               "payment_intent.canceled", "charge.succeeded", "charge.failed",
               "charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.closed",
               "charge.dispute.funds_reinstated", "checkout.session.completed", "checkout.session.expired")


def _type_matcher(pattern: str) -> Any:
    if pattern.endswith(".*"):
        prefix = pattern[:-1]
        return lambda t: t.startswith(prefix)
    return lambda t: t == pattern


def list_events(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(["limit", "starting_after", "ending_before", "created", "type", "types",
                   "delivery_success"])
    kind = p.str("type")
    kinds = p.str_list("types")
    if kind and kinds:
        raise invalid_param("types", "You may only specify one of these parameters: type, types.")
    pred = None
    if kind and "*" not in kind:
        index = state.indexes.get(("events_type", ctx.account, kind))
    else:
        index = state.indexes.get(("events", ctx.account))
        matchers = [_type_matcher(k) for k in ([kind] if kind else kinds or [])]
        if matchers:
            pred = lambda oid: any(m(state.objects[oid]["type"]) for m in matchers)  # noqa: E731
    return list_objects(state, p, url="/v1/events", kind="event", index=index, predicate=pred)


def retrieve_event(state: SandboxState, ctx: Ctx, p: Params, evt_id: str) -> dict[str, Any]:
    evt = state.get(evt_id, "event", ctx.account)
    if evt is None:
        raise missing("event", evt_id)
    return expand(state, evt, p)


# --- webhook endpoints -------------------------------------------------------------------------
def _check_events(events: list[str] | None) -> list[str]:
    if not events:
        raise invalid_param("enabled_events", "Missing required param: enabled_events.", "parameter_missing")
    for name in events:
        if name != "*" and name not in EVENT_TYPES:
            raise invalid_param("enabled_events", f"Invalid enabled_events: {name}. The payops sandbox "
                                f"emits: *, {', '.join(EVENT_TYPES)}.")
    return events


def add_endpoint(state: SandboxState, *, url: str, enabled_events: list[str], secret: str | None = None,
                 description: str | None = None, metadata: dict[str, str] | None = None,
                 endpoint_id: str | None = None) -> dict[str, Any]:
    we_id = endpoint_id or random_id("we")
    endpoint = {
        "api_version": None, "application": None, "created": state.now_int(), "description": description,
        "enabled_events": enabled_events, "id": we_id, "livemode": False, "metadata": metadata or {},
        "object": "webhook_endpoint", "status": "enabled", "url": url,
    }
    state.add(endpoint, PLATFORM, [("webhook_endpoints",)])
    state.webhook_secrets[we_id] = secret or "whsec_" + secrets.token_hex(16)
    return endpoint


def create_endpoint(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(["url", "enabled_events", "description", "metadata", "api_version", "connect"])
    ctx.require_platform("Webhook endpoints")
    url = p.str("url", required=True)
    assert url is not None
    if not url.startswith(("http://", "https://")):
        raise invalid_param("url", f"Invalid URL: {url}. URLs must begin with http:// or https://.",
                            "url_invalid")
    endpoint = add_endpoint(state, url=url, enabled_events=_check_events(p.str_list("enabled_events")),
                            description=p.str("description"), metadata=p.metadata() or {})
    if p.has("api_version"):
        endpoint["api_version"] = p.str("api_version")
    return {**endpoint, "secret": state.webhook_secrets[endpoint["id"]]}


def _get_endpoint(state: SandboxState, we_id: str) -> dict[str, Any]:
    endpoint = state.get(we_id, "webhook_endpoint", PLATFORM)
    if endpoint is None:
        raise missing("webhook_endpoint", we_id)
    return endpoint


def retrieve_endpoint(state: SandboxState, ctx: Ctx, p: Params, we_id: str) -> dict[str, Any]:
    return expand(state, _get_endpoint(state, we_id), p)


def update_endpoint(state: SandboxState, ctx: Ctx, p: Params, we_id: str) -> dict[str, Any]:
    p.check_known(["url", "enabled_events", "description", "metadata", "disabled"])
    endpoint = _get_endpoint(state, we_id)
    if p.has("url"):
        endpoint["url"] = p.str("url", required=True)
    if p.has("enabled_events"):
        endpoint["enabled_events"] = _check_events(p.str_list("enabled_events"))
    if p.has("description"):
        endpoint["description"] = p.str("description") or None
    meta = p.metadata()
    if meta is not None:
        endpoint["metadata"] = {k: v for k, v in {**endpoint["metadata"], **meta}.items() if v != ""}
    disabled = p.bool("disabled")
    if disabled is not None:
        endpoint["status"] = "disabled" if disabled else "enabled"
    state.dirty = True
    return endpoint


def delete_endpoint(state: SandboxState, ctx: Ctx, p: Params, we_id: str) -> dict[str, Any]:
    _get_endpoint(state, we_id)
    state.remove(we_id)
    state.webhook_secrets.pop(we_id, None)
    return {"deleted": True, "id": we_id, "object": "webhook_endpoint"}


def list_endpoints(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(["limit", "starting_after", "ending_before"])
    return list_objects(state, p, url="/v1/webhook_endpoints", kind="webhook_endpoint",
                        index=state.indexes.get(("webhook_endpoints",)))


def endpoints_for(state: SandboxState, event_type: str) -> list[tuple[dict[str, Any], str]]:
    """Enabled endpoints subscribed to ``event_type``, with their secrets."""
    idx = state.indexes.get(("webhook_endpoints",))
    out = []
    for we_id in idx.ids if idx else []:
        endpoint = state.objects[we_id]
        if endpoint["status"] == "enabled" and (
                "*" in endpoint["enabled_events"] or event_type in endpoint["enabled_events"]):
            out.append((endpoint, state.webhook_secrets[we_id]))
    return out
