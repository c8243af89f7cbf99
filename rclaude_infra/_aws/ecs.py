"""The ECS provider: tasks on the stack's cluster, through its capacity provider.

A task's spec goes to ``s3://<bucket>/tasks/<task_id>/spec.json`` first (container
overrides are capped at 8 KiB), then one ``RunTask`` with the capacity provider
strategy, a ``clientToken`` derived from the task id and attempt, and the task id in
``startedBy`` and the tags. ``attempts.json`` beside the spec records each attempt's task
ARN, so any process can re-attach, and, on a stack that scopes runs, the run's folder
(``runs/<task role id>:<ECS task id>/``, its session's ``aws:userid``): the submitter
copies the inputs there after RunTask, the runner may use nothing else, and the outputs
are read from there. Status for every watched task comes from one shared
``DescribeTasks`` per 100 ARNs; a task stopped by a spot interruption is PREEMPTED and
submitted again, under the same task id, while it has retries left.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from ..config import DEPLOYMENT_TAG
from ..errors import (
    ConfigError,
    DeploymentClosedError,
    EngineError,
    ExecError,
    PriceNotFoundError,
)
from ..outputs import StackOutputs
from ..prices import PriceBook
from ..status import InstanceInfo
from ..tasks.downloads import Downloaded
from ..tasks.layout import PREEMPTED_EXIT, RESULT_FILE, RUNNER_COMMAND, SPEC_FILE
from ..tasks.model import (
    LogLine,
    Task,
    TaskNotFoundError,
    TaskState,
    TaskStatus,
    select_tasks,
    state_from_result,
)
from ..tasks.spec import TaskSpec, is_task_id
from . import client_config, error_code, s3_tasks, task_secrets
from .s3_ledger import S3Reservations

TASK_TAG = "rclaude:task-id"
#: Written by stop(): who stopped the task and why.
STOP_FILE = "stop.json"
_BATCH = 100
#: How long a read of the closed marker is reused before a RunTask (run_tasks sends many).
CLOSED_READ_SECONDS = 1.0
#: How long destroy() waits after closing the deployment before it looks at the cluster:
#: a submitter that read the marker before it was written (at most CLOSED_READ_SECONDS
#: before its RunTask) has had its RunTask answered.
CLOSE_SETTLE_SECONDS = 3.0
#: How long a task whose spec is written may wait for its RunTask's answer before it
#: reads as never started (its submitter is gone).
UNSTARTED_GRACE_SECONDS = 300.0
#: ECS's quota of tasks PROVISIONING at once in a cluster (AWS, "Deep dive on Amazon ECS
#: cluster auto scaling"); beyond it RunTask fails.
PROVISIONING_QUOTA = 100
_PENDING_STATES = {"PROVISIONING", "PENDING", "ACTIVATING"}
_RUNNING_STATES = {"RUNNING"}
_PREEMPTION_CODES = {"SpotInterruption", "TerminationNotice"}
#: A task started with RunTask dies with its reclaimed spot host; ECS then says only
#: "Host EC2 (instance i-...) terminated." (shared/reference/ecs-runtime-facts.md).
_HOST_GONE = re.compile(r"Host EC2 \(instance i-[0-9a-f]+\) terminated")


def _batches(items: list[str]) -> Iterator[list[str]]:
    """``items`` 100 at a time: what DescribeTasks and DescribeContainerInstances take."""
    for start in range(0, len(items), _BATCH):
        yield items[start:start + _BATCH]


def map_task(task: Mapping[str, Any], container: str) -> TaskState:
    """An ECS ``DescribeTasks`` task as a :class:`TaskState`."""
    last = task.get("lastStatus", "")
    started, stopped = task.get("startedAt"), task.get("stoppedAt")
    if last in _PENDING_STATES:
        reason = ("waiting for capacity (the group is scaling out)" if last == "PROVISIONING"
                  else f"{last.lower()}: starting")
        return TaskState(status=TaskStatus.PENDING, reason=reason)
    if last in _RUNNING_STATES or last in ("DEACTIVATING", "STOPPING", "DEPROVISIONING"):
        return TaskState(status=TaskStatus.RUNNING, started_at=started,
                         reason=None if last == "RUNNING" else f"{last.lower()}")
    code = task.get("stopCode")
    stopped_reason = task.get("stoppedReason") or ""
    runner: Mapping[str, Any] = next(
        (c for c in task.get("containers", []) if c.get("name") == container), {})
    exit_code = runner.get("exitCode")
    container_reason = runner.get("reason") or ""
    if code in _PREEMPTION_CODES or _HOST_GONE.search(stopped_reason) or (
            "spot" in stopped_reason.lower() and "interrupt" in stopped_reason.lower()):
        return TaskState(status=TaskStatus.PREEMPTED, exit_code=exit_code, started_at=started,
                         stopped_at=stopped,
                         reason=f"spot interruption: {stopped_reason or code}")
    if code == "UserInitiated":
        return TaskState(status=TaskStatus.STOPPED, exit_code=exit_code, started_at=started,
                         stopped_at=stopped, reason=stopped_reason or "stopped")
    if code == "TaskFailedToStart":
        why = container_reason or stopped_reason
        if "CannotPullContainer" in why:
            why = f"image pull failed: {why}"
        return TaskState(status=TaskStatus.FAILED, exit_code=exit_code, started_at=started,
                         stopped_at=stopped, reason=why or "the task failed to start")
    if "OutOfMemory" in container_reason:
        return TaskState(status=TaskStatus.FAILED, exit_code=exit_code, started_at=started,
                         stopped_at=stopped, reason=f"out of memory: {container_reason}")
    if exit_code == 0:
        return TaskState(status=TaskStatus.SUCCEEDED, exit_code=0, started_at=started,
                         stopped_at=stopped)
    if exit_code is None:
        return TaskState(status=TaskStatus.FAILED, started_at=started, stopped_at=stopped,
                         reason=container_reason or stopped_reason or "stopped without an exit "
                         "code")
    return TaskState(status=TaskStatus.FAILED, exit_code=exit_code, started_at=started,
                     stopped_at=stopped, reason=container_reason or f"exit code {exit_code}")


class EcsProvider:
    """Runs tasks on the stack described by ``outputs``, with the clients of ``session``."""

    def __init__(self, session: Any, outputs: StackOutputs, *, deployment: str,
                 poll_interval: float = 2.0, capacity: int | None = None,
                 botocore_config: Any = None) -> None:
        """``botocore_config``: the botocore ``Config`` of its clients (default: adaptive
        retries, :func:`rclaude_infra._aws.client_config`), e.g. other retry settings."""
        missing = [name for name in ("cluster_arn", "capacity_provider", "task_definition_arn",
                                     "container_name", "bucket", "log_group")
                   if not getattr(outputs, name)]
        if missing:
            raise EngineError(f"the stack outputs lack {', '.join(missing)}: deploy the stack "
                              "(Deployment.up()) or pass the outputs it printed")
        self.outputs = outputs
        self.deployment = deployment
        region = outputs.region
        self._client_config = client_config() if botocore_config is None else botocore_config
        self._session = session
        self._region = region
        # Made on first use (a read of results needs S3 alone; each client costs tens of
        # milliseconds), under a lock: a boto3 session may not make clients in two
        # threads at once.
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.poll_interval = poll_interval
        self._described: dict[str, tuple[float, Mapping[str, Any] | None]] = {}
        self._attempts: dict[str, list[dict[str, Any]]] = {}
        self._final: dict[str, TaskState] = {}
        self._specs: dict[str, TaskSpec] = {}
        self._results: dict[str, Mapping[str, Any]] = {}
        #: How many tasks the group holds (None: unknown, every task is started at once
        #: and ECS keeps the rest PROVISIONING). Beyond it tasks wait QUEUED, in S3.
        self.capacity = capacity
        self._room_lock = threading.Lock()
        self._pump_lock = threading.Lock()
        #: The last look at the cluster: (when it began, the active ARNs, how many of
        #: them wait PROVISIONING).
        self._flight: tuple[float, frozenset[str], int] | None = None
        #: Claims of room whose RunTask has not answered yet, and the tasks RunTask
        #: started (ARN -> when it answered): both count until a look at the cluster
        #: begun after the answer sees them (or no longer does).
        self._pending = 0
        self._started: dict[str, float] = {}
        self._queue_seen: tuple[float, list[str]] | None = None
        self._closed_seen: tuple[float, dict[str, Any] | None] | None = None
        self._cleaned: set[str] = set()
        #: Starts whose confirmation (:meth:`_confirm`) failed: (attempt, ARN, why).
        self._unconfirmed: dict[str, tuple[int, str, str]] = {}
        # Re-entrant: resubmitting after a preemption records the attempt under the lock.
        self._lock = threading.RLock()
        self._describe_lock = threading.Lock()
        self.describe_calls = 0

    def _client(self, service: str) -> Any:
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(
                    service, region_name=self._region, config=self._client_config)
            return self._clients[service]

    @property
    def ecs(self) -> Any:
        return self._client("ecs")

    @property
    def s3(self) -> Any:
        return self._client("s3")

    @property
    def logs(self) -> Any:
        return self._client("logs")

    @property
    def secrets(self) -> Any:
        return self._client("secretsmanager")

    @property
    def _bucket(self) -> str:
        assert self.outputs.bucket is not None
        return self.outputs.bucket

    # -- submitting ------------------------------------------------------------------

    def submit(self, spec: TaskSpec, secrets: Mapping[str, str] | None = None) -> Task:
        """Start ``spec`` unless its task id was submitted before: the spec is created in S3
        only if absent (one conditional put: the check and the record in one call)."""
        if spec.interactive and not self.outputs.interactive_task_definition_arn:
            raise ConfigError(
                "interactive", True, "a stack deployed with interactive_tasks=True (this "
                "one has no task definition for ECS Exec): deploy it with "
                "interactive_tasks=True, or start the task without interactive")
        self._check_open(self.poll_interval)  # before anything is written
        if s3_tasks.write_json(self.s3, self._bucket, spec.task_id, SPEC_FILE,
                               spec.to_dict(), only_if_absent=True):
            self._specs[spec.task_id] = spec  # the stored spec: no GET for it later
            self._attempts[spec.task_id] = []  # new: no attempts to look up
        else:
            if self._attempts_of(spec.task_id):
                return Task(spec.task_id, self)  # submitted before: never twice
            # The spec is there but no attempt is: its submitter stopped between the two
            # calls, or is between them now. Look before starting (the client token also
            # keeps two submitters to one task on ECS).
            arn = self._find_started(spec.task_id, attempt=1)
            if arn is not None:
                self._confirm(self._spec(spec.task_id), 1, arn, "submitted")
                return Task(spec.task_id, self)
            if spec.task_id in self._queued_ids(fresh=True):
                return Task(spec.task_id, self)  # queued before: it starts in its turn
        if spec.earlier_work is not None:
            s3_tasks.copy_resume_inputs(self.s3, self._bucket, spec.earlier_work, spec.task_id,
                                        from_run=self._run(spec.earlier_work))
        if spec.secrets:
            # Given, or from this process's environment (Deployment checked they are all
            # there).
            task_secrets.put(self.secrets, self.deployment, spec.task_id,
                             dict(secrets) if secrets is not None
                             else {name: os.environ[name] for name in spec.secrets})
        if self.capacity is not None and self._queued_ids():
            self.pump()  # first come, first served: the queue before this task
        if not self._take_room():
            s3_tasks.enqueue(self.s3, self._bucket, spec.task_id)
            with self._room_lock:
                self._queue_seen = None
            return Task(spec.task_id, self)
        self._start(spec, attempt=1, claimed=True)
        return Task(spec.task_id, self)

    def reservations(self) -> S3Reservations:
        """The deployment's budget reservations, for submitters on any host."""
        return S3Reservations(self.s3, self._bucket)

    # -- closing: destroy() first stops new tasks ----------------------------------------

    def _check_open(self, max_age: float) -> None:
        """:class:`DeploymentClosedError` when the deployment takes no new tasks, by a
        read of the marker at most ``max_age`` seconds old."""
        now = time.monotonic()
        seen = self._closed_seen
        if seen is None or now - seen[0] >= max_age:
            seen = (now, s3_tasks.closed(self.s3, self._bucket))
            self._closed_seen = seen
        marker = seen[1]
        if marker is not None:
            reason = str(marker.get("reason") or "closed")
            raise DeploymentClosedError(
                f"the deployment {self.deployment!r} takes no new tasks: {reason} (since "
                f"{marker.get('at', 'an unknown time')}); up() opens it again", reason=reason)

    def close(self, reason: str) -> None:
        """Take no new task from now on, in any process: each submitter reads the marker
        before RunTask, and again after it, stopping a task it started meanwhile. Returns
        once a RunTask sent before the marker was there has had time to answer
        (:data:`CLOSE_SETTLE_SECONDS`), so a look at the cluster then sees its task."""
        s3_tasks.close(self.s3, self._bucket, reason)
        self._closed_seen = None
        time.sleep(CLOSE_SETTLE_SECONDS)

    def reopen(self) -> None:
        """Take new tasks again (``up()`` does it)."""
        s3_tasks.reopen(self.s3, self._bucket)
        self._closed_seen = None

    # -- capacity: start what the group holds, queue the rest ---------------------------

    def _in_flight(self) -> tuple[int, int]:
        """Tasks ECS runs or starts in the cluster, and how many of them wait PROVISIONING
        (at most one look per poll interval). Claims whose RunTask is still on its way, and
        starts newer than the look, are counted in: a look cannot see a task RunTask has
        not created yet. Called with the room lock held."""
        now = time.monotonic()
        if self._flight is None or now - self._flight[0] >= self.poll_interval:
            tasks = self._cluster_tasks()
            self._flight = (now, frozenset(t["taskArn"] for t in tasks),
                            sum(t.get("lastStatus") == "PROVISIONING" for t in tasks))
        when, arns, provisioning = self._flight
        # A start answered before the look began is in it, or has ended already.
        self._started = {a: t for a, t in self._started.items() if t >= when}
        unseen = self._pending + len(set(self._started) - arns)
        return len(arns) + unseen, provisioning + unseen

    def _take_room(self) -> bool:
        """Claim room for one more task: under the group's capacity and ECS's quota of
        PROVISIONING tasks per cluster. Always room when the capacity is unknown. A claim
        is settled by :meth:`_start` (its RunTask's answer) or :meth:`_release_room`."""
        if self.capacity is None:
            return True
        with self._room_lock:
            active, provisioning = self._in_flight()
            if active >= self.capacity or provisioning >= PROVISIONING_QUOTA:
                return False
            self._pending += 1
            return True

    def _release_room(self) -> None:
        """Give back room claimed by :meth:`_take_room` and not used."""
        if self.capacity is None:
            return
        with self._room_lock:
            self._pending = max(0, self._pending - 1)

    def _settle(self, arn: str | None) -> None:
        """A claim's RunTask answered: the task it started counts from now on (until a
        look sees it); ``None``: it started nothing, and the room is free again."""
        if self.capacity is None:
            return
        with self._room_lock:
            self._pending = max(0, self._pending - 1)
            if arn is not None:
                self._started[arn] = time.monotonic()

    def _queued_ids(self, *, fresh: bool = False) -> list[str]:
        """The queue, oldest first (one listing per poll interval)."""
        now = time.monotonic()
        seen = self._queue_seen
        if fresh or seen is None or now - seen[0] >= self.poll_interval:
            seen = (now, s3_tasks.queued(self.s3, self._bucket))
            self._queue_seen = seen
        return seen[1]

    def pump(self) -> list[str]:
        """Start queued tasks, oldest first, while the group has room; their ids. Taken by
        ``wait()`` on a queued task, ``run_tasks`` and ``Deployment.reconcile()``; any
        process holding the deployment may take it (the queue is in S3). Without room it
        costs no request beyond the shared count of tasks in flight."""
        started: list[str] = []
        if self.capacity is None:
            return started
        with self._pump_lock:  # one pump at a time here: a queued task starts once
            if not self._take_room():
                return started
            claimed = True
            for task_id in self._queued_ids(fresh=True):
                if not claimed and not self._take_room():
                    break
                # Started by another process between its start and its dequeue?
                self._attempts.pop(task_id, None)
                claimed = bool(self._attempts_of(task_id))  # then the room is still ours
                if not claimed:
                    try:
                        self._start(self._spec(task_id), attempt=1, claimed=True)
                    except DeploymentClosedError:
                        break  # closed: the queue is destroy()'s to empty
                    started.append(task_id)
                s3_tasks.dequeue(self.s3, self._bucket, task_id)
            if claimed:
                self._release_room()
            self._queue_seen = None
        return started

    def _start(self, spec: TaskSpec, *, attempt: int, why: str = "submitted",
               claimed: bool = False) -> str:
        """RunTask for ``spec``'s ``attempt``; ``claimed``: on room taken by
        :meth:`_take_room`, which its answer settles."""
        from botocore.exceptions import BotoCoreError, ClientError

        request: dict[str, Any] = {
            "cluster": self.outputs.cluster_arn,
            # An interactive task runs from the definition whose root ECS Exec's agent can
            # write; only it is started with exec, so no other task carries the agent.
            "taskDefinition": (self.outputs.interactive_task_definition_arn if spec.interactive
                               else self.outputs.task_definition_arn),
            "capacityProviderStrategy": [
                {"capacityProvider": self.outputs.capacity_provider, "weight": 1, "base": 0}],
            "clientToken": f"{spec.task_id}-a{attempt}",
            "startedBy": spec.task_id,
            "enableExecuteCommand": spec.interactive,
            "tags": [{"key": TASK_TAG, "value": spec.task_id},
                     {"key": DEPLOYMENT_TAG, "value": self.deployment}],
            "overrides": {"containerOverrides": [{
                "name": self.outputs.container_name,
                "command": list(RUNNER_COMMAND),
                "environment": [{"name": "RCLAUDE_TASK_ID", "value": spec.task_id},
                                {"name": "RCLAUDE_ATTEMPT", "value": str(attempt)}],
            }]},
        }
        if spec.cpu is not None:
            request["overrides"]["cpu"] = str(spec.cpu)
        if spec.memory is not None:
            request["overrides"]["memory"] = str(spec.memory)
        found: str | None = None
        try:
            # destroy() waits CLOSE_SETTLE_SECONDS after closing for a RunTask sent after
            # this read to have answered, then looks at the cluster.
            self._check_open(min(self.poll_interval, CLOSED_READ_SECONDS))
            response = self.ecs.run_task(**request)
        except (ClientError, BotoCoreError) as exc:
            # The request may have reached ECS before it failed: look before starting again.
            found = self._find_started(spec.task_id, attempt)
            if found is None:
                raise EngineError(f"could not start task {spec.task_id}: {exc}") from exc
        else:
            if response.get("failures") or not response.get("tasks"):
                reasons = "; ".join(f"{f.get('reason')} {f.get('detail', '')}".strip()
                                    for f in response.get("failures", []))
                raise EngineError(f"ECS did not start task {spec.task_id}: {reasons or 'no task'}")
            found = response["tasks"][0]["taskArn"]
            with self._describe_lock:
                self._described[found] = (time.monotonic(), response["tasks"][0])
        finally:
            if claimed:
                self._settle(found)
        assert found is not None  # RunTask started it, or the look found it
        try:
            self._confirm(spec, attempt, found, why)
        except (ClientError, BotoCoreError):
            # The task runs, and its spec (written before RunTask) says it was asked for:
            # the next read of its state here confirms it again, and any process that
            # finds no attempt record finds the task by its startedBy and confirms it.
            with self._lock:
                self._attempts.pop(spec.task_id, None)
                self._unconfirmed[spec.task_id] = (attempt, found, why)
        try:
            # Closed while RunTask was on its way? destroy() may have listed the cluster
            # before this task was there: the task is stopped here, by its submitter.
            self._check_open(0)
        except DeploymentClosedError as exc:
            self._record_stop(spec.task_id, exc.reason)
            self.ecs.stop_task(cluster=self.outputs.cluster_arn, task=found,
                               reason=exc.reason[:255])
            raise
        return found

    def _confirm(self, spec: TaskSpec, attempt: int, arn: str, why: str) -> None:
        """What follows a RunTask that started ``arn`` for ``spec``'s ``attempt``: its
        attempt record and, on a stack that scopes runs, its secret's grant and its run's
        inputs."""
        earlier = {a["attempt"]: a.get("run") for a in self._attempts_of(spec.task_id)}
        run = (None if self.outputs.task_role_id is None
               else f"{self.outputs.task_role_id}:{arn.rsplit('/', 1)[-1]}")
        self._record_attempt(spec.task_id, attempt, arn, why, run=run)
        if run is not None:
            # ECS names the run (its task role session) only as RunTask answers, so what
            # names the run comes after RunTask; and the container may start at once. So
            # everything the run needs is in place before its inputs, which the runner
            # waits for: the attempt record (above), then the secret's grant, then the
            # inputs, inputs.json last (a submitter stopped before that leaves the run to
            # fail, saying so, and the task's records intact).
            if spec.secrets:
                task_secrets.grant(self.secrets, self.deployment, spec.task_id, run)
            s3_tasks.stage_run(self.s3, self._bucket, spec.task_id, run, spec.to_dict(),
                               resume=spec.earlier_work is not None,
                               previous_run=earlier.get(attempt - 1),
                               after_attempt=attempt > 1)

    def _recover(self, task_id: str) -> TaskState | None:
        """A task whose spec is there but no attempt record and no queue entry: its
        submitter is between writing the spec and RunTask, or RunTask started it and the
        confirmation failed (then the task is found by its ``startedBy``, confirmed, and
        ``None`` returned), or its submitter stopped before RunTask.
        :class:`TaskNotFoundError` when there is no spec either."""
        spec = self._spec(task_id)
        arn = self._find_started(task_id, attempt=1)
        if arn is not None:
            self._confirm(spec, 1, arn, "submitted")
            return None
        written = s3_tasks.written_at(self.s3, self._bucket, task_id, SPEC_FILE)
        age = (dt.datetime.now(dt.UTC) - written).total_seconds() if written else 0.0
        if age < UNSTARTED_GRACE_SECONDS:
            return TaskState(status=TaskStatus.PENDING, reason=(
                "submitted: its start is not confirmed yet"))
        return TaskState(status=TaskStatus.FAILED, reason=(
            f"it was submitted {age / 60:.0f} minutes ago and never started (its submitter "
            "stopped before ECS started it, or ECS forgot it); submitting the same spec "
            "again starts it"))

    def _find_started(self, task_id: str, attempt: int) -> str | None:
        known = {a["arn"] for a in self._attempts_of(task_id)}
        for desired in ("RUNNING", "STOPPED"):
            arns = self.ecs.list_tasks(cluster=self.outputs.cluster_arn, startedBy=task_id,
                                       desiredStatus=desired)["taskArns"]
            fresh = [a for a in arns if a not in known]
            if fresh:
                return str(fresh[0])
        return None

    def _record_attempt(self, task_id: str, attempt: int, arn: str,
                        why: str = "submitted", *, run: str | None = None) -> None:
        with self._lock:
            attempts = [a for a in self._attempts_of(task_id) if a["attempt"] != attempt]
            attempts.append({"attempt": attempt, "arn": arn, "why": why,
                             "submitted_at": dt.datetime.now(dt.UTC).isoformat(),
                             **({"run": run} if run is not None else {})})
            self._attempts[task_id] = attempts
        s3_tasks.write_json(self.s3, self._bucket, task_id, s3_tasks.ATTEMPTS_FILE, attempts)

    def _attempts_of(self, task_id: str) -> list[dict[str, Any]]:
        if task_id not in self._attempts:
            found = s3_tasks.read_json(self.s3, self._bucket, task_id, s3_tasks.ATTEMPTS_FILE)
            if found is None:
                return []
            self._attempts[task_id] = list(found)
        return self._attempts[task_id]

    def _run(self, task_id: str) -> str | None:
        """The folder of the task's newest run (``None``: none yet, or a stack whose runs
        share the task's prefix)."""
        attempts = self._attempts_of(task_id)
        if not attempts:
            return None
        run = max(attempts, key=lambda a: a["attempt"]).get("run")
        return str(run) if run is not None else None

    def _latest(self, task_id: str) -> dict[str, Any]:
        """The task's newest attempt (its number and ARN); TaskNotFoundError without one."""
        attempts = self._attempts_of(task_id)
        if not attempts:
            raise TaskNotFoundError(f"no task {task_id!r} in s3://{self._bucket}/tasks/")
        return max(attempts, key=lambda a: a["attempt"])

    # -- status: one DescribeTasks per 100 ARNs, shared ----------------------------------

    def _describe(self, arn: str) -> Mapping[str, Any] | None:
        now = time.monotonic()
        with self._describe_lock:
            seen = self._described.get(arn)
            if seen is not None and now - seen[0] < self.poll_interval:
                return seen[1]
            # Refresh every watched task that is due, in batches, with this one first.
            due = [arn] + [a for a, (t, d) in self._described.items()
                           if a != arn and now - t >= self.poll_interval
                           and (d is None or d.get("lastStatus") != "STOPPED")]
            for batch in _batches(due):
                self.describe_calls += 1
                found = {t["taskArn"]: t for t in self.ecs.describe_tasks(
                    cluster=self.outputs.cluster_arn, tasks=batch)["tasks"]}
                stamp = time.monotonic() - random.uniform(0, self.poll_interval / 4)  # jitter
                for a in batch:
                    self._described[a] = (stamp, found.get(a))
            return self._described[arn][1]

    def state(self, task_id: str) -> TaskState:
        """The task's state now. A read: it never starts anything (a preempted task with
        retries left reads PREEMPTED until :meth:`advance` submits it again)."""
        final = self._final.get(task_id)
        if final is not None:
            return final
        state = self._current_state(task_id)
        if (state.status.done and self._attempts.get(task_id)
                and self._retries_left(task_id, state) == 0):
            self._final[task_id] = state  # an ended task does not change: no more calls
        return state

    def advance(self, task_id: str) -> TaskState:
        """The named step after a read. A QUEUED task starts when the group has room (the
        queue is taken oldest first); one whose start timed out waiting for capacity is
        submitted again; a PREEMPTED task with retries left is submitted again (another
        process that did so first is respected). Returns the state after the step.
        ``Task.wait()`` and ``Deployment.reconcile()`` take it."""
        state = self.state(task_id)
        if state.status is TaskStatus.QUEUED:
            if not self._attempts_of(task_id):
                self.pump()
                return self.state(task_id)
            if not self._take_room():
                return state
            return self._again(task_id, state, "capacity", claimed=True)
        if self._retries_left(task_id, state) == 0:
            if state.status.done and task_id not in self._cleaned:
                self._cleaned.add(task_id)
                if self._spec(task_id).secrets:  # the runner deletes it; unless it never ran
                    task_secrets.delete(self.secrets, self.deployment, task_id)
            return state
        return self._again(task_id, state, "preempted")

    def _again(self, task_id: str, state: TaskState, why: str, *,
               claimed: bool = False) -> TaskState:
        """The task's next attempt, unless another process made it already (``claimed``:
        on room taken for it, given back then)."""
        attempt = state.attempt + 1
        with self._lock:
            self._attempts.pop(task_id, None)
            if max(a["attempt"] for a in self._attempts_of(task_id)) < attempt:
                # Started before, and its confirmation lost? Then confirm that one.
                found = self._find_started(task_id, attempt)
                if found is not None:
                    self._confirm(self._spec(task_id), attempt, found, why)
                    if claimed:
                        self._release_room()
                else:
                    self._start(self._spec(task_id), attempt=attempt, why=why,
                                claimed=claimed)
            elif claimed:
                self._release_room()
        what = "a spot interruption" if why == "preempted" else "its start timed out"
        return TaskState(status=TaskStatus.PENDING, attempt=attempt,
                         reason=f"submitted again after {what} (attempt {attempt})")

    def spec(self, task_id: str) -> TaskSpec:
        """The task's spec, as submitted."""
        return self._spec(task_id)

    def _spec(self, task_id: str) -> TaskSpec:
        if task_id not in self._specs:
            data = s3_tasks.read_json(self.s3, self._bucket, task_id, SPEC_FILE)
            if data is None:
                raise TaskNotFoundError(f"no task {task_id!r} in s3://{self._bucket}/tasks/")
            self._specs[task_id] = TaskSpec.from_mapping(data)
        return self._specs[task_id]

    def _retries_left(self, task_id: str, state: TaskState) -> int:
        if state.status is not TaskStatus.PREEMPTED:
            return 0
        # Records from before attempts said why: every later attempt was a preemption's.
        used = sum(1 for a in self._attempts_of(task_id)
                   if a.get("why", "preempted" if a["attempt"] > 1 else "") == "preempted")
        return max(0, self._spec(task_id).max_retries_on_preemption - used)

    def _current_state(self, task_id: str) -> TaskState:
        unconfirmed = self._unconfirmed.pop(task_id, None)
        if unconfirmed is not None:
            attempt, arn, why = unconfirmed
            self._confirm(self._spec(task_id), attempt, arn, why)
        if not self._attempts_of(task_id):
            if task_id in self._queued_ids():  # the listing is shared, one per poll
                return TaskState(status=TaskStatus.QUEUED, reason=(
                    f"waiting for room: the group holds {self.capacity} tasks of this size "
                    "and all are taken; it starts when one ends (wait() or reconcile() "
                    "start it)"))
            self._attempts.pop(task_id, None)  # out of the queue: started, or stopped?
            if not self._attempts_of(task_id):
                stop = s3_tasks.read_json(self.s3, self._bucket, task_id, STOP_FILE)
                if stop is not None:  # stopped while it was queued: it never ran
                    return TaskState(status=TaskStatus.STOPPED, reason=stop["reason"])
                unstarted = self._recover(task_id)
                if unstarted is not None:
                    return unstarted
        latest = self._latest(task_id)
        described = self._describe(latest["arn"])
        container = self.outputs.container_name or "runner"
        if described is None:
            # ECS forgets stopped tasks after about an hour; the result stays in S3.
            result = s3_tasks.read_json(self.s3, self._bucket, task_id, RESULT_FILE,
                                        run=self._run(task_id))
            if result is None:
                return TaskState(status=TaskStatus.FAILED, attempt=latest["attempt"],
                                 reason="ECS no longer knows the task and it left no result")
            return state_from_result(result, latest["attempt"])
        state = attrs.evolve(map_task(described, container), attempt=latest["attempt"])
        if (described.get("lastStatus") == "STOPPED" and not described.get("startedAt")
                and not described.get("containerInstanceArn")
                and described.get("stopCode") != "UserInitiated"
                and state.status is not TaskStatus.PREEMPTED
                and s3_tasks.read_json(self.s3, self._bucket, task_id, STOP_FILE) is None):
            # Never placed and not stopped by anyone: ECS gave up waiting for capacity
            # (tasks wait PROVISIONING 10 to 30 minutes, then stop: containers-roadmap#2381).
            return TaskState(status=TaskStatus.QUEUED, attempt=latest["attempt"], reason=(
                "its start timed out waiting for capacity; it is submitted again by wait() "
                f"or reconcile() ({described.get('stoppedReason') or 'no reason given'})"))
        if (described.get("lastStatus") == "STOPPED" and described.get("stopCode") is None
                and described.get("stoppedReason")
                and state.status is not TaskStatus.PREEMPTED):
            # ECS says UserInitiated for a stop; with a reason but no stop code (moto sets
            # none), our own record decides: a stop we asked for is STOPPED, whatever the
            # exit code.
            stop = s3_tasks.read_json(self.s3, self._bucket, task_id, STOP_FILE)
            if stop is not None:
                state = attrs.evolve(state, status=TaskStatus.STOPPED, reason=stop["reason"])
        if state.status is TaskStatus.FAILED and state.exit_code == PREEMPTED_EXIT:
            # The runner's own exit on a spot notice; its result confirms it.
            result = s3_tasks.read_json(self.s3, self._bucket, task_id, RESULT_FILE,
                                        run=self._run(task_id))
            if result is not None and result.get("status") == "preempted":
                state = attrs.evolve(state, status=TaskStatus.PREEMPTED, reason=result["reason"])
        if state.status is TaskStatus.PREEMPTED and self._retries_left(task_id, state):
            state = attrs.evolve(state, reason=f"{state.reason}; it is submitted again (attempt "
                                 f"{state.attempt + 1}) by wait() or Deployment.reconcile()")
        return state

    # -- what a task cost ----------------------------------------------------------------

    def cost(self, task_id: str, prices: PriceBook | None = None) -> float:
        """Runtime x the task's share of its instance x the instance's price, summed over
        its attempts (a preempted attempt ran, and was paid, too); spot-aware."""
        from ..cost import task_cost

        attempts = self._attempts_of(task_id)
        if not attempts:
            raise TaskNotFoundError(f"no task {task_id!r}")
        region = self.outputs.region or "us-east-1"
        book = prices or PriceBook.snapshot(region)
        ec2 = self._ec2()
        total = 0.0
        for attempt in attempts:
            task = self._describe(attempt["arn"])
            if task is None:
                raise PriceNotFoundError(
                    f"ECS no longer knows attempt {attempt['attempt']} of task {task_id}; its "
                    "instance, and so its price, cannot be looked up")
            started = task.get("startedAt") or task.get("createdAt")
            if started is None or not task.get("containerInstanceArn"):
                continue  # never placed: nothing ran, nothing to pay
            stopped = task.get("stoppedAt") or dt.datetime.now(dt.UTC)
            instance = self.ecs.describe_container_instances(
                cluster=self.outputs.cluster_arn,
                containerInstances=[task["containerInstanceArn"]])["containerInstances"][0]
            described = ec2.describe_instances(InstanceIds=[instance["ec2InstanceId"]])
            ec2_instance = described["Reservations"][0]["Instances"][0]
            total += task_cost(
                runtime_hours=max(0.0, (stopped - started).total_seconds() / 3600),
                task_cpu=int(task.get("cpu", 0)) or 1024,
                task_memory=int(task.get("memory", 0)) or 2048,
                instance_type=ec2_instance["InstanceType"],
                spot=ec2_instance.get("InstanceLifecycle") == "spot",
                prices=book,
            )
        return total

    def _ec2(self) -> Any:
        return self._client("ec2")

    # -- logs, results, stop, history --------------------------------------------------

    def _stream(self, task_id: str) -> str | None:
        arn = self._latest(task_id)["arn"]
        return f"task/{self.outputs.container_name}/{arn.rsplit('/', 1)[-1]}"

    def log_lines(self, task_id: str, *, since: dt.datetime | None,
                  follow: bool) -> Iterator[LogLine]:
        from botocore.exceptions import ClientError

        stream = self._stream(task_id)
        token: str | None = None
        while True:
            done = self.state(task_id).status.done
            request: dict[str, Any] = {"logGroupName": self.outputs.log_group,
                                       "logStreamName": stream, "startFromHead": True}
            if token is not None:
                request["nextToken"] = token
            elif since is not None:
                request["startTime"] = int(since.timestamp() * 1000)
            try:
                page = self.logs.get_log_events(**request)
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise
                page = {"events": [], "nextForwardToken": token}  # the stream is not there yet
            for event in page["events"]:
                yield LogLine(time=dt.datetime.fromtimestamp(event["timestamp"] / 1000, dt.UTC),
                              text=event["message"].rstrip("\n"))
            new_token = page.get("nextForwardToken")
            # The same token back means nothing more for now.
            exhausted = new_token == token or not page["events"]
            token = new_token or token
            if exhausted and (not follow or done):
                return
            if exhausted:
                time.sleep(self.poll_interval)

    def result(self, task_id: str) -> Mapping[str, Any]:
        """The task's ``result.json``; read once when final (a preempted attempt's is not:
        the next attempt writes its own), as ``tasks``, ``spend`` and ``cost`` each ask."""
        if task_id in self._results:
            return dict(self._results[task_id])
        result = s3_tasks.read_json(self.s3, self._bucket, task_id, RESULT_FILE,
                                    run=self._run(task_id))
        if result is not None and result.get("status") != "preempted":
            self._results[task_id] = result
        if result is None:
            state = self.state(task_id)
            raise TaskNotFoundError(f"task {task_id} has no result in S3 yet (it is "
                                    f"{state.status.value})")
        return dict(result)

    def download(self, task_id: str, dest: Path, *,
                 names: Collection[str] | None = None) -> Downloaded:
        return s3_tasks.download_outputs(self.s3, self._bucket, task_id, dest,
                                         run=self._run(task_id), names=names)

    def stop(self, task_id: str, reason: str) -> None:
        if not self._attempts_of(task_id) and task_id in self._queued_ids(fresh=True):
            self._unqueue(task_id, reason)
            return
        arn = self._latest(task_id)["arn"]
        if task_id in self._final:
            return  # it ended: nothing to stop, and its end stays what it was
        self._record_stop(task_id, reason)
        self.ecs.stop_task(cluster=self.outputs.cluster_arn, task=arn, reason=reason[:255])
        with self._describe_lock:
            self._described.pop(arn, None)

    def _unqueue(self, task_id: str, reason: str) -> None:
        """A queued task that will never start: it ends STOPPED with ``reason``, leaves the
        queue, and its secrets (put at submission) go."""
        self._record_stop(task_id, reason)
        s3_tasks.dequeue(self.s3, self._bucket, task_id)
        if self._spec(task_id).secrets:
            task_secrets.delete(self.secrets, self.deployment, task_id)
        self._queue_seen = None

    def _record_stop(self, task_id: str, reason: str) -> None:
        s3_tasks.write_json(self.s3, self._bucket, task_id, STOP_FILE, {
            "reason": reason, "at": dt.datetime.now(dt.UTC).isoformat()})

    def exec(self, task_id: str, command: str, *, run: Any = None) -> int:
        """An interactive ``command`` in the task's container over ECS Exec; the session's
        exit code. ``run`` starts ``session-manager-plugin`` (default: a subprocess)."""
        from .ecs_exec import execute, find_plugin

        plugin = find_plugin()  # before any call: say what to install first
        if not self._spec(task_id).interactive:
            raise ExecError(
                f"task {task_id} was not started interactive, so ECS Exec is off for it; "
                "start tasks you want a shell in with TaskSpec(interactive=True) (`run "
                "--interactive`), on a stack deployed with interactive_tasks=True")
        arn = self._latest(task_id)["arn"]
        with self._describe_lock:
            self._described.pop(arn, None)  # exec needs now, not the last poll
        described = self._describe(arn)
        if described is None or described.get("lastStatus") != "RUNNING":
            state = self.state(task_id)
            raise ExecError(f"exec needs a RUNNING task; task {task_id} is "
                            f"{state.status.value}" + (f" ({state.reason})" if state.reason
                                                       else ""))
        return execute(self.ecs, described, self.outputs.container_name or "runner", command,
                       plugin=plugin, profile=getattr(self._session, "profile_name", None),
                       run=run)

    def active_task_ids(self) -> dict[str, str]:
        """Task id -> status of every task ECS still runs or starts in the cluster, and of
        every task waiting in the queue."""
        queued = dict.fromkeys(self._queued_ids(fresh=True), TaskStatus.QUEUED.value)
        return {**queued, **self._ecs_active()}

    def _ecs_active(self) -> dict[str, str]:
        container = self.outputs.container_name or "runner"
        # Ours carry the task id in full: a foreign startedBy is not a task of ours.
        return {task["startedBy"]: map_task(task, container).status.value
                for task in self._cluster_tasks() if is_task_id(task.get("startedBy"))}

    def _cluster_tasks(self) -> list[dict[str, Any]]:
        """The tasks ECS runs or starts in the cluster (described), but those an ECS
        service runs: the hosted service's own (``mode="service"``, on Fargate). ECS groups
        them ``service:<name>`` and replaces each stopped one; they use no instance of the
        stack, and destroy removes them with their services."""
        arns: list[str] = []
        for page in self.ecs.get_paginator("list_tasks").paginate(
                cluster=self.outputs.cluster_arn, desiredStatus="RUNNING"):
            arns += page["taskArns"]
        tasks: list[dict[str, Any]] = []
        for batch in _batches(sorted(arns)):
            tasks += [task for task in self.ecs.describe_tasks(
                cluster=self.outputs.cluster_arn, tasks=batch)["tasks"]
                if not str(task.get("group", "")).startswith("service:")]
        return tasks

    def stop_all(self, reason: str, *, timeout: float = 300, drain: float = 0) -> list[str]:
        """Stop every task the cluster runs or starts (PROVISIONING ones included) and wait
        until ECS lets them go: the capacity provider cannot be detached, nor the cluster
        deleted, while tasks use them. Our tasks end STOPPED with ``reason`` and still
        upload what they have; queued ones leave the queue. ``drain``: seconds the running
        tasks have to end by themselves first (within ``timeout``). Returns the task ids
        stopped (none when the cluster is gone already)."""
        from botocore.exceptions import ClientError

        stopped: list[str] = []
        asked: set[str] = set()
        try:
            active = self._cluster_tasks()
        except ClientError as exc:
            if error_code(exc) == "ClusterNotFoundException":
                return stopped
            raise
        deadline = time.monotonic() + timeout
        drain_until = time.monotonic() + drain
        for task_id in self._queued_ids(fresh=True):  # the queue empties: nothing starts
            self._unqueue(task_id, reason)
            stopped.append(task_id)
        while active:
            if time.monotonic() >= drain_until:
                # Each look stops what it finds not asked yet: a task whose RunTask passed
                # the closed marker's first read and whose submitter did not live to read
                # it again is stopped by the next look.
                stopped += self._stop_tasks([t for t in active if t["taskArn"] not in asked],
                                            reason)
                asked.update(t["taskArn"] for t in active)
            if time.monotonic() >= deadline:
                raise EngineError(f"{len(active)} tasks were still stopping after "
                                  f"{timeout:.0f}s; destroy again once they have stopped")
            time.sleep(self.poll_interval)
            active = self._cluster_tasks()
        with self._describe_lock:
            self._described.clear()
        return stopped

    def _stop_tasks(self, tasks: list[dict[str, Any]], reason: str) -> list[str]:
        """Stop these (described) ECS tasks; the task ids of ours among them (recorded as
        stopped)."""
        stopped = []
        for task in tasks:
            task_id = str(task.get("startedBy") or "")
            if is_task_id(task_id):  # a foreign startedBy names no record of ours
                self._record_stop(task_id, reason)
                stopped.append(task_id)
            self.ecs.stop_task(cluster=self.outputs.cluster_arn, task=task["taskArn"],
                               reason=reason[:255])
        return stopped

    def instances(self) -> tuple[InstanceInfo, ...]:
        """The cluster's container instances, with their EC2 type and lifecycle."""
        arns: list[str] = []
        for page in self.ecs.get_paginator("list_container_instances").paginate(
                cluster=self.outputs.cluster_arn):
            arns += page["containerInstanceArns"]
        found: list[dict[str, Any]] = []
        for batch in _batches(arns):
            found += self.ecs.describe_container_instances(
                cluster=self.outputs.cluster_arn, containerInstances=batch)["containerInstances"]
        ec2: dict[str, Any] = {}
        ids = [c["ec2InstanceId"] for c in found]
        if ids:
            for page in self._ec2().get_paginator("describe_instances").paginate(
                    InstanceIds=ids):
                for reservation in page["Reservations"]:
                    ec2.update({i["InstanceId"]: i for i in reservation["Instances"]})
        return tuple(InstanceInfo(
            instance_id=c["ec2InstanceId"],
            instance_type=ec2.get(c["ec2InstanceId"], {}).get("InstanceType"),
            lifecycle="spot" if ec2.get(c["ec2InstanceId"], {}).get(
                "InstanceLifecycle") == "spot" else "on-demand",
            status=c.get("status", ""), running_tasks=int(c.get("runningTasksCount", 0)),
            pending_tasks=int(c.get("pendingTasksCount", 0)),
            agent_connected=bool(c.get("agentConnected", False)),
        ) for c in found)

    def list(self, *, limit: int | None = None, status: TaskStatus | None = None) -> list[Task]:
        """Tasks from the S3 history (newest ids first), with live ECS state."""
        ids = sorted(s3_tasks.list_task_ids(self.s3, self._bucket), reverse=True)
        return select_tasks(ids, self, limit=limit, status=status)
