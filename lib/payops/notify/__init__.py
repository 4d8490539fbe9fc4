"""Notifications: render the SOP's Slack post and studio email (Jinja2), send them (Slack webhook, SMTP)."""

from payops.notify.email import send_email
from payops.notify.render import (
    DRY_RUN_BANNER,
    REHEARSAL_BANNER,
    DeliveryResult,
    Drafts,
    PayoutNotice,
    header_text,
    mrkdwn_escape,
    render_drafts,
)
from payops.notify.slack import send_slack

__all__ = [
    "DRY_RUN_BANNER",
    "REHEARSAL_BANNER",
    "DeliveryResult",
    "Drafts",
    "PayoutNotice",
    "header_text",
    "mrkdwn_escape",
    "render_drafts",
    "send_email",
    "send_slack",
]
