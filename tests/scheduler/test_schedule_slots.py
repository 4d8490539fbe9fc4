"""Which slots each job has: the default (UTC) schedule, America/Toronto across DST changes, offsets,
the repeated hour, bad configuration — and `payops schedule next` (no database needed)."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from sched_helpers import utc
from typer.testing import CliRunner

from payops.config import Settings
from payops.errors import ConfigError
from payops.scheduler import (
    MONITOR_CHECK,
    PAYOUT_CYCLE,
    POST_RUN_CHECK,
    PRE_RUN_CHECK,
    RECONCILIATION,
    REHEARSAL,
    Schedule,
    Scheduler,
    upcoming,
)
from payops.scheduler.cli import schedule_app

TORONTO = ZoneInfo("America/Toronto")


def _slots(settings: Settings, job: str, after, count: int = 4):  # type: ignore[no-untyped-def]
    return [s for name, s in upcoming(settings, after, count=count, job=job) if name == job]


def test_default_schedule_is_1st_and_15th_at_0600_utc_with_checks_around_it() -> None:
    settings = Settings(PAYOUT_TIMEZONE="UTC")
    after = utc(2026, 2, 20)
    assert [s.at for s in _slots(settings, PAYOUT_CYCLE, after)] == [
        utc(2026, 3, 1, 6), utc(2026, 3, 15, 6), utc(2026, 4, 1, 6), utc(2026, 4, 15, 6)]
    assert [s.at for s in _slots(settings, PRE_RUN_CHECK, after, 2)] == [utc(2026, 3, 1, 5), utc(2026, 3, 15, 5)]
    assert [s.at for s in _slots(settings, POST_RUN_CHECK, after, 2)] == [
        utc(2026, 3, 1, 6, 30), utc(2026, 3, 15, 6, 30)]
    # first Tuesday of Feb/May/Aug/Nov at 14:00 (at least 7 days before the 15th's cycle)
    assert [s.at for s in _slots(settings, REHEARSAL, after, 3)] == [
        utc(2026, 5, 5, 14), utc(2026, 8, 4, 14), utc(2026, 11, 3, 14)]
    # the previous month reconciled on the 4th at 09:00, after its 3-day cut-off margin
    assert [s.at for s in _slots(settings, RECONCILIATION, after, 2)] == [utc(2026, 3, 4, 9), utc(2026, 4, 4, 9)]
    # the monitoring check every 5 minutes
    assert [s.at for s in _slots(settings, MONITOR_CHECK, after, 2)] == [utc(2026, 2, 20, 0, 5),
                                                                         utc(2026, 2, 20, 0, 10)]
    everything = upcoming(settings, after, count=1)
    assert [name for name, _ in everything] == [MONITOR_CHECK, PRE_RUN_CHECK, PAYOUT_CYCLE, POST_RUN_CHECK,
                                                RECONCILIATION, REHEARSAL]


def test_toronto_slots_stay_at_0600_local_across_both_dst_changes() -> None:
    settings = Settings(PAYOUT_TIMEZONE="America/Toronto")
    spring = _slots(settings, PAYOUT_CYCLE, utc(2026, 2, 20), 2)  # DST starts 2026-03-08
    assert [s.at for s in spring] == [utc(2026, 3, 1, 11), utc(2026, 3, 15, 10)]
    assert [s.at.astimezone(TORONTO).strftime("%H:%M %Z") for s in spring] == ["06:00 EST", "06:00 EDT"]
    autumn = _slots(settings, PAYOUT_CYCLE, utc(2026, 10, 10), 2)  # DST ends 2026-11-01 at 02:00
    assert [s.at for s in autumn] == [utc(2026, 10, 15, 10), utc(2026, 11, 1, 11)]
    assert [s.cycle_date for s in autumn] == [date(2026, 10, 15), date(2026, 11, 1)]
    pre = _slots(settings, PRE_RUN_CHECK, utc(2026, 2, 20), 2)
    assert [s.at.astimezone(TORONTO).strftime("%H:%M") for s in pre] == ["05:00", "05:00"]
    assert [s.at for s in pre] == [utc(2026, 3, 1, 10), utc(2026, 3, 15, 9)]


def test_a_repeated_wall_clock_time_fires_once_and_a_skipped_one_still_fires() -> None:
    fall = Schedule("30 1 * * *").between(TORONTO, utc(2026, 10, 31), utc(2026, 11, 3))
    assert [s.at for s in fall] == [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    spring = Schedule("30 2 * * *").between(TORONTO, utc(2026, 3, 7), utc(2026, 3, 10))
    assert [s.cycle_date for s in spring] == [date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)]
    assert len(Schedule("30 1 * * *").upcoming(TORONTO, utc(2026, 10, 31, 12), 3)) == 3


def test_an_offset_across_midnight_keeps_the_cycle_date_of_its_payout_slot() -> None:
    settings = Settings(PAYOUT_TIMEZONE="UTC", PAYOUT_SCHEDULE_CRON="30 0 1,15 * *",
                        PAYOPS_PRE_RUN_MINUTES_BEFORE=60)
    (pre,) = _slots(settings, PRE_RUN_CHECK, utc(2026, 2, 20), 1)
    assert pre.at == utc(2026, 2, 28, 23, 30) and pre.cycle_date == date(2026, 3, 1)


@pytest.mark.parametrize(("env", "needle"), [
    ({"PAYOUT_SCHEDULE_CRON": "0 6 32 * *"}, "PAYOUT_SCHEDULE_CRON"),
    ({"PAYOPS_REHEARSAL_CRON": "every quarter"}, "PAYOPS_REHEARSAL_CRON"),
    ({"PAYOUT_TIMEZONE": "Mars/Olympus"}, "PAYOUT_TIMEZONE"),
])
def test_bad_configuration_is_refused_when_the_scheduler_is_built(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Scheduler(Settings(**env))


def test_cli_schedule_next_prints_local_and_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    from payops.config import get_settings

    monkeypatch.setenv("PAYOUT_TIMEZONE", "America/Toronto")
    get_settings(fresh=True)
    try:
        res = CliRunner().invoke(schedule_app, ["next", "--count", "2", "--job", PAYOUT_CYCLE,
                                                "--after", "2026-02-20T00:00:00Z"])
        assert res.exit_code == 0, res.stdout + res.stderr
        assert "slot (America/Toronto)" in res.stdout and "slot (UTC)" in res.stdout
        lines = [line for line in res.stdout.splitlines() if PAYOUT_CYCLE in line]
        assert len(lines) == 2
        assert "2026-03-01 06:00 EST" in lines[0] and "2026-03-01 11:00 UTC" in lines[0]
        assert "2026-03-15 06:00 EDT" in lines[1] and "2026-03-15 10:00 UTC" in lines[1]
        assert PRE_RUN_CHECK not in res.stdout

        res = CliRunner().invoke(schedule_app, ["next", "--count", "1", "--after", "2026-02-20T00:00:00Z"])
        assert res.exit_code == 0, res.stdout + res.stderr
        for job in (PRE_RUN_CHECK, PAYOUT_CYCLE, POST_RUN_CHECK, REHEARSAL):
            assert job in res.stdout
        assert "2026-03-01 05:00 EST" in res.stdout and "2026-05-05 14:00 EDT" in res.stdout

        res = CliRunner().invoke(schedule_app, ["next", "--job", "nope"])
        assert res.exit_code == 2 and "unknown job 'nope'" in res.stderr
    finally:
        monkeypatch.delenv("PAYOUT_TIMEZONE")
        get_settings(fresh=True)


def test_cli_schedule_next_in_utc_prints_one_slot_column(monkeypatch: pytest.MonkeyPatch) -> None:
    """PAYOUT_TIMEZONE=UTC (the default): the local column would repeat the UTC one, so there is one."""
    from payops.config import get_settings

    monkeypatch.setenv("PAYOUT_TIMEZONE", "UTC")
    get_settings(fresh=True)
    try:
        res = CliRunner().invoke(schedule_app, ["next", "--count", "1", "--job", PAYOUT_CYCLE,
                                                "--after", "2026-02-20T00:00:00Z"], env={"COLUMNS": "120"})
        assert res.exit_code == 0, res.stdout + res.stderr
        header = next(line for line in res.stdout.splitlines() if "job" in line and "slot" in line)
        assert header.count("slot (UTC)") == 1 and "cycle date" in header
        row = next(line for line in res.stdout.splitlines() if PAYOUT_CYCLE in line)
        assert row.count("2026-03-01 06:00") == 1 and "2026-03-01 06:00 UTC" in row
    finally:
        monkeypatch.delenv("PAYOUT_TIMEZONE")
        get_settings(fresh=True)


def test_default_jobs_call_the_cycle_runbook_and_the_checks_with_the_slot_cycle_date(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types
    from datetime import timedelta

    from payops.scheduler import JobContext, default_registry

    calls: list[tuple[str, tuple, dict]] = []
    fake_cycle = types.ModuleType("payops.cycle.runbook")  # the real ones are tested where they live
    fake_cycle.run_cycle_runbook = lambda *a, **kw: calls.append(("cycle", a, kw))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "payops.cycle.runbook", fake_cycle)
    fake_checks = types.ModuleType("payops.checks")
    fake_checks.run_check = lambda *a, **kw: calls.append(("check", a, kw))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "payops.checks", fake_checks)
    settings = Settings(PAYOUT_TIMEZONE="America/Toronto")
    registry = default_registry()
    assert [j.catch_up for j in registry] == [False, True, False, True, True, False]
    for name in (PRE_RUN_CHECK, PAYOUT_CYCLE, POST_RUN_CHECK):
        (slot,) = _slots(settings, name, utc(2026, 10, 31, 12), 1)  # the Nov 1 cycle, 06:00 EST
        registry.get(name).run(JobContext(name, slot, settings, slot.at, "h:1", timedelta(0)))
    assert calls == [
        ("check", ("pre-run",), {"cycle_date": date(2026, 11, 1), "settings": settings}),
        ("cycle", (date(2026, 11, 1),), {"live": True, "settings": settings, "trigger": "scheduler"}),
        ("check", ("post-run",), {"cycle_date": date(2026, 11, 1), "settings": settings}),
    ]
