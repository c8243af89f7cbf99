"""The budget's ledger: what a deployment spent over a window (:class:`Spend`), the most a
task may cost (its cap), and the month-to-date reservation that refuses the tasks
``max_monthly_usd`` cannot hold (:class:`Ledger`). :class:`~rclaude_infra.Deployment`
owns one and feeds it its tasks, plan and prices."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

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
          idle_monthly: float, in_flight_model_usd: float | None = None) -> Spend:
    """What ``tasks`` cost from ``since`` to ``now`` (a task that stopped before ``since``
    is left out), plus ``idle_monthly`` for those hours. With ``in_flight_model_usd``, a
    task not ended yet counts that model cost (it reports its own only at the end)."""
    from .prices import HOURS_PER_MONTH

    compute = model = 0.0
    counted = 0
    for task in tasks:
        state = task.state()
        if state.stopped_at is not None and state.stopped_at < since:
            continue
        cost = task.cost(prices)
        compute += cost.compute_usd
        model += (in_flight_model_usd
                  if in_flight_model_usd is not None and not state.status.done
                  else cost.model_usd or 0.0)
        counted += 1
    hours = max(0.0, (now - since).total_seconds() / 3600)
    return Spend(since=since, until=now, tasks=counted, tasks_usd=compute, model_usd=model,
                 baseline_usd=idle_monthly * hours / HOURS_PER_MONTH)


class Ledger:
    """This month's spend against ``limit``: read with ``read_month`` (the spend since the
    1st, UTC) at most every :data:`LEDGER_SECONDS`, plus the caps of the tasks reserved
    since. Safe to use from several threads."""

    def __init__(self, limit: float, read_month: Callable[[datetime], Spend]) -> None:
        self._limit = limit
        self._read_month = read_month
        self._lock = threading.Lock()
        #: When the month was read, what it held, and the caps reserved since.
        self._state: tuple[float, Spend, float] | None = None

    def reserve(self, caps: Sequence[TaskCost]) -> float:
        """Refuse tasks of these ``caps`` (:class:`~rclaude_infra.errors.BudgetExceededError`,
        saying what the month holds) when they would pass the limit; else count them as
        spent and return their sum (:meth:`release` it if they do not start)."""
        with self._lock:
            now = time.monotonic()
            if self._state is None or now - self._state[0] > LEDGER_SECONDS:
                month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0,
                                                  microsecond=0)
                self._state = (now, self._read_month(month), 0.0)
            read_at, spent, started = self._state
            new = sum(cap.total_usd for cap in caps)
            total = spent.total_usd + started + new
            if total > self._limit:
                model, compute = (sum(c.model_usd or 0.0 for c in caps),
                                  sum(c.compute_usd for c in caps))
                raise BudgetExceededError(
                    f"max_monthly_usd ${self._limit:.2f} would be passed by "
                    f"${total - self._limit:.2f}: this month so far ${spent.total_usd:.2f} "
                    f"(model ${spent.model_usd:.2f}, compute ${spent.tasks_usd:.2f}, idle "
                    f"stack ${spent.baseline_usd:.2f}, {spent.tasks} tasks)"
                    + (f" + ${started:.2f} for tasks started since" if started else "")
                    + f" + {len(caps)} new task{'s' if len(caps) != 1 else ''} at up to "
                    f"${new:.2f} (model ${model:.2f}: {caps[0].model_source}; compute "
                    f"${compute:.4f} for the timeout). Nothing was submitted: lower "
                    "TaskSpec.max_budget_usd, or raise max_monthly_usd.",
                    estimate=spent, limit=self._limit)
            self._state = (read_at, spent, started + new)
            return new

    def release(self, amount: float) -> None:
        """Caps counted by :meth:`reserve` whose tasks did not start after all."""
        if not amount:
            return
        with self._lock:
            if self._state is not None:
                self._state = (self._state[0], self._state[1], self._state[2] - amount)
