"""The :class:`Deployment` facade: the object users hold."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._plan import Plan
from ._render import money, to_html
from ._validate import number_between
from .config import CREDENTIAL_ENV, DeploymentConfig, Usage, validate_name
from .errors import (
    ConfigError,
    EngineError,
    MissingCredentialError,
    MissingDependencyError,
    RclaudeError,
)
from .ledger import Ledger, Spend, spend, task_cap
from .tasks.spec import TaskSpec

if TYPE_CHECKING:
    from rich.text import Text

    from ._aws.ecs import EcsProvider
    from ._aws.image_build import ImageBuilder
    from ._aws.task_events import TaskEventQueue
    from ._pulumi.engine import StackSession
    from .checks import CheckItem, CheckReport
    from .cost import CostEstimate, TaskCost
    from .image_source import ImageBuild
    from .outputs import StackOutputs
    from .policy import PolicyReport
    from .prices import PriceBook
    from .progress import OnProgress, ProgressEvent
    from .status import DeploymentStatus
    from .sweep_report import SweepReport
    from .tasks.best_of import BestOf
    from .tasks.local import LocalProvider
    from .tasks.model import Task, TaskProvider, TaskStatus

DEFAULT_NAME = "dev"
PROVIDERS = ("ecs-ec2", "local")
_T = TypeVar("_T")


@attrs.frozen(kw_only=True)
class StackInfo:
    """A deployment in a backend (:meth:`Deployment.list`).

    >>> StackInfo(name="dev", last_update=None, update_in_progress=False,
    ...           resource_count=33).name
    'dev'
    """

    name: str
    last_update: datetime | None
    update_in_progress: bool
    resource_count: int | None


def plan(
    config: DeploymentConfig | None = None,
    *,
    name: str = DEFAULT_NAME,
    api_key: str | None = None,
    cache: bool = False,
) -> Plan:
    """Every resource ``up`` would create for ``config``, computed offline.

    Runs the stack's Pulumi program under the Pulumi runtime's mocks: no
    credentials, no network, no Pulumi CLI. Safe to call from a running event loop
    (a Jupyter cell) and any number of times in one process. ``api_key`` shows where
    the key would go; its value appears in the plan only as ``"[secret]"``. With
    ``cache``, a plan computed before for the same name, config, package files and
    Pulumi versions is read from disk (``$RCLAUDE_PLAN_CACHE``, by default
    ``~/.rclaude/cache/plans``) without running the program; the CLI's ``plan`` and
    ``cost`` do so.

    >>> from rclaude_infra import DeploymentConfig, plan
    >>> p = plan(DeploymentConfig(nat="single"), name="dev")
    >>> len(p.by_type("aws:ec2:NatGateway"))
    1
    """
    config = DeploymentConfig() if config is None else config
    if not isinstance(config, DeploymentConfig):
        raise ConfigError("config", config, "a DeploymentConfig")
    validate_name(name)
    key = None
    if cache:
        from ._pulumi import plan_cache

        key = plan_cache.cache_key(name, config, with_api_key=api_key is not None)
        found = plan_cache.load(key)
        if found is not None:
            return found
    try:
        from ._pulumi.mock_plan import mock_plan
    except ImportError as exc:  # pragma: no cover - both are runtime dependencies
        raise MissingDependencyError(exc.name or "pulumi", "The offline plan") from exc
    result = mock_plan(name, config, api_key=api_key)
    if key is not None:
        plan_cache.store(key, result)
    return result


_BACKEND_SCHEMES = ("file://", "s3://", "gs://", "azblob://", "https://", "http://")
_SECRETS_PROVIDERS = ("passphrase", "default")
_SECRETS_SCHEMES = ("awskms://", "azurekeyvault://", "gcpkms://", "hashivault://")


def _check_backend(backend: object) -> str | None:
    if backend is None:
        return None
    if not isinstance(backend, str) or not backend.startswith(_BACKEND_SCHEMES):
        raise ConfigError(
            "backend", backend,
            "None (a local file backend under ~/.rclaude/state), 'file://DIR', "
            "'s3://bucket/prefix?region=...', 'gs://...', 'azblob://...', or a Pulumi Cloud URL",
        )
    return backend


def _check_secrets_provider(provider: object) -> str | None:
    if provider is None:
        return None
    if not isinstance(provider, str) or not (
        provider in _SECRETS_PROVIDERS or provider.startswith(_SECRETS_SCHEMES)
    ):
        raise ConfigError(
            "secrets_provider", provider,
            "None or 'passphrase' (a generated passphrase, or PULUMI_CONFIG_PASSPHRASE), "
            "'default' (Pulumi Cloud), 'awskms://alias/NAME?region=...', 'gcpkms://...', "
            "'azurekeyvault://...' or 'hashivault://...'",
        )
    return provider


class Deployment:
    """One deployment of the ECS-on-EC2 stack: plan, price, check, deploy and destroy it.

    >>> from rclaude_infra import Deployment, DeploymentConfig
    >>> d = Deployment("dev", DeploymentConfig(region="eu-west-1"))
    >>> d.plan().config.region
    'eu-west-1'

    ``name`` becomes part of every resource name and the tag ``rclaude:deployment``,
    and is the Pulumi stack's name; it is checked at once (:func:`validate_name`).

    ``backend``: where Pulumi keeps the stack's state; default a local file backend in
    ``~/.rclaude/state`` (no Pulumi Cloud login), ``"s3://bucket/prefix?region=..."`` for
    teams. ``secrets_provider``: default a passphrase (``PULUMI_CONFIG_PASSPHRASE`` or
    ``..._FILE`` when set, else one generated once into ``~/.rclaude/passphrase``, mode
    0600), or ``"awskms://..."``. ``api_key`` / ``oauth_token``: the Claude credential of
    the config's ``auth`` mode, stored as a Pulumi secret (default: ``ANTHROPIC_API_KEY``
    or ``CLAUDE_CODE_OAUTH_TOKEN`` from the environment at ``up``; a stack keeps the one
    stored before). ``up`` refuses (:class:`~rclaude_infra.MissingCredentialError`) when
    there is none: its tasks could not start.
    ``aws_session``: the ``boto3.Session`` for checks, prices and the sweep.
    ``install_pulumi=True`` installs the Pulumi CLI into ``~/.rclaude/pulumi`` when missing.
    ``poll_interval``: how long a read of an ECS task's status is reused, in seconds
    (default 2): every read and ``wait`` in that time shares one ``DescribeTasks`` for all
    the tasks, so lower it for quicker waits on a few tasks, raise it for thousands.
    ``plan_cache=True`` reads :meth:`plan` (what the policy and budget guards of ``up`` and
    ``preview``, estimates and ``spend`` use) from the plan cache when it holds this
    config's plan, and stores it there otherwise (see :func:`plan`); the CLI sets it.
    """

    def __init__(
        self,
        name: str,
        config: DeploymentConfig | None = None,
        *,
        backend: str | None = None,
        secrets_provider: str | None = None,
        pulumi_home: str | None = None,
        aws_session: Any = None,
        install_pulumi: bool = False,
        api_key: str | None = None,
        oauth_token: str | None = None,
        pulumi_command: Any = None,
        provider: str = "ecs-ec2",
        tasks: TaskProvider | None = None,
        plan_cache: bool = False,
        poll_interval: float = 2.0,
    ) -> None:
        self._name = validate_name(name)
        self._poll_interval = number_between("poll_interval", poll_interval, 0, 3600)
        if provider not in PROVIDERS:
            raise ConfigError("provider", provider, "one of " + ", ".join(map(repr, PROVIDERS)))
        if tasks is not None and not all(callable(getattr(tasks, m, None)) for m in (
                "submit", "state", "advance", "pump", "list", "log_lines", "result", "stop",
                "spec")):
            raise ConfigError("tasks", tasks, "a task provider (rclaude_infra.tasks.model."
                              "TaskProvider: submit, state, advance, pump, list, ...)")
        self._injected = tasks
        self._provider_name = (provider if tasks is None
                               else str(getattr(tasks, "name", type(tasks).__name__)))
        self._local: LocalProvider | None = None
        self._ecs: EcsProvider | None = None
        config = DeploymentConfig() if config is None else config
        if not isinstance(config, DeploymentConfig):
            raise ConfigError("config", config, "a DeploymentConfig")
        self._config = config
        #: The config is the deployed stack's (so its capacity is known), unless this
        #: object was made from outputs alone.
        self._config_known = True
        self._backend = _check_backend(backend)
        self._secrets_provider = _check_secrets_provider(secrets_provider)
        self._pulumi_home = pulumi_home
        self._aws_session = aws_session
        self._install_pulumi = bool(install_pulumi)
        self._api_key = api_key
        self._oauth_token = oauth_token
        self._pulumi_command = pulumi_command
        self._session: StackSession | None = None
        self._outputs: StackOutputs | None = None
        self._plan: Plan | None = None
        self._plan_cache = bool(plan_cache)
        self._image_ready = False
        self._ledger: Ledger | None = None
        #: Guards making the ledger: run_task from several threads shares one.
        self._ledger_lock = threading.Lock()

    def _stack(self) -> StackSession:
        """The Automation API session: one work directory and one CLI for this object."""
        if self._session is None:
            from ._pulumi.engine import StackSession

            self._session = StackSession(
                self._name, self._config, backend=self._backend,
                secrets_provider=self._secrets_provider, pulumi_home=self._pulumi_home,
                install_pulumi=self._install_pulumi, api_key=self._api_key,
                oauth_token=self._oauth_token, command=self._pulumi_command,
            )
        return self._session

    def _run(self, operation: str, call: Callable[[OnProgress | None], _T],
             on_progress: OnProgress | None, progress: bool | None) -> _T:
        """Run a blocking engine call, with the live display when someone is watching, off
        the event loop's thread when one is running (Jupyter)."""
        from ._console import interactive, progress_display

        show = interactive() if progress is None else progress

        def body() -> _T:
            if not show:
                return call(on_progress)
            with progress_display(f"{operation} {self._name}") as display:
                def both(event: ProgressEvent) -> None:
                    display(event)
                    if on_progress is not None:
                        on_progress(event)

                return call(both)

        import asyncio  # here, not at import: asyncio costs more than the rest of the package
        import concurrent.futures

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return body()
        with concurrent.futures.ThreadPoolExecutor(1, "rclaude-engine") as pool:
            return pool.submit(body).result()

    # -- tasks -----------------------------------------------------------------------------

    @property
    def task_capacity(self) -> int | None:
        """How many tasks the group holds at once (``config.task_capacity``), beyond which
        tasks wait QUEUED; ``None`` when this object does not know the stack's config (made
        by :meth:`from_outputs` without ``config=``), and then every task starts at once.

        >>> Deployment.from_outputs("dev", {"region": "eu-west-1"}).task_capacity is None
        True
        """
        return self._config.task_capacity if self._config_known else None

    @property
    def provider(self) -> str:
        """Where tasks run: ``"ecs-ec2"`` (the stack) or ``"local"`` (subprocesses here)."""
        return self._provider_name

    @classmethod
    def from_outputs(cls, name: str, outputs: Mapping[str, Any] | str | StackOutputs, *,
                     session: Any = None, config: DeploymentConfig | None = None,
                     plan_cache: bool = False, poll_interval: float = 2.0) -> Deployment:
        """A task-capable Deployment for a stack deployed elsewhere (the Pulumi CLI in CI):
        ``outputs`` is what ``pulumi stack output --json`` prints, or ``Deployment.outputs``;
        ``plan_cache`` and ``poll_interval`` are those of :class:`Deployment`.

        >>> d = Deployment.from_outputs("dev", {"region": "eu-west-1", "bucket": "b"})
        >>> d.config.region
        'eu-west-1'
        """
        from .outputs import StackOutputs

        parsed = outputs if isinstance(outputs, StackOutputs) else StackOutputs.from_mapping(
            outputs)
        known = config is not None
        if config is None:
            config = DeploymentConfig(region=parsed.region or "us-east-1")
        deployment = cls(name, config, aws_session=session, plan_cache=plan_cache,
                         poll_interval=poll_interval)
        deployment._outputs = parsed
        deployment._config_known = known
        return deployment

    def _tasks(self) -> TaskProvider:
        if self._injected is not None:
            return self._injected
        if self._provider_name != "local":
            if self._ecs is None:
                from ._aws.ecs import EcsProvider

                self._ecs = EcsProvider(
                    self._boto_session(), self.outputs, deployment=self._name,
                    capacity=self.task_capacity, poll_interval=self._poll_interval)
            return self._ecs
        if self._local is None:
            from .paths import local_tasks_dir
            from .tasks.local import LocalProvider

            self._local = LocalProvider(local_tasks_dir(self._name),
                                        env=self._config.agent_environment())
        return self._local

    def _admit(self, spec: object, field: str = "spec",
               secret_values: Mapping[str, str] | None = None) -> TaskSpec:
        """Refuse, before anything starts, a spec this deployment cannot run: a model the
        Bedrock role may not call, a secret with no value, or (locally) a prompt with no
        credential to sign in."""
        if not isinstance(spec, TaskSpec):
            raise ConfigError(field, spec, "a TaskSpec")
        cfg = self._config
        if spec.model is not None and cfg.auth == "bedrock" and spec.model not in cfg.models:
            raise ConfigError("model", spec.model, "one of the deployment's bedrock_models (the "
                              "task role may call only those): " + ", ".join(cfg.models))
        given = secret_values or {}
        unset = [name for name in spec.secrets if name not in given and name not in os.environ]
        if unset:
            raise ConfigError("secrets", unset, "names of variables set in this environment "
                              "(their values are taken from it when the task is submitted), "
                              "or given in secret_values")
        for name, value in given.items():
            if name not in spec.secrets:
                raise ConfigError("secret_values", name, "values of names in spec.secrets")
            if not isinstance(value, str) or "\x00" in value or len(value) > 65536:
                raise ConfigError(f"secret_values.{name}", "(hidden)",
                                  "text without NUL bytes, at most 64 KiB (AWS Secrets "
                                  "Manager's limit)")
        env = cfg.credential_env
        if (spec.prompt is not None and self._provider_name == "local"
                and self._injected is None and env is not None
                and not os.environ.get(env)):
            other = next((a for a, e in CREDENTIAL_ENV.items() if e and os.environ.get(e)), None)
            raise MissingCredentialError(
                f"auth={cfg.auth!r} needs {env} in the environment for a local prompt task "
                "(each task runs Claude Code with its own configuration directory, so a "
                "`claude login` of yours does not reach it)"
                + (f"; {CREDENTIAL_ENV[other]} is set: use auth={other!r}" if other else ""),
                env=env)
        return spec

    def run_task(self, spec: TaskSpec, *,
                 secret_values: Mapping[str, str] | None = None) -> Task:
        """Start a task; returns its handle at once (``task.wait()`` blocks).

        Submitting the same ``task_id`` again returns the existing task: a retried
        submission never starts a task twice. A prompt runs Claude Code signed in as the
        config's ``auth`` says; locally, :class:`~rclaude_infra.MissingCredentialError`
        when the environment lacks the credential. The values of ``spec.secrets`` come
        from this process's environment, or from ``secret_values`` (name to value: a
        service holding each user's secrets passes them so); they reach the task as
        environment variables and are never written to its records.
        """
        spec = self._admit(spec, secret_values=secret_values)
        backend = self._tasks()
        self._require_image()
        reserved = self._reserve_budget(backend, [spec])
        try:
            if secret_values:
                values = {name: secret_values[name] if name in secret_values
                          else os.environ[name] for name in spec.secrets}
                return backend.submit(spec, secrets=values)
            return backend.submit(spec)
        except BaseException:
            self._release_budget(reserved)
            raise

    def resume(self, task_id: str, prompt: str, **changes: Any) -> Task:
        """Start a task that continues ``task_id`` (:meth:`Task.resume_spec`): the same
        agent session, from its work, with ``prompt``; checked like :meth:`run_task`."""
        return self.run_task(self.task(task_id).resume_spec(prompt, **changes))

    def run_best_of(self, spec: TaskSpec, *, n: int = 3,
                    check: str | Sequence[str] | None = None,
                    timeout: float | None = None) -> BestOf:
        """Run a prompt task ``n`` times at once, each attempt followed by ``check`` (the
        tests: ``"pytest -q"``; default ``spec.check``) in its own checkout; rank them
        (check passed, then a smaller non-empty diff, then cost) and deliver the winner.

        With ``spec.output`` ``"branch"`` or ``"pull-request"`` only the winner is pushed:
        a last task applies its diff to a fresh clone of ``ref``, runs the check again
        and delivers it (branch default ``rclaude/<task_id>``). Waits for all of it
        (``timeout`` per task); returns a :class:`~rclaude_infra.tasks.best_of.BestOf`::

            best = d.run_best_of(TaskSpec(prompt="Fix the failing test", repo=url,
                                          output="pull-request", ...), n=3, check="pytest -q")
            print(best)            # every attempt: check, diff size, cost; the winner
            best.pull_request_url
        """
        from .tasks.best_of import MAX_ATTEMPTS, Attempt, BestOf, rank
        from .tasks.model import TaskNotFoundError, TaskStatus

        if not isinstance(spec, TaskSpec):
            raise ConfigError("spec", spec, "a TaskSpec")
        if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= MAX_ATTEMPTS:
            raise ConfigError("n", n, f"an integer from 2 to {MAX_ATTEMPTS}")
        check = spec.check if check is None else check
        if check is None:
            raise ConfigError("check", None, "the command that judges each attempt's work, "
                              "e.g. 'pytest -q'")
        if spec.prompt is None or spec.repo is None:
            raise ConfigError("spec", spec.task_id, "a prompt task with a repo")
        spec = self._admit(spec)
        specs = [attrs.evolve(spec, task_id=f"{spec.task_id}-a{i}", check=check,
                              output="diff", branch=None, github_api_url=None)
                 for i in range(1, n + 1)]
        tasks = self.run_tasks(specs)
        found = []
        for task in tasks:
            state = task.wait(timeout=timeout)
            try:
                data: Mapping[str, Any] = task.result().data
            except TaskNotFoundError:
                data = {"reason": state.reason}
            found.append(Attempt.from_result(task.task_id, state.status.value, data,
                                             task.cost().total_usd))
        ranked = tuple(rank(found))
        if not ranked[0].check_passed:
            return BestOf(attempts=ranked, winner=None,
                          reason=f"no attempt passed the check ({n} tried)")
        winner = ranked[0]
        if spec.output == "diff":
            return BestOf(attempts=ranked, winner=winner.task_id)
        assert spec.prompt is not None  # checked above
        agent = self.task(winner.task_id).agent
        summary = "\n".join(f"- {a.task_id}: check {'passed' if a.check_passed else 'failed'}"
                            f", {a.diff_lines or 0} lines, ${a.cost_usd:.4f}" for a in ranked)
        # The winner's work is the delivery's whole diff: its command only lists it, and
        # the check runs after the diff is taken, so what the check leaves behind (caches,
        # reports) is never pushed.
        delivery = self.run_task(TaskSpec(
            command="git status --short", check=check, repo=spec.repo, ref=spec.ref,
            apply_from=winner.task_id,
            output=spec.output, branch=spec.branch_name, secrets=spec.secrets,
            git_token_secret=spec.git_token_secret, github_api_url=spec.github_api_url,
            env=spec.env, timeout=spec.timeout, task_id=f"{spec.task_id}-best",
            description=f"{spec.prompt.strip()}\n\n"
            + (f"{agent.text}\n\n" if agent is not None and agent.text else "")
            + f"The best of {n} attempts (rclaude-infra), by check, then diff size, then "
            f"cost:\n{summary}"))
        state = delivery.wait(timeout=timeout)
        result = delivery.result()
        return BestOf(attempts=ranked, winner=winner.task_id, delivery_task=delivery.task_id,
                      branch=result.branch, pull_request_url=result.pull_request_url,
                      reason=None if state.status is TaskStatus.SUCCEEDED else state.reason)

    def run_tasks(self, specs: Iterable[TaskSpec], *, workers: int = 16) -> list[Task]:
        """Start several tasks, ``workers`` submissions at a time; handles in the same order.

        Every spec is tried. Beyond what the group holds (``DeploymentConfig.task_capacity``)
        tasks wait ``QUEUED`` in S3 and start, oldest first, as others end (``wait()``,
        :meth:`reconcile`). When some could not start, :class:`~rclaude_infra.EngineError`
        names each with why; the others run. Calling again with the same specs starts only
        the missing ones (a task id is never started twice).
        """
        import concurrent.futures

        specs = [self._admit(spec, "specs") for spec in specs]
        ids = [s.task_id for s in specs]
        if len(set(ids)) != len(ids):
            raise ConfigError("specs", ids, "distinct task ids")
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ConfigError("workers", workers, "an integer of at least 1")
        if not specs:
            return []
        backend = self._tasks()
        self._require_image()
        self._reserve_budget(backend, specs)  # those that do not start are retried, not refunded
        with concurrent.futures.ThreadPoolExecutor(min(workers, len(specs)),
                                                   "rclaude-submit") as pool:
            futures = [pool.submit(backend.submit, spec) for spec in specs]
        failed = [(spec.task_id, f.exception()) for spec, f in zip(specs, futures, strict=True)
                  if f.exception() is not None]
        if failed:
            detail = "; ".join(f"{task_id}: {exc}" for task_id, exc in failed[:5])
            more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
            raise EngineError(
                f"{len(failed)} of {len(specs)} tasks could not start: {detail}{more}. The "
                f"other {len(specs) - len(failed)} run; run_tasks() with the same specs "
                "again starts only the missing ones") from failed[0][1]
        return [f.result() for f in futures]

    def task(self, task_id: str) -> Task:
        """Re-attach to a task by id, from any process (an id that is not one, ``../x``
        say, is a :class:`~rclaude_infra.errors.ConfigError` before anything is read)."""
        from .tasks.model import Task
        from .tasks.spec import check_task_id

        check_task_id(task_id)
        provider = self._tasks()
        provider.state(task_id)  # TaskNotFoundError now rather than later
        return Task(task_id, provider)

    def tasks(self, *, limit: int | None = 20, status: TaskStatus | None = None) -> list[Task]:
        """Task history, newest first, optionally of one status. A read: it starts nothing
        (see :meth:`reconcile`)."""
        return self._tasks().list(limit=limit, status=status)

    def reconcile(self, *, limit: int | None = 100) -> list[Task]:
        """The named step that reads never take: queued tasks start while the group has
        room (oldest first), and each of the ``limit`` newest tasks that a spot
        interruption stopped with retries left, or whose start timed out waiting for
        capacity, is submitted again. Returns those tasks. ``Task.wait()`` does the same
        for the task it waits on.

        >>> Deployment("dev", provider="local").reconcile()
        []
        """
        from .tasks.model import Task, TaskStatus

        provider = self._tasks()
        moved = [Task(task_id, provider) for task_id in provider.pump()]
        waiting = (TaskStatus.PREEMPTED, TaskStatus.QUEUED)
        for task in provider.list(limit=limit):  # one pass, one read of each task
            status = task.state().status
            if status in waiting and provider.advance(task.task_id).status is not status:
                moved.append(task)
        return moved

    def _budget(self, backend: TaskProvider) -> Ledger | None:
        """The month's ledger, when the config has a budget and this object knows the
        stack's config; its reservations are the provider's (shared by every process
        submitting to the deployment), else this process's own."""
        if self._config.max_monthly_usd is None or not self._config_known:
            return None
        with self._ledger_lock:
            if self._ledger is None:
                shared = getattr(backend, "reservations", None)
                self._ledger = Ledger(self._config.max_monthly_usd,
                                      lambda month: self._spend(month, None, in_flight=True),
                                      shared() if callable(shared) else None)
            return self._ledger

    def _cap(self, spec: TaskSpec) -> TaskCost:
        """The most ``spec`` may cost here (:func:`~rclaude_infra.ledger.task_cap`)."""
        return task_cap(spec, self._config, local=self._provider_name == "local",
                        prices=self.prices)

    def _reserve_budget(self, backend: TaskProvider, specs: Sequence[TaskSpec]) -> list[str]:
        """Refuse ``specs`` (:class:`~rclaude_infra.errors.BudgetExceededError`) when this
        month's spend so far plus their caps would pass ``max_monthly_usd``; else reserve
        their caps, for every process submitting to the deployment, and return their ids
        (:meth:`_release_budget` if they do not start).

        This month so far is :meth:`spend` since the 1st (UTC), with each task not ended
        counted at its cap (:meth:`_cap`); read again after
        :data:`~rclaude_infra.ledger.LEDGER_SECONDS`, and meanwhile the reservations of
        tasks it does not show yet are added to it (:class:`~rclaude_infra.ledger.Ledger`:
        the check and the reservation are one atomic step, under a file lock locally and
        by conditional writes to S3 on ECS)."""
        ledger = self._budget(backend)
        if ledger is None:
            return []
        return ledger.reserve({spec.task_id: self._cap(spec) for spec in specs})

    def _release_budget(self, task_ids: list[str]) -> None:
        """Tasks reserved by :meth:`_reserve_budget` did not start after all."""
        if self._ledger is not None:
            self._ledger.release(task_ids)

    def spend(self, since: datetime, *, prices: PriceBook | None = None) -> Spend:
        """What the deployment cost since ``since``: every task that ran in that window,
        compute and model (``Task.cost()``), plus the idle baseline of the planned stack for
        those hours (none for local tasks)."""
        if since.tzinfo is None:
            raise ConfigError("since", since, "a timezone-aware datetime")
        return self._spend(since, prices, in_flight=False)

    def _spend(self, since: datetime, prices: PriceBook | None, *, in_flight: bool) -> Spend:
        """:meth:`spend`; with ``in_flight``, a task not ended yet counts at its cap (it
        reports its own cost only at the end)."""
        import datetime as dt

        from .cost import estimate_cost

        book = prices or self.prices()
        # Local tasks run on this machine: no stack, no idle baseline.
        idle = (0.0 if self._provider_name == "local"
                else estimate_cost(self.plan(), prices=book).idle_monthly)
        def at_cap(task: Task) -> TaskCost:
            try:
                return self._cap(task.spec)
            except (RclaudeError, ValueError, OSError):
                # A spec no longer readable (a local task can rewrite its own): what the
                # task cost so far, rather than no budget check for anyone.
                return task.cost(book)

        return spend(self.tasks(limit=None), since, dt.datetime.now(dt.UTC), prices=book,
                     idle_monthly=idle, in_flight=at_cap if in_flight else None)

    def _guard(self) -> None:
        """Refuse before any cloud call: mandatory policy violations, budget."""
        self.check_policies().raise_for_mandatory()
        if self._config.max_monthly_usd is not None:
            self.check_budget()

    def preview(self, *, on_progress: OnProgress | None = None,
                progress: bool | None = None) -> dict[str, int]:
        """What ``up`` would change, by operation (``{"create": 31}``), from the engine."""
        self._guard()
        return self._run("preview", lambda cb: self._stack().preview(cb), on_progress, progress)

    def up(self, *, on_progress: OnProgress | None = None,
           progress: bool | None = None) -> StackOutputs:
        """Deploy (create or update) the stack and return its outputs.

        Refuses first, with nothing deployed, on a mandatory policy violation
        (:class:`~rclaude_infra.errors.PolicyViolationError`) or an estimate over
        ``max_monthly_usd`` (:class:`~rclaude_infra.errors.BudgetExceededError`). Before
        the engine runs it creates the account's ECS service-linked role when it is missing
        (:class:`~rclaude_infra.errors.ServiceLinkedRoleError`, naming the command, when
        these credentials may not).
        ``on_progress`` receives typed events (:mod:`rclaude_infra.progress`); ``progress``
        forces the live display on or off (default: on in a terminal or notebook).
        """
        self._guard()

        from .outputs import StackOutputs

        def deploy(callback: OnProgress | None) -> StackOutputs:
            from ._aws.prereqs import ensure_ecs_service_linked_role

            stack = self._stack()
            stack.command()  # no Pulumi CLI: say so before touching the account
            # The cluster's capacity provider fails to create without it, mid-deployment.
            ensure_ecs_service_linked_role(self._boto_session())
            self._outputs = StackOutputs.from_mapping(stack.up(callback))
            self._ecs = None  # its clients and caches were for the stack before
            if (self._provider_name != "local" and self._injected is None
                    and self._outputs.bucket and self._outputs.cluster_arn):
                # A destroy that failed part way left the deployment closed to new tasks.
                from ._aws.ecs import EcsProvider

                provider = self._tasks()
                assert isinstance(provider, EcsProvider)
                provider.reopen()
            if self._outputs.image_build_project:
                self._image_builder().ensure(on_progress=callback)
                self._image_ready = True
            return self._outputs

        return self._run("up", deploy, on_progress, progress)

    def ensure_image(self, *, on_progress: OnProgress | None = None,
                     progress: bool | None = None) -> ImageBuild:
        """Make sure the runner image exists (``build_image="remote"``): nothing when the
        repository has it, else wait for a build of it already running or upload the
        package and start one (CodeBuild, in the account), following its phases.

        ``up`` calls it; call it yourself to retry a failed build, or to wait for a build
        that ``up`` gave up on. Raises :class:`~rclaude_infra.errors.ImageBuildError`
        with the failed phase and the tail of the build's log. For a stack that does not
        build its image in the account it returns ``status="external"`` at once::

            d = Deployment("dev", DeploymentConfig(build_image="remote"))
            d.ensure_image().status      # "present", or "built" after a build
        """
        from .image_source import ImageBuild

        outputs = self.outputs
        if not outputs.image_build_project:
            return ImageBuild(image=outputs.image or "", status="external")
        result = self._run("image build",
                           lambda cb: self._image_builder().ensure(on_progress=cb),
                           on_progress, progress)
        self._image_ready = True
        return result

    def _image_builder(self) -> ImageBuilder:
        from ._aws.image_build import ImageBuilder

        return ImageBuilder(self._boto_session(), self.outputs)

    def _require_image(self) -> None:
        """Before a task goes to ECS: the image its task definition names exists (once
        per object: images are not deleted under a running stack)."""
        if (self._image_ready or self._injected is not None or self._provider_name == "local"
                or not self.outputs.image_build_project):
            return
        self._image_builder().require()
        self._image_ready = True

    def refresh(self, *, on_progress: OnProgress | None = None,
                progress: bool | None = None) -> dict[str, int]:
        """Bring the state in line with what exists in AWS; changes by operation."""
        return self._run("refresh", lambda cb: self._stack().refresh(cb), on_progress, progress)

    def destroy(self, *, remove: bool = False, stop_tasks: bool = True, drain: float = 0,
                on_progress: OnProgress | None = None, progress: bool | None = None) -> None:
        """Delete every resource of the stack; ``remove=True`` also removes the stack and
        its history from the backend.

        First the deployment is closed to new tasks, in every process
        (:class:`~rclaude_infra.errors.DeploymentClosedError`; a task another process
        started meanwhile is stopped by it or by destroy). Then tasks still running or
        waiting for capacity are stopped (``stop_tasks``; ``drain``: seconds they have to
        end by themselves first), and destroy waits until ECS has let them go: while
        tasks use the capacity provider, ECS refuses to detach it and the destroy would
        fail after minutes. The stopped tasks end STOPPED and keep what they uploaded. A
        destroy that fails leaves the deployment closed; ``up()`` opens it again."""
        drain = number_between("drain", drain, 0, 24 * 3600)
        if stop_tasks and self._provider_name != "local" and self._injected is None:
            self._stop_tasks_for_destroy(drain)
        self._run("destroy", lambda cb: self._stack().destroy(remove=remove, on_progress=cb),
                  on_progress, progress)
        self._outputs = None
        self._image_ready = False
        self._ecs = None

    def _stop_tasks_for_destroy(self, drain: float) -> list[str]:
        from ._aws.ecs import EcsProvider

        outputs = self.outputs  # no stack: the same StackNotFoundError destroy would raise
        if not outputs.cluster_arn or not outputs.bucket:
            return []
        provider = self._tasks()
        assert isinstance(provider, EcsProvider)  # the engine's stack: the ECS provider
        reason = f"the deployment {self._name!r} is being destroyed"
        provider.close(reason)
        return provider.stop_all(reason, drain=drain, timeout=300 + drain)

    @property
    def outputs(self) -> StackOutputs:
        """The deployed stack's outputs (from the last ``up``, else read from the state)."""
        if self._outputs is None:
            from .outputs import StackOutputs

            self._outputs = StackOutputs.from_mapping(
                self._run("outputs", lambda cb: self._stack().outputs(), None, False))
        return self._outputs

    def cancel(self) -> None:
        """Release the stack's lock after a crashed update (``pulumi cancel``)."""
        self._run("cancel", lambda cb: self._stack().cancel(), None, False)

    async def up_async(self, **kwargs: Any) -> StackOutputs:
        """:meth:`up` in a worker thread, for async code."""
        import asyncio

        return await asyncio.to_thread(self.up, **kwargs)

    async def preview_async(self, **kwargs: Any) -> dict[str, int]:
        import asyncio

        return await asyncio.to_thread(self.preview, **kwargs)

    async def refresh_async(self, **kwargs: Any) -> dict[str, int]:
        import asyncio

        return await asyncio.to_thread(self.refresh, **kwargs)

    async def destroy_async(self, **kwargs: Any) -> None:
        import asyncio

        await asyncio.to_thread(self.destroy, **kwargs)

    @classmethod
    def list(cls, *, backend: str | None = None, pulumi_command: Any = None) -> list[StackInfo]:
        """The deployments (stacks) in a backend, with their last update."""
        from ._pulumi.engine import StackSession

        session = StackSession("list", DeploymentConfig(), backend=_check_backend(backend),
                               command=pulumi_command)
        return [
            StackInfo(name=s.name, last_update=s.last_update,
                      update_in_progress=bool(s.update_in_progress),
                      resource_count=s.resource_count)
            for s in session.list_stacks()
        ]

    @classmethod
    def attach(cls, name: str, *, backend: str | None = None, pulumi_command: Any = None,
               **kwargs: Any) -> Deployment:
        """Pick up an existing stack from another process: its config comes from the stack."""
        from ._pulumi.engine import StackSession

        validate_name(name)
        session = StackSession(name, DeploymentConfig(), backend=_check_backend(backend),
                               command=pulumi_command)
        config = session.stored_config()
        deployment = cls(name, config, backend=backend, pulumi_command=session.command(),
                         **kwargs)
        if not kwargs.get("api_key") and not kwargs.get("oauth_token"):
            # Same stack, same work directory: keep the session that already selected it.
            deployment._session = session
        return deployment

    def check(self) -> CheckReport:
        """Prerequisites for ``up``: Pulumi CLI, AWS credentials and account, region
        enabled, ECS service-linked role, vCPU quota, and for the runner image Docker
        (``build_image=True``) or CodeBuild and its build quota (``"remote"``).
        Each item is ok, a warning or a problem with how to fix it."""
        import shutil
        import subprocess

        from ._aws.prereqs import aws_checks, codebuild_checks
        from ._pulumi.engine import MIN_PULUMI_VERSION, PULUMI_INSTALL_HINT, pulumi_cli_version
        from .checks import OK, PROBLEM, CheckItem, CheckReport

        items = []
        version = pulumi_cli_version(self._pulumi_command)
        items.append(CheckItem(
            name="Pulumi CLI", status=OK if version else PROBLEM,
            detail=f"pulumi {version}" if version else "not found on PATH",
            fix="" if version else f"at least {MIN_PULUMI_VERSION}: {PULUMI_INSTALL_HINT}",
        ))
        items += aws_checks(self._boto_session(), self._config)
        items.append(self._credential_check(version is not None))
        if self._config.image_mode == "remote":
            items += codebuild_checks(self._boto_session(), self._config)
        elif self._config.image_mode == "local":
            docker = shutil.which("docker")
            running = docker is not None and subprocess.run(
                [docker, "info"], capture_output=True, timeout=30).returncode == 0
            items.append(CheckItem(
                name="Docker", status=OK if running else PROBLEM,
                detail="engine running" if running else (
                    "no docker on PATH" if docker is None else "docker engine not reachable"),
                fix="" if running else "install and start Docker (the runner image is built "
                "locally), build it in the account instead (build_image='remote'), or give "
                "a prebuilt one (image=)",
            ))
        return CheckReport(items=tuple(items))

    def _credential_check(self, engine: bool) -> CheckItem:
        """Whether tasks will be able to sign in to Claude (the ``auth`` mode's credential is
        given, in the environment, or stored in the stack by an earlier ``up``)."""
        from .checks import OK, PROBLEM, CheckItem

        cfg = self._config
        if cfg.auth == "bedrock":
            return CheckItem(name="Claude sign-in", status=OK,
                             detail="Bedrock through the task role: " + ", ".join(cfg.models),
                             fix="")
        session = self._stack()
        stored = False
        if session.credential() is None and engine:
            try:
                stored = session.stored_credential()
            except RclaudeError:
                stored = False
        found = session.credential() is not None or stored
        param = "api_key" if cfg.auth == "api-key" else "oauth_token"
        return CheckItem(
            name="Claude sign-in", status=OK if found else PROBLEM,
            detail=(f"{cfg.credential_env} " + ("given" if session.credential() else
                                                "stored in the stack")) if found else
            f"auth={cfg.auth!r}: no {cfg.credential_env} given, in the environment or stored",
            fix="" if found else f"export {cfg.credential_env}=... or pass Deployment(..., "
            f"{param}=...)" + (" (from `claude setup-token`)" if cfg.auth == "oauth-token"
                               else "") + ", or use auth='bedrock'",
        )

    def _boto_session(self) -> Any:
        if self._aws_session is None:
            from ._aws import default_session

            self._aws_session = default_session(self._config.region)
        return self._aws_session

    @property
    def name(self) -> str:
        return self._name

    @property
    def config(self) -> DeploymentConfig:
        return self._config

    def plan(self) -> Plan:
        """Every resource ``up`` would create, computed offline (see :func:`plan`).

        Computed once per Deployment (its name and config are immutable): the policy and
        budget guards of ``up``, estimates and ``spend`` all read the same plan."""
        if self._plan is None:
            self._plan = plan(self._config, name=self._name, cache=self._plan_cache)
        return self._plan

    def check_policies(self) -> PolicyReport:
        """Every security rule on the planned stack, offline, with declared waivers applied.

        >>> from rclaude_infra import Deployment
        >>> Deployment("dev").check_policies().ok
        True
        """
        return self.plan().check_policies()

    def sweep(
        self, *, known: Iterable[str] | None = None, dry_run: bool = True, session: Any = None
    ) -> SweepReport:
        """Find resources tagged for this deployment that ``known`` (the ARNs or ids the
        stack still manages) does not name; delete them when ``dry_run`` is false.

        Only resources tagged ``rclaude:deployment=<name>`` are ever listed or deleted.
        ``known=None`` (the default) reads them from the stack's state (``pulumi stack
        export``; none when the stack is gone: whatever still carries the tag leaked).
        ``rclaude-infra sweep`` is the same from the terminal::

            report = Deployment("dev").sweep()          # after a destroy: every leftover
            report.swept                                # each with "would delete"
        """
        from ._aws.sweep import sweep
        from .errors import StackNotFoundError

        if known is None:
            try:
                known = self._stack().managed_ids()
            except StackNotFoundError:
                known = ()
        return sweep(session or self._boto_session(), self._config.region, self._name,
                     known=known, dry_run=dry_run)

    def prices(self, *, live: bool = False, session: Any = None) -> PriceBook:
        """The price book for this deployment's region: the shipped snapshot, or live
        on-demand and spot prices for its instance types (``live=True``, needs AWS
        credentials; cached for a day)."""
        if not live:
            from .prices import PriceBook

            return PriceBook.snapshot(self._config.region)
        from ._aws.pricing import live_prices

        return live_prices(session, self._config.region, self._config.instance_types)

    def estimate_cost(
        self, usage: Usage | None = None, prices: PriceBook | None = None
    ) -> CostEstimate:
        """What the planned stack costs idle, per task and a month for ``usage``
        (default: the config's), from the offline plan (see :func:`estimate_cost`).

        >>> from rclaude_infra import Deployment, Usage
        >>> estimate = Deployment("dev").estimate_cost(Usage(tasks_per_day=0))
        >>> round(estimate.idle_monthly, 2)
        0.5
        """
        from .cost import estimate_cost

        return estimate_cost(self.plan(), usage, prices or self.prices())

    def check_budget(self, prices: PriceBook | None = None) -> CostEstimate:
        """Raise :class:`~rclaude_infra.errors.BudgetExceededError` when the estimate for
        the config's ``usage`` is over its ``max_monthly_usd``; return the estimate."""
        estimate = self.estimate_cost(prices=prices)
        estimate.check_budget(self._config.max_monthly_usd)
        return estimate

    def task_events(self, queue_url: str | None = None) -> TaskEventQueue | None:
        """The queue of the cluster's task state changes (``task_events=True``): a
        service's workers read it instead of polling ECS. ``queue_url``: another queue
        (else the stack's output); ``None`` when the stack has none (or, locally, when no
        queue is given)."""
        from ._aws.task_events import TaskEventQueue

        if queue_url is None:
            if self._provider_name == "local":
                return None
            queue_url = self.outputs.task_events_queue_url
            if queue_url is None:
                return None
        return TaskEventQueue(queue_url, session=self._boto_session())

    def status(self) -> DeploymentStatus:
        """The deployment now: its outputs, the cluster's instances (type, spot or
        on-demand, tasks on each) and every task not yet ended. Locally: the tasks."""
        from ._aws.ecs import EcsProvider
        from .status import DeploymentStatus

        backend = self._tasks()
        if not isinstance(backend, EcsProvider):
            return DeploymentStatus(name=self._name, provider=self._provider_name,
                                    tasks=backend.active_task_ids())
        return DeploymentStatus(name=self._name, provider=self._provider_name,
                                outputs=backend.outputs, instances=backend.instances(),
                                tasks=backend.active_task_ids())

    def __repr__(self) -> str:
        return (f"Deployment({self._name!r}, region={self._config.region!r}, "
                f"provider={self._provider_name!r})")

    def __rich__(self) -> Text:
        """What it is and where (no cloud call): its config, and its stack when known."""
        from rich.text import Text

        cfg = self._config
        capacity = "spot" if cfg.spot else "on-demand"
        text = Text.assemble(
            ("Deployment ", "bold"), (self._name, "bold"),
            f" ({self._provider_name}) in {cfg.region}: {', '.join(cfg.instance_types)} "
            f"({capacity}, {cfg.min_instances}-{cfg.max_instances} instances), NAT {cfg.nat}"
            + ("" if cfg.max_monthly_usd is None else
               f", budget {money(cfg.max_monthly_usd)}/month"))
        if self._outputs is not None:
            text.append(f"\ndeployed: cluster {self._outputs.cluster_name or '?'}, "
                        f"bucket {self._outputs.bucket or '?'}")
        return text

    def _repr_html_(self) -> str:
        return to_html(self)
