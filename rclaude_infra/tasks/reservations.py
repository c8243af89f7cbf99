"""The month's budget reservations of local tasks, in a file that every process
submitting to the deployment on this machine reads and changes under one lock.

A reservation is ``{task_id: {"usd": cap, "at": ISO time}}``: what a task was counted at
when the budget let it start, until its own record counts it
(:class:`~rclaude_infra.ledger.Ledger`).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .records import read_record, write_record

Entries = dict[str, Any]


class FileReservations:
    """Reservations in ``<folder>/<YYYY-MM>.json``, changed under an exclusive
    ``flock`` of ``<folder>/<YYYY-MM>.lock``: the check and the write are one step for
    every process of this machine."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def update(self, month: str, change: Callable[[Entries], Entries]) -> Entries:
        """Read the month's reservations, apply ``change`` (which may raise: nothing is
        written then) and write what it returns, all under the lock; returns that."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"{month}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            path = self.folder / f"{month}.json"
            try:
                found = json.loads(read_record(path) or b"{}")
            except ValueError:
                found = {}  # a torn or foreign file: start the month's reservations again
            entries = change(found if isinstance(found, dict) else {})
            write_record(path, json.dumps(entries))
            return entries
