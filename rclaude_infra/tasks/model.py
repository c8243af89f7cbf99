"""The task handle users hold, whatever runs the task (a local process, ECS).

A :class:`Task` asks its provider for everything, every time: status, logs, results.
Nothing is cached that another process could change, so a handle re-attached from a new
process (``Deployment.task(task_id)``) sees the same task.
"""

from __future__ import annotations

import builtins
import datetime as dt
import enum
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from .._render import styled, to_html
from ..errors import RclaudeError
from .agent import AgentResult
from .downloads import Downloaded

if TYPE_CHECKING:
    from rich.text import Text

    from ..cost import TaskCost


class TaskStatus(enum.StrEnum):
    """Where a task is: QUEUED (waiting for room in the group), PENDING and RUNNING, then
    one of the four ends.

    >>> TaskStatus.RUNNING.done, TaskStatus.PREEMPTED.done
    (False, True)
    >>> TaskStatus("FAILED") is TaskStatus.FAILED
    True
    """

    QUEUED = "QUEUED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    PREEMPTED = "PREEMPTED"

    @property
    def done(self) -> bool:
        return self not in (TaskStatus.QUEUED, TaskStatus.PENDING, TaskStatus.RUNNING)


class TaskNotFoundError(RclaudeError, LookupError):
    """No task with this id in this deployment.

    >>> from rclaude_infra import Deployment
    >>> Deployment("dev", provider="local").task("t-nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rclaude_infra.tasks.model.TaskNotFoundError: no task 't-nope' under ...
    """


class TaskTimeoutError(RclaudeError, TimeoutError):
    """``Task.wait(timeout=...)`` ran out before the task ended (the task keeps running).

    >>> from rclaude_infra import Deployment, TaskSpec
    >>> task = Deployment("dev", provider="local").run_task(TaskSpec(command="sleep 30"))
    >>> try:
    ...     task.wait(timeout=0.1)
    ... except TaskTimeoutError:
    ...     task.stop("waited long enough")
    >>> task.wait(timeout=60).status.value
    'STOPPED'
    """


@attrs.frozen(kw_only=True)
class TaskState:
    """A task's status at one moment, with why, its exit code and its times.

    >>> state = TaskState(status=TaskStatus.FAILED, reason="out of memory", exit_code=137)
    >>> state.status.done, state.attempt
    (True, 1)
    """

    status: TaskStatus
    reason: str | None = None
    exit_code: int | None = None
    started_at: dt.datetime | None = None
    stopped_at: dt.datetime | None = None
    attempt: int = 1


@attrs.frozen(kw_only=True)
class LogLine:
    """One line of a task's output and when it was written.

    >>> import datetime as dt
    >>> str(LogLine(time=dt.datetime(2026, 11, 27, tzinfo=dt.UTC), text="tests passed"))
    'tests passed'
    """

    time: dt.datetime
    text: str

    def __str__(self) -> str:
        return self.text


_RESULT_STATUS = {"succeeded": TaskStatus.SUCCEEDED, "stopped": TaskStatus.STOPPED,
                  "preempted": TaskStatus.PREEMPTED}


def state_from_result(result: Mapping[str, Any], attempt: int | None = None) -> TaskState:
    """The end state a runner's ``result.json`` records (timeouts and errors are FAILED).
    The file is within the task's reach: a field of the wrong kind makes the state FAILED,
    saying so, never an error.

    >>> state_from_result({"status": "succeeded", "exit_code": "0"}).reason
    "its result.json is malformed (exit_code: '0')"
    """
    def when(key: str) -> dt.datetime | None:
        value = result.get(key)
        if value is None:
            return None
        try:
            return dt.datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise ValueError(key) from None

    try:
        status, reason, code = (result.get("status", ""), result.get("reason"),
                                result.get("exit_code"))
        for key, value, kinds in (("status", status, str), ("reason", reason, (str, type(None))),
                                  ("exit_code", code, (int, type(None)))):
            if not isinstance(value, kinds) or isinstance(value, bool):
                raise ValueError(key)
        number = attempt if attempt is not None else result.get("attempt", 1)
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise ValueError("attempt")
        return TaskState(status=_RESULT_STATUS.get(status, TaskStatus.FAILED), reason=reason,
                         exit_code=code, started_at=when("started_at"),
                         stopped_at=when("finished_at"), attempt=number)
    except ValueError as exc:
        field = str(exc)
        return TaskState(status=TaskStatus.FAILED, attempt=attempt or 1,
                         reason=f"its result.json is malformed ({field}: "
                         f"{repr(result.get(field))[:80]})")


class TaskProvider(Protocol):
    """Where tasks run: what a :class:`~rclaude_infra.Deployment` and a task handle ask
    of it. The local provider (``tasks.local``) and the ECS provider (``_aws.ecs``)
    implement it; ``Deployment(name, tasks=provider)`` takes any object that does, as
    httpx takes a transport. Reads (``state``, ``list``, ``result``, ``log_lines``)
    change nothing; ``submit``, ``advance``, ``pump`` and ``stop`` are the steps."""

    #: Seconds between two looks at the same task's status (a wait never sleeps longer).
    poll_interval: float

    def submit(self, spec: Any, secrets: Mapping[str, str] | None = None) -> Task:
        """Start the :class:`~rclaude_infra.TaskSpec` (or queue it); a task id already
        submitted returns the existing task, never a second one. ``secrets``: the values
        of ``spec.secrets`` (default: this process's environment)."""
        ...

    def spec(self, task_id: str) -> Any:
        """The :class:`~rclaude_infra.TaskSpec` the task was submitted with."""
        ...

    def active_task_ids(self) -> dict[str, str]:
        """Task id -> status of every task not ended yet."""
        ...

    def state(self, task_id: str) -> TaskState:
        """The task's state now; a read that changes nothing."""
        ...

    def advance(self, task_id: str) -> TaskState:
        """Take the provider's pending step for the task (e.g. submit a preempted task
        again) and return its state after it; for a provider with none, :meth:`state`."""
        ...

    def pump(self) -> list[str]:
        """Start the queued tasks that now have room, oldest first; their ids."""
        ...

    def log_lines(self, task_id: str, *, since: dt.datetime | None,
                  follow: bool) -> Iterator[LogLine]: ...

    def result(self, task_id: str) -> Mapping[str, Any]: ...

    def download(self, task_id: str, dest: Path, *,
                 names: Collection[str] | None = None) -> builtins.list[Path]:
        """The task's files (``names``: those only) into ``dest/<task_id>/`` (a
        :class:`~rclaude_infra.tasks.downloads.Downloaded`, reporting what it skipped)."""
        ...

    def stop(self, task_id: str, reason: str) -> None: ...

    def cost(self, task_id: str, prices: Any = None) -> float: ...

    def exec(self, task_id: str, command: str, *, run: Any = None) -> int: ...

    def list(self, *, limit: int | None = None,
             status: TaskStatus | None = None) -> builtins.list[Task]:
        """Tasks, newest first, optionally of one status."""
        ...


@attrs.frozen(kw_only=True)
class TaskResult:
    """What a finished task left: ``result.json``'s fields, and its files to download.

    >>> from rclaude_infra import Deployment, TaskSpec
    >>> task = Deployment("dev", provider="local").run_task(TaskSpec(command="true"))
    >>> result = task.wait(timeout=60) and task.result()
    >>> result.status, result.exit_code
    ('succeeded', 0)
    """

    task_id: str
    data: Mapping[str, Any] = attrs.field(eq=False)
    _provider: TaskProvider = attrs.field(eq=False, repr=False, alias="provider")

    @property
    def status(self) -> str | None:
        return self.data.get("status")

    @property
    def exit_code(self) -> int | None:
        return self.data.get("exit_code")

    @property
    def reason(self) -> str | None:
        return self.data.get("reason")

    @property
    def files(self) -> list[str]:
        return list(self.data.get("files", []))

    @property
    def agent(self) -> AgentResult | None:
        """Claude Code's own account of a prompt task (turns, cost, tokens, session, its
        final text or error); ``None`` for a command task."""
        section = self.data.get("agent")
        return AgentResult.from_dict(section) if isinstance(section, Mapping) else None

    @property
    def delivery(self) -> Mapping[str, Any] | None:
        """With ``TaskSpec(output="branch" | "pull-request")``: ``branch``, ``commit``,
        ``pushed``, ``base`` and ``pull_request`` (its URL), and ``error`` when the push or
        the pull request failed (the task then FAILED; its diff is kept)."""
        section = self.data.get("delivery")
        return section if isinstance(section, Mapping) else None

    @property
    def branch(self) -> str | None:
        """The branch the work was pushed to, if it was."""
        return self.delivery["branch"] if self.delivery and self.delivery.get("pushed") else None

    @property
    def pull_request_url(self) -> str | None:
        return self.delivery.get("pull_request") if self.delivery else None

    def download(self, dest: str | Path, *, names: Collection[str] | None = None
                 ) -> Downloaded:
        """Copy the transcript, the git diff, the artifacts, the log and result.json into
        ``dest/<task_id>/`` (``names``: only those of them, by their ``/``-separated
        names, as ``diff.patch`` or ``artifacts/report.md``); returns the files written
        (a list of paths), with ``.skipped``: each name the task left that was not
        written, and why (a name that would land outside ``dest``, a link: links are
        never followed)."""
        found = self._provider.download(self.task_id, Path(dest), names=names)
        return found if isinstance(found, Downloaded) else Downloaded(found)


class Task:
    """A handle on one task: its status, logs, results, and how to stop it.

    >>> from rclaude_infra import Deployment, TaskSpec
    >>> task = Deployment("dev", provider="local").run_task(
    ...     TaskSpec(command="echo hello; exit 3", task_id="t-doc"))
    >>> state = task.wait(timeout=60)
    >>> state.status.value, state.exit_code
    ('FAILED', 3)
    >>> [line.text for line in task.logs() if not line.text.startswith("[runner]")]
    ['hello']
    >>> task.result().reason
    'exit code 3'
    """

    def __init__(self, task_id: str, provider: TaskProvider) -> None:
        self.task_id = task_id
        self._provider = provider

    def state(self) -> TaskState:
        """The task's state now (asks the provider)."""
        return self._provider.state(self.task_id)

    @property
    def status(self) -> TaskStatus:
        return self.state().status

    @property
    def reason(self) -> str | None:
        return self.state().reason

    @property
    def exit_code(self) -> int | None:
        return self.state().exit_code

    @property
    def started_at(self) -> dt.datetime | None:
        return self.state().started_at

    @property
    def stopped_at(self) -> dt.datetime | None:
        return self.state().stopped_at

    def wait(self, timeout: float | None = None, *, poll: float = 0.2) -> TaskState:
        """Block until the task ends; :class:`TaskTimeoutError` after ``timeout`` seconds.

        Looks after ``poll`` seconds, then less often, never less often than the
        provider's own status refresh (ECS: one shared ``DescribeTasks`` per interval for
        every task waited on, so waiting on many tasks costs no more calls). Waiting takes
        the provider's pending step (:meth:`TaskProvider.advance`): a task preempted with
        retries left is submitted again and waited on, where a mere read
        (:attr:`status`, ``repr``) only reports it PREEMPTED."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = poll
        longest = max(poll, min(5.0, self._provider.poll_interval))
        while True:
            # Waiting is where a preempted task is submitted again: reads never do.
            state = self._provider.advance(self.task_id)
            if state.status.done:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise TaskTimeoutError(
                    f"task {self.task_id} is still {state.status.value} after {timeout}s; it "
                    "keeps running (stop() ends it)")
            time.sleep(delay if deadline is None else min(delay, max(0.0, deadline -
                                                                      time.monotonic())))
            delay = min(delay * 1.5, longest)

    async def wait_async(self, timeout: float | None = None) -> TaskState:
        """:meth:`wait` in a worker thread: a notebook's event loop keeps running."""
        import asyncio

        return await asyncio.to_thread(self.wait, timeout)

    def logs(self, follow: bool = False, since: dt.datetime | None = None) -> Iterator[LogLine]:
        """The task's output lines. ``follow=True`` keeps reading until the task ends;
        one iterator never repeats or skips a line. ``since`` starts at a time."""
        return self._provider.log_lines(self.task_id, since=since, follow=follow)

    def result(self) -> TaskResult:
        """``result.json`` and the files of a finished task."""
        return TaskResult(task_id=self.task_id, data=self._provider.result(self.task_id),
                          provider=self._provider)

    @property
    def agent(self) -> AgentResult | None:
        """Claude Code's account of a finished prompt task (``result().agent``): its turns,
        cost in USD, tokens per model, session id, final text or error. ``None`` for a
        command task; :class:`TaskNotFoundError` while it has no result yet."""
        return self.result().agent

    @property
    def spec(self) -> Any:
        """The :class:`~rclaude_infra.TaskSpec` the task was submitted with."""
        return self._provider.spec(self.task_id)

    def resume_spec(self, prompt: str, **changes: Any) -> Any:
        """The :class:`~rclaude_infra.TaskSpec` of a task that continues this one: the
        same agent session (``claude --resume``), starting from this task's work (the
        branch it pushed, or its commit with its diff applied), with ``prompt``, and
        ``changes`` to any other field. :class:`~rclaude_infra.errors.ConfigError` when
        this task left no session to continue (a command, or no result line)."""
        from ..errors import ConfigError
        from .spec import new_task_id

        earlier = self.spec
        result = self.result()
        agent = result.agent
        if earlier.prompt is None or agent is None or not agent.session_id:
            raise ConfigError("resume", self.task_id, "a prompt task that has ended with an "
                              "agent session (its result names one)")
        fields: dict[str, Any] = {
            "prompt": prompt, "task_id": new_task_id(), "resume_from": self.task_id,
            "resume_session": agent.session_id}
        if result.branch is not None:
            # Its work is on the branch: continue there; pushing again updates any pull
            # request the branch has.
            fields.update(ref=result.branch, branch=result.branch,
                          output="branch", github_api_url=None)
        elif earlier.repo is not None and result.data.get("commit"):
            fields["ref"] = result.data["commit"]  # the same commit, its diff applied
        return attrs.evolve(earlier, **{**fields, **changes})

    def resume(self, prompt: str, **changes: Any) -> Task:
        """Start a task that continues this one (:meth:`resume_spec`): Claude Code resumes
        its session, on another machine or process, with this task's work in place.
        ``Deployment.resume(task_id, prompt)`` does the same with the deployment's checks
        (budget, image) first."""
        spec = self.resume_spec(prompt, **changes)
        submitted: Task = self._provider.submit(spec)
        return submitted

    def stop(self, reason: str = "stopped by the user") -> None:
        """Stop the task; it ends STOPPED and still writes its result, logs and diff."""
        self._provider.stop(self.task_id, reason)

    def exec(self, command: str = "bash", *, run: Any = None) -> int:
        """An interactive ``command`` inside the running task, on this terminal; returns
        its exit code when the session ends.

        On ECS this is ECS Exec: ``ExecuteCommand``, then AWS's ``session-manager-plugin``
        carries the terminal (:class:`~rclaude_infra.errors.SessionManagerPluginNotFoundError`
        with the install link when it is missing). Locally the command runs in the task's
        working directory. :class:`~rclaude_infra.errors.ExecError` when the task is not
        RUNNING. ``run`` replaces :func:`subprocess.call` (for tools that host the terminal).
        """
        return self._provider.exec(self.task_id, command, run=run)

    def cost(self, prices: Any = None) -> TaskCost:
        """What the task cost, both halves (:class:`~rclaude_infra.TaskCost`; formats as
        the total, ``f"{task.cost():.4f}"``):

        - ``compute_usd``: its runtime x its share of the instance (the larger of its CPU
          and memory share) x the instance's price, spot-aware, over every attempt (0 for a
          local task). ``prices``: a :class:`~rclaude_infra.PriceBook` (default: the
          shipped snapshot for the stack's region).
        - ``model_usd``: the agent's cost from its result: Claude Code's own estimate, or
          for a Bedrock model its tokens x the shipped Bedrock price (``model_source``
          says which); ``None`` for a command task or before a result exists.
        """
        from ..cost import TaskCost, model_cost

        compute = self._provider.cost(self.task_id, prices)
        try:
            agent = self.result().agent
        except TaskNotFoundError:
            agent = None
        if agent is None:
            return TaskCost(compute_usd=compute)
        model_usd, source = model_cost(agent.model_usage, agent.cost_usd)
        return TaskCost(compute_usd=compute, model_usd=model_usd, model_source=source)

    def __repr__(self) -> str:
        state = self.state()
        return f"Task({self.task_id!r}, status={state.status.value})"

    def __rich__(self) -> Text:
        """Its id, status (with the reason) and exit code, read now."""
        from rich.text import Text

        state = self.state()
        return Text.assemble(
            ("Task ", "bold"), (self.task_id, "bold"), ": ", styled(state.status.value),
            f" ({state.reason})" if state.reason else "", f"; exit code {state.exit_code}")

    def _repr_html_(self) -> str:
        return to_html(self)


def select_tasks(task_ids: Iterable[str], provider: TaskProvider, *, limit: int | None,
                 status: TaskStatus | None) -> list[Task]:
    """Handles for ``task_ids`` in order, keeping those of ``status``, at most ``limit``."""
    tasks: list[Task] = []
    for task_id in task_ids:
        if limit is not None and len(tasks) >= limit:
            break
        task = Task(task_id, provider)
        if status is None or task.status is status:
            tasks.append(task)
    return tasks
