"""The rehearsal's slot rule, its refusal, the ICS export and the scheduler's once-per-slot, with a controlled clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from icalendar import Calendar

from payops.config import Settings
from payops.errors import ConfigError
from payops.rehearsal import schedule

T0 = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)


def test_the_default_rule_is_a_week_or_more_before_every_live_cycle_for_ten_years() -> None:
    settings = Settings()
    slots = schedule.rehearsal_slots(settings, T0, years=10)
    assert len(slots) >= 40  # quarterly for ten years
    for slot in slots:
        cycle = schedule.next_cycle_after(settings, slot)
        assert cycle - slot >= timedelta(days=7), (slot, cycle)
    assert schedule.too_close(settings, T0) == []
    schedule.check_rule(settings, T0)  # no error


@pytest.mark.parametrize("tz", ["America/Toronto", "Asia/Tokyo"])
def test_the_default_rule_holds_in_other_payout_time_zones(tz: str) -> None:
    assert schedule.too_close(Settings(PAYOUT_TIMEZONE=tz), T0) == []


def test_the_old_second_tuesday_rule_is_refused_naming_the_dates() -> None:
    settings = Settings(PAYOPS_REHEARSAL_CRON="0 14 * 1,4,7,10 2#2")
    with pytest.raises(ConfigError) as err:
        schedule.check_rule(settings, T0)
    assert "PAYOPS_REHEARSAL_CRON" in str(err.value) and "2027-01-12 14:00 (cycle 2027-01-15 06:00)" in str(err.value)


def test_the_scheduler_refuses_a_bad_rule_at_start() -> None:
    from payops.scheduler import REHEARSAL, default_registry

    with pytest.raises(ConfigError, match="less than 7 days"):
        default_registry().get(REHEARSAL).schedule_for(Settings(PAYOPS_REHEARSAL_CRON="0 14 10 * *"))


def test_the_ics_file_parses_back_into_the_expected_events(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from payops.cli import app

    out = tmp_path / "rehearsals.ics"
    res = CliRunner().invoke(app, ["schedule", "export", "--ics", str(out), "--cron", "--after",
                                   "2026-12-07T05:00:00Z"])
    assert res.exit_code == 0, res.output
    assert "0 14 * 2,5,8,11 2#1 payops rehearse --dry-part" in res.output
    cal = Calendar.from_ical(out.read_bytes())
    events = cal.walk("VEVENT")
    assert [str(e["summary"]) for e in events] == [f"Payments Fallback Rehearsal REH-2027-Q{n}" for n in (1, 2, 3, 4)]
    first = events[0]
    assert first.decoded("dtstart") == datetime(2027, 2, 2, 14, 0, tzinfo=UTC)
    assert first.decoded("dtend") - first.decoded("dtstart") == timedelta(minutes=45)
    roles = sorted(str(a.params["CN"]) for a in first.get("attendee"))
    assert roles == ["Finance approver", "Operator (runs payops rehearse)", "Ops approver"]
    assert "REH-2027-Q1" in str(first["description"])


@pytest.mark.db
def test_a_restart_never_runs_the_rehearsal_slot_twice(migrated_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from payops.config import get_settings
    from payops.scheduler import REHEARSAL, Job, Scheduler, default_registry

    calls: list[datetime] = []
    real = default_registry().get(REHEARSAL)
    job = Job(REHEARSAL, real.schedule, lambda ctx: calls.append(ctx.slot.at) or {"run_id": None,
                                                                                  "status": "succeeded"},
              catch_up=True)
    settings = get_settings(fresh=True)
    slot = datetime(2027, 2, 2, 14, 0, tzinfo=UTC)
    at = slot + timedelta(seconds=30)
    Scheduler(settings, clock=lambda: at, jobs=[job]).tick(at)
    later = at + timedelta(minutes=1)
    Scheduler(settings, clock=lambda: later, jobs=[job]).tick(later)  # a restarted scheduler
    assert [c.astimezone(UTC) for c in calls] == [slot]
