"""The service's background work: tasks a request recorded are started on the deployment
by a dispatcher that holds a lease on each while it starts it, and the tasks not ended are
looked at now and then so their end is recorded.

Any number of processes dispatch from one database (``serve`` on the embedded default,
``rclaude-infra worker`` beside API-only ``serve --no-dispatch`` processes). A task is
claimed by one conditional ``UPDATE`` (only when nobody holds a live lease on it), so two
processes never start it at once; the holder renews the lease while the deployment starts
it. A process killed mid-dispatch leaves a lease that runs out, and another process takes
the task over: the deployment's ``run_task`` is idempotent on the task id (a retried
submission never starts a task twice), so the task starts once however far the dead
process got."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import logging
import os
import socket
import threading
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from ..errors import ConfigError, RclaudeError
from ..tasks.model import TaskNotFoundError, TaskStatus
from ..tasks.spec import TaskSpec
from . import accounts
from .metering import ledger_usage, record_usage
from .models import TaskRecord, now
from .plans import PlanBook
from .settings import ServiceSettings
from .store import Database
from .vault import Vault

if TYPE_CHECKING:
    from .._aws.task_events import TaskEvent, TaskEventQueue
    from ..deployment import Deployment
    from .billing import Billing

log = logging.getLogger(__name__)

#: Seconds a claim holds a task; renewed every third of it while the task starts.
LEASE_SECONDS = 60
#: Tries before a task whose start keeps failing unexpectedly is given up as FAILED.
MAX_ATTEMPTS = 3
#: Tasks claimed by one look, and how many of them one process starts at once.
BATCH, STARTERS = 10, 8
#: Tasks not ended looked at by one reconcile pass, and how often it runs.
RECONCILE_BATCH, RECONCILE_SECONDS = 200, 30.0
#: Seconds one receive of task events waits for the first (SQS's long poll, at most 20);
#: a stopping process waits for it to return.
EVENTS_WAIT_SECONDS = 20


def owner_name() -> str:
    """This process, as its leases name it."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _claimable(at: dt.datetime) -> ColumnElement[bool]:
    return and_(TaskRecord.dispatched_at.is_(None), TaskRecord.final_status.is_(None),
                or_(TaskRecord.lease_until.is_(None), TaskRecord.lease_until < at))


class Dispatcher:
    """Starts recorded tasks on ``deployment`` and records their ends.

    ``run_once()`` does one round (for tests and ``worker --once``); ``start()`` runs
    rounds on a thread every ``poll_seconds``, at once when ``wake()`` is called (a request
    of this process recorded a task).
    """

    def __init__(self, db: Database, deployment: Deployment, vault: Vault, *,
                 lease_seconds: float = LEASE_SECONDS, poll_seconds: float = 1.0,
                 owner: str | None = None, plans: PlanBook | None = None,
                 billing: Billing | None = None) -> None:
        self.db = db
        self.deployment = deployment
        self.vault = vault
        self.plans = plans or PlanBook.load()
        self.billing = billing
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.poll_seconds = poll_seconds
        self.owner = owner or owner_name()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._events_thread: threading.Thread | None = None
        self._last_reconcile = 0.0
        #: Tasks this dispatcher claimed so far.
        self.taken = 0

    # -- one round ---------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim what is waiting and start it, up to ``STARTERS`` at once (a start waits
        mostly on the deployment: the spec to S3, RunTask, its confirmation); returns how
        many were claimed."""
        claimed = self.claim()
        self.taken += len(claimed)
        if len(claimed) <= 1:
            for task_id in claimed:
                self.dispatch(task_id)
        else:
            with concurrent.futures.ThreadPoolExecutor(
                    max_workers=min(STARTERS, len(claimed)),
                    thread_name_prefix="rclaude-start") as starters:
                list(starters.map(self.dispatch, claimed))
        return len(claimed)

    def claim(self) -> list[str]:
        """Tasks this process now holds a lease on (none another process holds)."""
        at = now()
        with self.db.session() as session:
            candidates = list(session.scalars(
                select(TaskRecord.id).where(_claimable(at))
                .order_by(TaskRecord.created_at).limit(BATCH)))
        claimed = []
        for task_id in candidates:
            with self.db.session() as session:
                # One statement decides: the row's lease is free, or it is not ours.
                done = session.execute(
                    update(TaskRecord).where(TaskRecord.id == task_id, _claimable(now()))
                    .values(lease_owner=self.owner, lease_until=now() + self.lease,
                            dispatch_attempts=TaskRecord.dispatch_attempts + 1))
                if done.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(task_id)
        return claimed

    def dispatch(self, task_id: str) -> bool:
        """Start a task this process holds; whether it started. A refusal (over budget,
        a secret gone, a bad spec) ends the task FAILED saying why; an unexpected error
        leaves it for another try, up to ``MAX_ATTEMPTS``."""
        with self.db.session() as session:
            record = session.get(TaskRecord, task_id)
            if record is None or record.lease_owner != self.owner:
                return False
            spec_text, user_id, attempts = record.spec, record.user_id, record.dispatch_attempts
        renewing = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(task_id, renewing),
                                   name=f"rclaude-lease-{task_id}", daemon=True)
        renewer.start()
        try:
            spec = TaskSpec.from_mapping(json.loads(spec_text))
            with self.db.session() as session:
                values = self._secrets(session, user_id, spec.secrets)
            self.deployment.run_task(spec, secret_values=values or None)
        except (ConfigError, RclaudeError) as exc:
            self._finish(task_id, failed=f"it could not start: {exc}")
            return False
        except Exception as exc:  # anything else may pass: another try, then give up
            log.exception("dispatching %s failed", task_id)
            if attempts >= MAX_ATTEMPTS:
                self._finish(task_id, failed=f"it could not start after {attempts} tries: "
                             f"{type(exc).__name__}")
            else:
                self._release(task_id)
            return False
        finally:
            renewing.set()
            renewer.join()
        self._finish(task_id)
        return True

    def _secrets(self, session: Session, user_id: int, names: tuple[str, ...]
                 ) -> dict[str, str]:
        rows = accounts.user_secrets(session, user_id, names, allowed="names of the "
                                     "owner's secrets (one was deleted before the task "
                                     "started)")
        return {name: self.vault.open(user_id, name, row.ciphertext)
                for name, row in rows.items()}

    def _renew(self, task_id: str, done: threading.Event) -> None:
        while not done.wait(self.lease.total_seconds() / 3):
            with self.db.session() as session:
                session.execute(update(TaskRecord).where(
                    TaskRecord.id == task_id, TaskRecord.lease_owner == self.owner)
                    .values(lease_until=now() + self.lease))

    def _release(self, task_id: str) -> None:
        with self.db.session() as session:
            session.execute(update(TaskRecord).where(
                TaskRecord.id == task_id, TaskRecord.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None))

    def _finish(self, task_id: str, failed: str | None = None) -> None:
        """Record the start (or the failure); a task cancelled while it started is
        stopped now."""
        with self.db.session() as session:
            record = session.get(TaskRecord, task_id)
            if record is None or record.lease_owner != self.owner:
                return
            record.lease_owner = record.lease_until = None
            if failed is not None:
                record.final_status, record.reason = TaskStatus.FAILED.value, failed
                return
            record.dispatched_at = now()
        # Read after the start is committed: a cancel either marked the task before (seen
        # here) or finds it started and stops it itself.
        with self.db.session() as session:
            record = session.get(TaskRecord, task_id)
            cancelled = record is not None and record.final_status == TaskStatus.STOPPED.value
        if cancelled:
            self.deployment.task(task_id).stop("cancelled while it started")

    def reconcile(self) -> int:
        """Record the end of tasks that have ended, then the usage of those ended (and
        report what is billed); returns how many ended."""
        ended = self._ends()
        self.meter()
        return ended

    def meter(self) -> int:
        """Usage records for the ended tasks that have none (and, with billing, the
        billable ones reported to Stripe); how many were recorded."""
        with self.db.session() as session:
            recorded = record_usage(session, self.plans,
                                    lambda record: ledger_usage(self.deployment, record),
                                    billing=self.billing is not None)
        if self.billing is not None:
            with self.db.session() as session:
                self.billing.report_usage(session)
        return recorded

    def _ends(self) -> int:
        with self.db.session() as session:
            records = list(session.scalars(select(TaskRecord).where(
                TaskRecord.dispatched_at.is_not(None), TaskRecord.final_status.is_(None))
                .order_by(TaskRecord.created_at).limit(RECONCILE_BATCH)))
            return sum(self._look(record) for record in records)

    def _look(self, record: TaskRecord) -> bool:
        """Record ``record``'s end when its task has ended; whether it had."""
        try:
            state = self.deployment.task(record.id).state()
        except TaskNotFoundError:
            record.final_status = TaskStatus.FAILED.value
            record.reason = "the deployment has no such task any more"
            return True
        if state.status.done:
            record.final_status = state.status.value
            return True
        return False

    def handle_events(self, queue: TaskEventQueue, *,
                      wait_seconds: int = EVENTS_WAIT_SECONDS) -> int:
        """One receive from the queue of task state changes (``task_events``): each of
        this service's tasks an event names is looked at now, its end recorded and
        metered; returns how many ended. The event is a reason to look, not the state
        (events come at least once and in any order), so a duplicate or a late one
        changes nothing twice. A STOPPED the look does not see yet, or a look that
        failed, leaves its message to come back (and after the queue's receives, to go to
        the dead-letter queue)."""
        handled: list[TaskEvent] = []
        ended = 0
        for event in queue.receive(wait_seconds=wait_seconds):
            if event.task_id is None:
                handled.append(event)  # not one of ours, or not a task state change
                continue
            try:
                with self.db.session() as session:
                    record = session.get(TaskRecord, event.task_id)
                    if record is None or record.final_status is not None or (
                            record.dispatched_at is None):
                        handled.append(event)  # not this service's, or nothing to learn
                    elif self._look(record):
                        ended += 1
                        handled.append(event)
                    elif event.last_status != "STOPPED":
                        handled.append(event)
            except Exception:  # the database or ECS away: the message comes back
                log.exception("task event for %s not handled", event.task_id)
        if ended:
            self.meter()
            self._wake.set()
        queue.done(handled)
        return ended

    def follow_events(self, queue: TaskEventQueue) -> None:
        """Handle the queue's events on a thread until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.handle_events(queue, wait_seconds=EVENTS_WAIT_SECONDS)
                except Exception:  # SQS away for a moment: the next receive tries again
                    log.exception("receiving task events failed")
                    self._stop.wait(5)

        self._events_thread = threading.Thread(target=loop, name="rclaude-task-events",
                                               daemon=True)
        self._events_thread.start()

    # -- on a thread ---------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="rclaude-dispatch",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._events_thread is not None:
            self._events_thread.join(timeout)
            self._events_thread = None

    def run_forever(self) -> None:
        """Rounds until :meth:`stop` (``rclaude-infra worker``)."""
        self._loop()

    def _loop(self) -> None:
        import time

        clock = time.monotonic
        while not self._stop.is_set():
            self._wake.clear()
            try:
                while not self._stop.is_set() and self.run_once():
                    pass
                if clock() - self._last_reconcile >= RECONCILE_SECONDS:
                    self._last_reconcile = clock()
                    self.reconcile()
            except Exception:  # the database away for a moment: the next round tries
                log.exception("a dispatch round failed")
            self._wake.wait(self.poll_seconds)


def task_event_queue(settings: ServiceSettings, deployment: Deployment) -> TaskEventQueue | None:
    """The queue of task state changes the settings name, else the deployment's own (an
    ECS stack deployed with ``task_events=True``); ``None``: polling alone."""
    try:
        return deployment.task_events(settings.task_events_queue)
    except RclaudeError as exc:  # no outputs to read yet: polling, saying why
        log.warning("task events not followed: %s", exc)
        return None
