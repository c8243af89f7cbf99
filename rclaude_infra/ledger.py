"""The budget's ledger: what a deployment spent over a window (:class:`Spend`), the most a
task may cost (its cap), and the month-to-date reservation that refuses the tasks
``max_monthly_usd`` cannot hold (:class:`Ledger`). :class:`~rclaude_infra.Deployment`
owns one and feeds it its tasks, plan and prices."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from .config import DeploymentConfig
from .errors import BudgetExceededError

if TYPE_CHECKING:
    from .cost import TaskCost
    from .prices import PriceBook
    from .tasks.model import Task
    from .tasks.spec import TaskSpec

#: How long a month-to-date spend read for the budget is reused (run_task after run_task).
LEDGER_SECONDS = 60.0
#: How long a reservation counts on its own: by then its task's record is in every read
#: of the month (reads are at most LEDGER_SECONDS old), or its submitter died before
#: writing it and the reservation is let go.
RESERVATION_SECONDS = 3600.0


@attrs.frozen(kw_only=True)
class Spend:
    """What a deployment cost over a window (:meth:`Deployment.spend`): its tasks' compute
    and model, and the stack's idle baseline for those hours.

    >>> import datetime as dt
    >>> since = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    >>> Spend(since=since, until=since + dt.timedelta(days=1), tasks=4, tasks_usd=0.25,
    ...       model_usd=3.5, baseline_usd=0.5).total_usd
    4.25
    """

    since: datetime
    until: datetime
    tasks: int
    #: The tasks' compute: their share of the instances they ran on.
    tasks_usd: float
    baseline_usd: float
    #: The tasks' model cost (see :class:`~rclaude_infra.TaskCost`).
    model_usd: float = 0.0
    #: The ids of the tasks counted.
    task_ids: frozenset[str] = attrs.field(factory=frozenset, repr=False)

    @property
    def total_usd(self) -> float:
        return self.tasks_usd + self.model_usd + self.baseline_usd

    def to_dict(self) -> dict[str, Any]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat(),
                "tasks": self.tasks, "compute_usd": self.tasks_usd,
                "model_usd": self.model_usd, "baseline_usd": self.baseline_usd,
                "total_usd": self.total_usd}


def expected_model_usd(config: DeploymentConfig) -> tuple[float, str]:
    """The model cost a prompt task is expected to have, and why.

    >>> expected_model_usd(DeploymentConfig(auth="oauth-token"))
    (0.0, 'a Claude subscription, not billed per token')
    """
    from .cost import ASSUMED_MODEL_USD_PER_TASK

    if config.auth == "oauth-token":
        return 0.0, "a Claude subscription, not billed per token"
    if config.usage.model_usd_per_task is not None:
        return config.usage.model_usd_per_task, "Usage.model_usd_per_task"
    return ASSUMED_MODEL_USD_PER_TASK, "the assumed model cost of a task"


def task_cap(spec: TaskSpec, config: DeploymentConfig, *, local: bool,
             prices: Callable[[], PriceBook]) -> TaskCost:
    """The most ``spec`` may cost: its model cap (``max_budget_usd``, else the expected
    model cost of a task) and, on ECS, its compute for its whole timeout on the dearest
    of the config's instance types (``prices`` is read only then)."""
    from .cost import TaskCost, task_cost

    if spec.prompt is None:
        model, source = 0.0, "a command task"
    elif spec.max_budget_usd is not None and config.auth != "oauth-token":
        model, source = spec.max_budget_usd, "its max_budget_usd"
    else:
        model, source = expected_model_usd(config)
    compute = 0.0 if local else max(
        task_cost(runtime_hours=spec.timeout / 3600, task_cpu=config.task_cpu,
                  task_memory=config.task_memory, instance_type=name, spot=config.spot,
                  prices=prices()) for name in config.instance_types)
    return TaskCost(compute_usd=compute, model_usd=model, model_source=source)


def spend(tasks: Iterable[Task], since: datetime, now: datetime, *, prices: PriceBook,
          idle_monthly: float, in_flight: Callable[[Task], TaskCost] | None = None) -> Spend:
    """What ``tasks`` cost from ``since`` to ``now`` (a task that stopped before ``since``
    is left out), plus ``idle_monthly`` for those hours. With ``in_flight``, a task not
    ended yet counts what that returns for it (its cap: its own cost is known only at its
    end)."""
    from .prices import HOURS_PER_MONTH

    compute = model = 0.0
    counted: set[str] = set()
    for task in tasks:
        state = task.state()
        if state.stopped_at is not None and state.stopped_at < since:
            continue
        cost = (in_flight(task) if in_flight is not None and not state.status.done
                else task.cost(prices))
        compute += cost.compute_usd
        model += cost.model_usd or 0.0
        counted.add(task.task_id)
    hours = max(0.0, (now - since).total_seconds() / 3600)
    return Spend(since=since, until=now, tasks=len(counted), tasks_usd=compute,
                 model_usd=model, baseline_usd=idle_monthly * hours / HOURS_PER_MONTH,
                 task_ids=frozenset(counted))


class Reservations(Protocol):
    """Where a deployment's budget reservations live, shared by every process that
    submits to it: a file under a lock for local tasks
    (:class:`~rclaude_infra.tasks.reservations.FileReservations`), an S3 object changed by
    conditional writes for ECS tasks (``rclaude_infra._aws.s3_ledger``)."""

    def update(self, month: str, change: Callable[[dict[str, Any]], dict[str, Any]]
               ) -> dict[str, Any]:
        """Apply ``change`` to the month's reservations as one atomic step (it may run
        more than once, and may raise: then nothing changes)."""
        ...


class MemoryReservations:
    """Reservations of this process only: for a task provider that keeps none."""

    def __init__(self) -> None:
        self._months: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def update(self, month: str, change: Callable[[dict[str, Any]], dict[str, Any]]
               ) -> dict[str, Any]:
        with self._lock:
            self._months[month] = change(dict(self._months.get(month, {})))
            return self._months[month]


class Ledger:
    """This month's spend against ``limit``, for every process submitting to the
    deployment: what ``read_month`` says the month's tasks hold (each task not ended at
    its cap; read at most every :data:`LEDGER_SECONDS`), plus the reservations in
    ``reservations`` of tasks that month's read does not show yet. A reservation is
    checked and written in one atomic step of ``reservations``, so two submitters never
    both take the last of the budget. Safe to use from several threads."""

    def __init__(self, limit: float, read_month: Callable[[datetime], Spend],
                 reservations: Reservations | None = None) -> None:
        self._limit = limit
        self._read_month = read_month
        self._reservations: Reservations = reservations or MemoryReservations()
        self._lock = threading.Lock()
        #: When the month was read, and what it held.
        self._read: tuple[float, Spend] | None = None

    def _month(self) -> tuple[str, Spend]:
        with self._lock:
            now = time.monotonic()
            if self._read is None or now - self._read[0] > LEDGER_SECONDS:
                month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0,
                                                  microsecond=0)
                self._read = (now, self._read_month(month))
            spent = self._read[1]
        return spent.since.strftime("%Y-%m"), spent

    def reserve(self, caps: Mapping[str, TaskCost]) -> list[str]:
        """Refuse the tasks of these ids and ``caps`` (:class:`~rclaude_infra.errors.
        BudgetExceededError`, saying what the month holds) when they would pass the limit;
        else reserve them for every process and return their ids (:meth:`release` them if
        they do not start). A task the month's read counts already is not counted again."""
        month, spent = self._month()
        new = {task_id: cap for task_id, cap in caps.items() if task_id not in spent.task_ids}
        if not new:
            return []
        stamp = datetime.now(UTC)

        def check(entries: dict[str, Any]) -> dict[str, Any]:
            kept = {task_id: entry for task_id, entry in entries.items()
                    if _fresh(entry, stamp) and task_id not in new}
            others = sum(float(entry["usd"]) for task_id, entry in kept.items()
                         if task_id not in spent.task_ids)
            adding = sum(cap.total_usd for cap in new.values())
            total = spent.total_usd + others + adding
            if total > self._limit:
                self._refuse(spent, others, list(new.values()), total)
            kept.update({task_id: {"usd": cap.total_usd, "at": stamp.isoformat()}
                         for task_id, cap in new.items()})
            return kept

        self._reservations.update(month, check)
        return list(new)

    def release(self, task_ids: Iterable[str]) -> None:
        """Reservations made by :meth:`reserve` whose tasks did not start after all."""
        gone = set(task_ids)
        if gone:
            month, _ = self._month()
            self._reservations.update(month, lambda entries: {
                task_id: entry for task_id, entry in entries.items() if task_id not in gone})

    def _refuse(self, spent: Spend, others: float, caps: Sequence[TaskCost],
                total: float) -> None:
        new = sum(cap.total_usd for cap in caps)
        model, compute = (sum(c.model_usd or 0.0 for c in caps),
                          sum(c.compute_usd for c in caps))
        raise BudgetExceededError(
            f"max_monthly_usd ${self._limit:.2f} would be passed by "
            f"${total - self._limit:.2f}: this month so far ${spent.total_usd:.2f} "
            f"(model ${spent.model_usd:.2f}, compute ${spent.tasks_usd:.2f}, idle "
            f"stack ${spent.baseline_usd:.2f}, {spent.tasks} tasks, each not ended at its "
            "cap)"
            + (f" + ${others:.2f} for tasks started since" if others else "")
            + f" + {len(caps)} new task{'s' if len(caps) != 1 else ''} at up to "
            f"${new:.2f} (model ${model:.2f}: {caps[0].model_source}; compute "
            f"${compute:.4f} for the timeout). Nothing was submitted: lower "
            "TaskSpec.max_budget_usd, or raise max_monthly_usd.",
            estimate=spent, limit=self._limit)


def _fresh(entry: Any, now: datetime) -> bool:
    """A reservation that can still be a task no month's read shows: younger than
    :data:`RESERVATION_SECONDS` (and well formed)."""
    try:
        at = datetime.fromisoformat(entry["at"])
        float(entry["usd"])
    except (TypeError, KeyError, ValueError):
        return False
    return (now - at).total_seconds() < RESERVATION_SECONDS
