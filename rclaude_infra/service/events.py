"""A task's events as Server-Sent Events: ``log`` per line of output, ``status`` per
change, the stream ending after the task's end (or after an ``error`` event, when the task
could not be looked at for :data:`FAILED_LOOKS` looks in a row).

An event's id is ``<lines sent>-<status sent>`` (``12-RUNNING``): what a follower has,
so ``Last-Event-ID`` resumes after exactly that, with no line missed or repeated and no
status said twice. A status is said as a look at the task finds it: a follower that
resumes after the task has moved on hears its status now, not the ones between.

However many follow one task in a process, one :class:`Watch` looks at it (its state,
then its new lines) every :data:`POLL_SECONDS` and wakes them all: a thousand followers
cost one look, and the lines are held once.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..tasks.model import LogLine, TaskStatus
from .problems import Problem

#: Seconds between two looks at a followed task.
POLL_SECONDS = 0.5
#: A comment line this often keeps proxies from closing a quiet stream.
HEARTBEAT_SECONDS = 15.0
#: Looks failing in a row before the followers are told and the streams end.
FAILED_LOOKS = 20
_ID = re.compile(r"(\d{1,9})-([A-Z]{1,16})?")


def resume_point(last_event_id: str | None) -> tuple[int, str | None]:
    """Lines sent and the last status sent, from a ``Last-Event-ID`` (none: the start)."""
    if last_event_id is None:
        return 0, None
    found = _ID.fullmatch(last_event_id.strip())
    if found is None or (found.group(2) and found.group(2) not in TaskStatus.__members__):
        raise Problem(422, "Last-Event-ID: an id this stream sent (<lines>-<STATUS>)",
                      field="Last-Event-ID")
    return int(found.group(1)), found.group(2) or None


def _event(kind: str, event_id: str, data: Any) -> bytes:
    return (f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data, default=str)}\n\n"
            ).encode()


class Watch:
    """One task, looked at for all its followers in this process."""

    def __init__(self, look: Callable[[], tuple[dict[str, Any], list[LogLine]]]) -> None:
        self._look_now = look
        self.lines: list[LogLine] = []
        #: The status the last look found, and the task as it then was.
        self.status: str | None = None
        self.described: dict[str, Any] = {}
        self.done = False
        #: Why the looks ended without the task's end (they kept failing).
        self.error: str | None = None
        self.followers = 0
        self._changed = asyncio.Condition()
        self._looking: asyncio.Task[None] | None = None

    def _look(self) -> tuple[str, bool, list[LogLine], dict[str, Any]]:
        # The look reads the state first, then the lines: once it finds the task ended,
        # the lines read after are all of them (the runner writes its last line before
        # its result).
        described, lines = self._look_now()
        status = str(described["status"])
        return status, TaskStatus(status).done, lines, described

    async def _loop(self) -> None:
        failures = 0
        while self.followers and not self.done:
            try:
                status, done, lines, described = await asyncio.to_thread(self._look)
            except Exception as exc:  # a store away for a moment: look again, then give up
                failures += 1
                if failures >= FAILED_LOOKS:
                    async with self._changed:
                        self.error, self.done = f"{type(exc).__name__}: {exc}", True
                        self._changed.notify_all()
                    break
                await asyncio.sleep(POLL_SECONDS)
                continue
            failures = 0
            async with self._changed:
                if len(lines) > len(self.lines):
                    self.lines = lines
                self.status, self.done, self.described = status, done, described
                self._changed.notify_all()
            if not done:
                await asyncio.sleep(POLL_SECONDS)
        self._looking = None

    async def changes(self) -> AsyncIterator[None]:
        """Each time a look found something new (lines, a status, the end), or after
        :data:`HEARTBEAT_SECONDS` without."""
        self.followers += 1
        if self._looking is None and not self.done:
            self._looking = asyncio.create_task(self._loop())
        clock = asyncio.get_running_loop()
        try:
            seen: tuple[int, str | None] = (0, None)
            while True:
                async with self._changed:
                    deadline = clock.time() + HEARTBEAT_SECONDS
                    while (len(self.lines), self.status) == seen and not self.done:
                        left = deadline - clock.time()
                        if left <= 0:
                            break
                        try:
                            await asyncio.wait_for(self._changed.wait(), left)
                        except TimeoutError:
                            break
                    seen = (len(self.lines), self.status)
                yield None
                if self.done:
                    return
        finally:
            self.followers -= 1


class Watches:
    """The watches of one service process, by task id."""

    def __init__(self) -> None:
        self._watches: dict[str, Watch] = {}

    def of(self, task_id: str,
           look: Callable[[], tuple[dict[str, Any], list[LogLine]]]) -> Watch:
        """The watch of ``task_id``; ``look()`` is the task as the API shows it, then its
        lines."""
        watch = self._watches.get(task_id)
        if watch is None or (watch.done and not watch.followers):
            watch = self._watches[task_id] = Watch(look)
        # Forget the ended watches nobody follows (their lines held for nothing).
        for key in [k for k, w in self._watches.items() if w.done and not w.followers
                    and k != task_id]:
            del self._watches[key]
        return watch


async def stream(watch: Watch, lines: int, status: str | None) -> AsyncIterator[bytes]:
    """The events after ``lines`` lines and ``status`` were sent."""
    async for _ in watch.changes():
        sent = False
        for line in watch.lines[lines:]:
            lines += 1
            yield _event("log", f"{lines}-{status or ''}",
                         {"time": line.time.isoformat(), "text": line.text})
            sent = True
        if watch.status is not None and watch.status != status:
            status = watch.status
            yield _event("status", f"{lines}-{status}", watch.described)
            sent = True
        if watch.error is not None:
            yield _event("error", f"{lines}-{status or ''}",
                         {"detail": f"the task could not be followed: {watch.error}"})
        elif not sent and not watch.done:
            yield b": still running\n\n"
