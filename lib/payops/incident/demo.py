"""``make incident-demo``: one checkout incident played offline from alert to close (scenario B, payment window).

Starts the Stripe sandbox, the webhook receiver and a local S3 (moto) in this process and uses this machine's
Redis and RabbitMQ (``PAYOPS_REDIS_URL`` / ``PAYOPS_AMQP_URL``, default 127.0.0.1) under a fresh key prefix and
queue names, removed at the end; an embedded SQLite database and archive under ``var/incident-demo/`` (recreated
each time). Plants the symptom — four Checkout Sessions left open for 26 hours with payment-window keys that never
expire — then runs the runbook as on-call would: the dry run, a second person's approval, the live run, the
verification and the close, and verifies the archive.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from payops import demo_data

OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"
APPROVER = "dddddddd-0000-4000-8000-000000000004"
INCIDENT = "INC-DEMO-CHECKOUT-001"


def _services_problem(redis_url: str, amqp_url: str) -> str | None:
    import pika
    import redis

    from payops.incident.services import redact_url

    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except redis.exceptions.RedisError as exc:
        return f"Redis at {redact_url(redis_url)} is unreachable: {exc}"
    try:
        params = pika.URLParameters(amqp_url)
        params.connection_attempts, params.socket_timeout = 1, 3
        pika.BlockingConnection(params).close()
    except pika.exceptions.AMQPError as exc:
        return f"RabbitMQ at {redact_url(amqp_url)} is unreachable: {exc!r}"
    return None


def main() -> None:
    console = Console(highlight=False)
    redis_url = os.environ.get("PAYOPS_REDIS_URL", "redis://127.0.0.1:6379/0")
    amqp_url = os.environ.get("PAYOPS_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    problem = _services_problem(redis_url, amqp_url)
    if problem:
        console.print(f"[red]error:[/] {problem} — the incident demo needs this machine's Redis and RabbitMQ")
        raise SystemExit(16)
    from payops.incident.world import CheckoutWorld, serve_receiver, start_s3
    from payops.sandbox.testing import start_sandbox

    var = Path("var/incident-demo").resolve()
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    tag = uuid.uuid4().hex[:8]
    console.print(Panel.fit("payops incident demo — checkout incident, payment window not expiring (offline)"))
    sb = start_sandbox(seed="demo", rate_limit=0)
    s3 = start_s3()
    receiver = None
    os.environ.update({
        "PAYOPS_STRIPE_API_BASE": sb.url, "STRIPE_SECRET_KEY": demo_data.PLATFORM_KEY,
        "STRIPE_FALLBACK_SECRET_KEY": demo_data.FALLBACK_KEY, "STRIPE_WEBHOOK_SECRET": demo_data.WEBHOOK_SECRET,
        "PAYOPS_DATABASE_URL": f"sqlite:///{var / 'payops.db'}", "PAYOPS_OUTPUT_DIR": str(var / "outputs"),
        "PAYOPS_ENVIRONMENT": "test", "PAYOPS_OPERATOR_ID": OPERATOR,
        "PAYOPS_REDIS_URL": redis_url, "PAYOPS_REDIS_KEY_PREFIX": f"payops-demo-{tag}:", "PAYOPS_AMQP_URL": amqp_url,
        "PAYOPS_RETRY_QUEUE": f"payops-demo-{tag}.checkout.retry",
        "PAYOPS_DEAD_LETTER_QUEUE": f"payops-demo-{tag}.checkout.dlq",
        "PAYOPS_S3_ENDPOINT_URL": s3.url, "PAYOPS_S3_BUCKET": f"payops-demo-{tag}-receipts",
        "PAYOPS_S3_ACCESS_KEY_ID": "AKIAPAYOPSDEMO", "PAYOPS_S3_SECRET_ACCESS_KEY": f"demo-secret-{uuid.uuid4().hex}",
    })
    from payops import db
    from payops.approvals.testkeys import enroll_test_roster
    from payops.archive import verify_archive
    from payops.config import get_settings
    from payops.incident import cli

    settings = get_settings(fresh=True)
    try:
        db.upgrade()
        receiver = serve_receiver(settings)
        world = CheckoutWorld(settings, sb)
        world.subscribe(receiver.url, demo_data.WEBHOOK_SECRET)
        world.bucket()
        world.backlog(0, minutes_ago=0)
        console.print(f"Stripe sandbox {sb.url} · receiver {receiver.url} · S3 {s3.url} · Redis {redis_url} · "
                      f"RabbitMQ queues {settings.retry_queue} · database {var / 'payops.db'}")
        console.rule("[bold]The world: 3 winners paid, 4 checkouts stuck open for 26 h")
        paid = [p["session"]["id"] for p in world.checkouts(3, tag="demo")]
        world.receipts(paid)
        stale = world.stale_sessions(4, hours_ago=26, tag="demo")
        world.payment_windows([cs["id"] for cs in stale], None)
        fresh = [world.session(f"AUC-demo-F{i}", f"fresh{i}@example.com")["id"] for i in range(2)]
        world.payment_windows(fresh, 1800)
        console.print("ALERT (monitoring): Checkout Sessions open past 24 h — on call opens " + INCIDENT)

        console.rule("[bold]1. Triage, dry run")
        cli.checkout_cmd(scenario="payment-window", incident_id=INCIDENT, since="30m", dry_run=True, live=False,
                         yes=False)
        console.rule("[bold]2. A second person on the approver roster signs the list (test-only keys made now)")
        (var / "keys").mkdir(mode=0o700)
        team = enroll_test_roster(var / "keys", [("operator", OPERATOR, "Oscar Operator (demo)", ("operator",)),
                                                 ("ops", APPROVER, "Olivia Ops (demo)", ("ops",))],
                                  by=OPERATOR, settings=settings)
        cli.approve_cmd(INCIDENT, key=team["ops"].key_path)
        console.rule("[bold]3. Live: expire the listed sessions through Stripe, clear their keys")
        cli.checkout_cmd(scenario="payment-window", incident_id=INCIDENT, since="30m", dry_run=False, live=True,
                         yes=False)
        console.rule("[bold]4. Verification (the runbook's five steps)")
        world.sandbox.set_faults(checkout_expiry_paused=False)
        cli.verify_cmd(INCIDENT, since="30m")
        console.rule("[bold]5. Close: summary for the incidents page, record sealed")
        cli.close_cmd(INCIDENT)
        summary = next((var / "outputs").glob("incident_close/*/*/summary.md"))
        console.print(Panel(summary.read_text(), title=str(summary)))
        report = verify_archive(settings.output_dir)
        console.print(("[green]✓ archive verifies[/]" if report.ok else f"[red]✗ {report.first_problem}[/]")
                      + f" — {report.runs_checked} run(s) in the chain")
        if not report.ok:
            raise SystemExit(9)
    finally:
        shutil.rmtree(var / "keys", ignore_errors=True)  # the generated test-only keys never outlive the demo
        if receiver is not None:
            receiver.stop()
        _cleanup(settings)
        s3.stop()
        sb.stop()


def _cleanup(settings: object) -> None:
    import pika
    import redis

    st = settings  # the demo's own prefix and queue names only
    r = redis.Redis.from_url(st.redis_url)  # type: ignore[attr-defined]
    keys = list(r.scan_iter(match=st.redis_key_prefix + "*"))  # type: ignore[attr-defined]
    if keys:
        r.delete(*keys)
    r.close()
    conn = pika.BlockingConnection(pika.URLParameters(st.amqp_url))  # type: ignore[attr-defined]
    ch = conn.channel()
    for q in (st.retry_queue, st.dead_letter_queue):  # type: ignore[attr-defined]
        ch.queue_delete(q)
    conn.close()


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as exc:
        print(f"incident demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise
