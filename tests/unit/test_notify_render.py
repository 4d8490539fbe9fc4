"""Rendering of the SOP step-40 messages: content, escaping, markers, exact amounts, drafts on disk."""

from __future__ import annotations

import json
from dataclasses import replace
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from payops.errors import ParamsInvalid
from payops.money import Money
from payops.notify import DRY_RUN_BANNER, REHEARSAL_BANNER, PayoutNotice, render_drafts

OPS = "6f1c2a7e-0000-4000-8000-00000000000a"
FIN = "6f1c2a7e-0000-4000-8000-00000000000b"
OPERATOR = "6f1c2a7e-0000-4000-8000-00000000000c"
SENDER = "Payments Ops <payments-ops@example.com>"


def notice(**over: object) -> PayoutNotice:
    base = PayoutNotice(
        run_id="run-20261123-abc",
        incident_id="INC-4821",
        incident_url="https://incidents.example.com/INC-4821?tab=timeline&x=1",
        studio_id="3c5e8f1a-1111-4222-8333-444455556666",
        studio_name="Pixel Forge Studio",
        studio_email="payouts@pixelforge.example",
        ledger_payout_id="lp_7Hk2",
        amount=Money(87550, "CAD"),
        reason="Automated payout failed: account_closed",
        reserve_after=Money(12345, "CAD"),
        transfer_id="tr_1QabcDEF",
        approver_ops_id=OPS,
        approver_finance_id=FIN,
        operator_id=OPERATOR,
        is_rehearsal=False,
        dry_run=False,
    )
    return replace(base, **over)  # type: ignore[arg-type]


def texts(n: PayoutNotice) -> tuple[str, str, str, str, dict]:
    d = render_drafts(n, sender=SENDER)
    return d.slack_payload["text"], str(d.email["Subject"]), d.email_text, d.email_html, d.slack_payload


def test_content_everywhere() -> None:
    slack, subject, text, html, payload = texts(notice())
    for body in (slack, text, html):
        assert "875.50 CAD" in body
        assert "tr_1QabcDEF" in body
        assert "INC-4821" in body
        assert "lp_7Hk2" in body
        assert "123.45 CAD" in body
        assert "Pixel Forge Studio" in body
        assert "account_closed" in body
        for person in (OPS, FIN, OPERATOR):
            assert person in body
    assert "875.50 CAD" in subject and "Pixel Forge Studio" in subject and "INC-4821" in subject
    # the incident link: a Slack link token with & escaped, and an <a href> in HTML
    assert "<https://incidents.example.com/INC-4821?tab=timeline&amp;x=1|INC-4821>" in slack
    assert 'href="https://incidents.example.com/INC-4821?tab=timeline&amp;x=1"' in html
    assert payload["channel"] == "#payments-alerts"
    assert payload["blocks"][1]["text"]["text"] == slack
    assert "[REHEARSAL]" not in slack + subject and "DRY RUN" not in slack + subject + text


def test_email_headers_and_parts() -> None:
    d = render_drafts(notice(), sender=SENDER)
    assert str(d.email["From"]) == SENDER
    assert str(d.email["To"]) == "Pixel Forge Studio <payouts@pixelforge.example>"
    assert d.email["Message-ID"].endswith("@example.com>")
    assert d.email.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in d.email.iter_parts()] == ["text/plain", "text/html"]


@pytest.mark.parametrize(
    ("amount", "reserve", "shown", "reserve_shown"),
    [
        (Money(1250000, "JPY"), Money(0, "JPY"), "1,250,000 JPY", "0 JPY"),
        (Money(1234567, "KWD"), Money(5, "KWD"), "1,234.567 KWD", "0.005 KWD"),
        (Money(100000001, "CAD"), Money(1, "CAD"), "1,000,000.01 CAD", "0.01 CAD"),
    ],
)
def test_exact_amounts(amount: Money, reserve: Money, shown: str, reserve_shown: str) -> None:
    slack, subject, text, html, _ = texts(notice(amount=amount, reserve_after=reserve))
    for body in (slack, text, html):
        assert shown in body and reserve_shown in body
    assert shown in subject


@pytest.mark.parametrize(
    "name",
    ["<!channel> & Co", "<https://evil.example|click here>", "</td><script>alert(1)</script>", "<@U123ABC>"],
)
def test_hostile_names_are_escaped(name: str) -> None:
    slack, subject, text, html, payload = texts(notice(studio_name=name))
    # Slack: no raw < > & from data survive, so no mention or link token can form
    escaped = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert escaped in slack
    assert name not in slack
    for block in payload["blocks"]:
        assert name not in json.dumps(block, ensure_ascii=False)
    assert "<!channel>" not in slack and "<https://evil" not in slack and "<@U" not in slack
    # HTML: autoescaped
    assert "<script>" not in html and "</td><script>" not in html and "<!channel>" not in html
    assert "&lt;" in html
    # plain text and subject: verbatim (not markup), single line
    assert name in text
    assert name in subject


def test_slack_link_in_incident_id_is_escaped() -> None:
    slack, *_ = texts(notice(incident_id="<!here>", incident_url="javascript:alert(1)"))
    assert "<!here>" not in slack and "&lt;!here&gt;" in slack
    assert "<javascript:" not in slack  # a non-http URL is never made a link


def test_header_injection_is_impossible() -> None:
    d = render_drafts(notice(studio_name="Evil\r\nBcc: victim@example.com\nX-Spam: 1", incident_id="INC\r\n1"),
                      sender=SENDER)
    raw = bytes(d.email)
    head = raw.split(b"\n\n", 1)[0]
    assert b"\nBcc:" not in head and b"\nX-Spam:" not in head
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None
    assert "Evil Bcc: victim@example.com X-Spam: 1" in str(parsed["Subject"])
    assert parsed["To"].addresses[0].addr_spec == "payouts@pixelforge.example"


@pytest.mark.parametrize("bad", ["a@b.example\r\nBcc: x@y.example", "not an address", "x@y.example, z@w.example"])
def test_bad_studio_email_is_refused(bad: str) -> None:
    with pytest.raises(ParamsInvalid) as info:
        render_drafts(notice(studio_email=bad), sender=SENDER)
    assert "studio_email" in info.value.fields


def test_bad_sender_is_refused() -> None:
    with pytest.raises(ParamsInvalid) as info:
        render_drafts(notice(), sender="ops@example.com\r\nBcc: x@y.example")
    assert info.value.fields == ["sender"]


def test_unicode_names_are_encoded_in_headers() -> None:
    name = "Studio Ø Ñ 東京"
    d = render_drafts(notice(studio_name=name), sender=SENDER)
    raw = bytes(d.email)
    head = raw.split(b"\n\n", 1)[0]
    head.decode("ascii")  # every header is 7-bit: non-ASCII is RFC 2047 encoded
    assert b"=?utf-8?" in head
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["To"].addresses[0].display_name == name
    assert name in str(parsed["Subject"])
    assert name in parsed.get_body(("plain",)).get_content()
    assert name in parsed.get_body(("html",)).get_content()
    assert name in d.slack_payload["text"]


def test_rehearsal_markers() -> None:
    slack, subject, text, html, payload = texts(notice(is_rehearsal=True))
    assert slack.startswith("[REHEARSAL] ")
    assert subject.startswith("[REHEARSAL] ")
    for body in (slack, text, html):
        assert REHEARSAL_BANNER in body
    assert payload["blocks"][0]["text"]["text"].startswith("[REHEARSAL]")


def test_dry_run_markers() -> None:
    slack, subject, text, html, _ = texts(notice(dry_run=True, transfer_id=None))
    assert slack.startswith("[DRY RUN] ")
    assert subject.startswith("[DRY RUN] ")
    for body in (slack, text, html):
        assert DRY_RUN_BANNER in body
        assert "tr_" not in body


def test_rehearsal_dry_run_both_markers() -> None:
    slack, subject, *_ = texts(notice(dry_run=True, transfer_id=None, is_rehearsal=True))
    assert slack.startswith("[REHEARSAL] [DRY RUN] ")
    assert subject.startswith("[REHEARSAL] [DRY RUN] ")


def test_missing_approvers_are_shown_as_not_recorded() -> None:
    slack, _s, text, html, _ = texts(notice(approver_ops_id=None, approver_finance_id=None, operator_id=None))
    for body in (slack, text, html):
        assert "(not recorded)" in body


def test_write_saves_four_files_and_refuses_to_overwrite(tmp_path: Path) -> None:
    d = render_drafts(notice(studio_name="Studio Ø 東京"), sender=SENDER)
    paths = d.write(tmp_path / "drafts")
    assert [p.name for p in paths] == ["slack.json", "email.eml", "email.html", "email.txt"]
    assert json.loads(paths[0].read_text(encoding="utf-8")) == d.slack_payload
    parsed = message_from_bytes(paths[1].read_bytes(), policy=policy.default)
    assert str(parsed["Subject"]) == str(d.email["Subject"])
    assert "875.50 CAD" in paths[2].read_text(encoding="utf-8")
    assert paths[3].read_text(encoding="utf-8") == d.email_text
    before = {p: p.read_bytes() for p in paths}
    with pytest.raises(FileExistsError):
        d.write(tmp_path / "drafts")
    assert {p: p.read_bytes() for p in paths} == before


def test_write_refuses_when_any_one_file_exists(tmp_path: Path) -> None:
    (tmp_path / "email.txt").write_text("earlier draft")
    with pytest.raises(FileExistsError, match=r"email\.txt"):
        render_drafts(notice(), sender=SENDER).write(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["email.txt"]
    assert (tmp_path / "email.txt").read_text() == "earlier draft"
