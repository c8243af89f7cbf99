"""One look at a followed task serves all its followers in a process."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from rclaude_infra.service import events
from rclaude_infra.tasks.model import LogLine, TaskState, TaskStatus


class _Task:
    """A task that prints a line per look and ends after ``lines`` lines."""

    task_id = "t-watched"

    def __init__(self, lines: int) -> None:
        self.looks = 0
        self.limit = lines

    def state(self) -> TaskState:
        self.looks += 1
        done = self.looks > self.limit
        return TaskState(status=TaskStatus.SUCCEEDED if done else TaskStatus.RUNNING)

    def logs(self) -> list[LogLine]:
        now = dt.datetime.now(dt.UTC)
        return [LogLine(time=now, text=f"line {i}") for i in range(min(self.looks,
                                                                       self.limit))]


def test_many_followers_share_one_look(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "POLL_SECONDS", 0.01)
    task: Any = _Task(lines=5)
    watches = events.Watches()

    def look() -> tuple[dict[str, Any], list[LogLine]]:
        state = task.state()
        return {"id": task.task_id, "status": state.status.value}, task.logs()

    async def follow() -> list[bytes]:
        watch = watches.of(task.task_id, look)
        return [chunk async for chunk in events.stream(watch, 0, None)]

    async def main() -> list[list[bytes]]:
        return await asyncio.gather(*(follow() for _ in range(200)))

    streams = asyncio.run(main())
    assert task.looks <= 8  # one look per poll, not one per follower
    for chunks in streams:
        logs = [c for c in chunks if b"event: log" in c]
        assert len(logs) == 5 and b"SUCCEEDED" in chunks[-1]


def test_followers_hear_of_a_look_that_keeps_failing(monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    """The store away for good ends the streams with an error event, not a stream of
    heartbeats for ever."""
    monkeypatch.setattr(events, "POLL_SECONDS", 0.01)
    looks = 0

    def look() -> tuple[dict[str, Any], list[LogLine]]:
        nonlocal looks
        looks += 1
        raise OSError("the database is away")

    async def follow() -> list[bytes]:
        watch = events.Watches().of("t-away", look)
        return [chunk async for chunk in events.stream(watch, 0, None)]

    chunks = asyncio.run(asyncio.wait_for(follow(), 30))
    assert looks == events.FAILED_LOOKS
    assert b"event: error" in chunks[-1] and b"OSError" in chunks[-1]
