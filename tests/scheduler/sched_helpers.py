"""Helpers for the scheduler tests (imported by basename, like tests/e2e/e2e_helpers.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from payops.scheduler import Job, JobContext, Schedule


class FakeClock:
    """A clock the test moves; ``sleep`` advances it instead of waiting."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept: list[float] = []
        self.on_sleep: Callable[[FakeClock], None] | None = None

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime) -> datetime:
        self.now = when
        return when

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
        if self.on_sleep:
            self.on_sleep(self)


@dataclass
class Recorder:
    """A test job's callable: remembers each call; can fail or return a result."""

    calls: list[JobContext] = field(default_factory=list)
    raises: BaseException | None = None
    result: Any = None

    def __call__(self, ctx: JobContext) -> Any:
        self.calls.append(ctx)
        if self.raises is not None:
            raise self.raises
        return self.result

    @property
    def slots(self) -> list[datetime]:
        return [c.slot.at for c in self.calls]


def make_job(name: str, expr: str, *, catch_up: bool = False, coalesce: bool = False,
             **recorder: Any) -> tuple[Job, Recorder]:
    rec = Recorder(**recorder)
    return Job(name, Schedule(expr), rec, catch_up=catch_up, coalesce=coalesce), rec


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
