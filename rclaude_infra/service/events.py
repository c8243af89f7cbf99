"""A task's events as Server-Sent Events: ``log`` per line of output, ``status`` per
change, the stream ending after the task's end.

An event's id is ``<lines sent>-<status sent>`` (``12-RUNNING``): what a follower has,
so ``Last-Event-ID`` resumes after exactly that, with no line missed or repeated and no
status said twice. A status is said as a look at the task finds it: a follower that
resumes after the task has moved on hears its status now, not the ones between."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from ..tasks.model import TaskStatus
from .problems import Problem

if TYPE_CHECKING:
    from ..tasks.model import Task

#: Seconds between two looks at a followed task.
POLL_SECONDS = 0.5
#: A comment line this often keeps proxies from closing a quiet stream.
HEARTBEAT_SECONDS = 15.0
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


async def stream(task: Task, lines: int, status: str | None, *,
                 task_json_of: Callable[[], dict[str, Any]]) -> AsyncIterator[bytes]:
    """The events after ``lines`` lines and ``status`` were sent."""
    quiet = 0.0
    while True:
        # The state first, then the lines: once a read finds it ended, the lines read
        # after are all of them (the runner writes its last line before its result).
        state = await asyncio.to_thread(task.state)
        output = await asyncio.to_thread(lambda: list(task.logs()))
        sent = False
        for line in output[lines:]:
            lines += 1
            yield _event("log", f"{lines}-{status or ''}",
                         {"time": line.time.isoformat(), "text": line.text})
            sent = True
        if state.status.value != status:
            status = state.status.value
            yield _event("status", f"{lines}-{status}", await asyncio.to_thread(task_json_of))
            sent = True
        if state.status.done:
            return
        quiet = 0.0 if sent else quiet + POLL_SECONDS
        if quiet >= HEARTBEAT_SECONDS:
            quiet = 0.0
            yield b": still running\n\n"
        await asyncio.sleep(POLL_SECONDS)
