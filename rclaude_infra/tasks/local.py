"""The local provider: each task is a runner subprocess on this machine.

Task directories live under ``~/.rclaude/local/<deployment>/tasks/<task_id>/`` with the
same layout as a task's S3 prefix (see :mod:`rclaude_infra.tasks.runner`), plus
``process.json`` (the runner's pid and start time) and ``runner.out`` (the runner's own
stdout and stderr). Everything a handle needs is in that directory, so any process can
re-attach to a task and follow it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import ExecError
from .downloads import Downloaded, copy_tree
from .layout import (
    ARTIFACTS_DIR,
    CGROUP_FILE,
    LOG_FILE,
    OUTPUT_FILES,
    RESULT_FILE,
    RESUME_DIR,
    RESUME_INPUTS,
    SPEC_FILE,
    STOP_REASON_FILE,
)
from .model import (
    LogLine,
    Task,
    TaskNotFoundError,
    TaskState,
    TaskStatus,
    select_tasks,
    state_from_result,
)
from .processes import Cgroup, start_ticks
from .records import copy_record, read_record, write_record
from .reservations import FileReservations
from .spec import TaskSpec, check_task_id, is_task_id

PROCESS_FILE = "process.json"
#: How long a task's folder may be in place before its runner is recorded: its submitter
#: is starting it (longer, and the submitter died: the task reads FAILED).
START_GRACE_SECONDS = 30.0
RUNNER_OUT = "runner.out"


def _log_line(raw: bytes) -> LogLine:
    """One line of the task's log. The log is in the task's reach (it runs as this user):
    a line that is not the runner's ``{"t": ms, "line": text}`` is shown as it is, raw,
    stamped now, never an error."""
    try:
        entry = json.loads(raw)
        return LogLine(time=dt.datetime.fromtimestamp(float(entry["t"]) / 1000, dt.UTC),
                       text=str(entry["line"]))
    except (ValueError, TypeError, KeyError, OverflowError, OSError):
        return LogLine(time=dt.datetime.now(dt.UTC),
                       text=raw.decode("utf-8", errors="replace"))


def _parse_time(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else None


#: What no local task inherits from the process that starts it: the keys of a service
#: that runs tasks for its users (its secrets' key, its database's URL with its password,
#: its OAuth apps' secrets). A task runs arbitrary commands and prints what it likes.
WITHHELD_ENV = frozenset({"RCLAUDE_SECRETS_KEY", "RCLAUDE_DATABASE_URL",
                          "RCLAUDE_GITHUB_CLIENT_SECRET", "RCLAUDE_GOOGLE_CLIENT_SECRET"})


def inherited_env() -> dict[str, str]:
    """This process's environment without :data:`WITHHELD_ENV`."""
    return {k: v for k, v in os.environ.items() if k not in WITHHELD_ENV}


class LocalProvider:
    """Runs tasks as local subprocesses of ``python -m rclaude_infra.runner``."""

    #: A local task's files are cheap to read: look often.
    poll_interval = 0.1

    def __init__(self, root: Path, *, env: Mapping[str, str] | None = None) -> None:
        self.root = root
        #: Added to the runners' environment (e.g. the Bedrock switch and models).
        self.env = dict(env or {})
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def reservations(self) -> FileReservations:
        """The deployment's budget reservations on this machine, beside its tasks."""
        return FileReservations(self.root.parent / "ledger")

    def _dir(self, task_id: str) -> Path:
        # An id is a folder name here: never a path (it comes from users and records).
        return self.root / check_task_id(task_id)

    def _existing(self, task_id: str) -> Path:
        path = self._dir(task_id)
        if not (path / SPEC_FILE).is_file():
            raise TaskNotFoundError(f"no task {task_id!r} under {self.root}")
        return path

    # -- submitting ------------------------------------------------------------------

    def submit(self, spec: TaskSpec, secrets: Mapping[str, str] | None = None) -> Task:
        """Start the runner for ``spec``; the same task id is never started twice.

        The task's folder appears whole or not at all: its spec is written and synced in
        a staging folder that is then renamed into place (one atomic step, which also
        decides between two submitters of one id). A failed write (a full disk) leaves
        nothing that blocks a retry. A submitter that finds the task there already
        returns once its runner is recorded, so the handle it returns is usable at once."""
        path = self._dir(spec.task_id)
        with self._lock:
            started = self._start(spec, path, secrets or {})
        # Another submitter's task: waited for outside the lock.
        return started if started is not None else self._recorded(spec.task_id, path)

    def _start(self, spec: TaskSpec, path: Path, secrets: Mapping[str, str]) -> Task | None:
        """The new task's handle, or ``None`` when the id is another submitter's."""
        if (path / SPEC_FILE).is_file():
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{spec.task_id}.", dir=self.root))
        try:
            write_record(staging / SPEC_FILE, json.dumps(spec.to_dict(), indent=2))
            if spec.earlier_work is not None:
                self._copy_resume_inputs(spec.earlier_work, staging)
            try:
                os.rename(staging, path)  # fails if another submitter's folder is there
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                shutil.rmtree(staging, ignore_errors=True)
                return None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with (path / RUNNER_OUT).open("wb") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "rclaude_infra.runner", "--task-dir", str(path)],
                cwd=path, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env={**inherited_env(), **self.env, **secrets},
            )
        self._children[spec.task_id] = child
        write_record(path / PROCESS_FILE, json.dumps({
            "pid": child.pid, "start_ticks": start_ticks(child.pid),
            "submitted_at": dt.datetime.now(dt.UTC).isoformat(),
        }))
        return Task(spec.task_id, self)

    def _recorded(self, task_id: str, path: Path, *,
                  timeout: float = START_GRACE_SECONDS) -> Task:
        """The handle of a task another submitter is starting, once its runner is
        recorded (or it has a result): until then its state would read as a runner gone."""
        deadline = time.monotonic() + timeout
        while not any((path / name).exists() for name in (PROCESS_FILE, RESULT_FILE,
                                                           STOP_REASON_FILE)):
            if time.monotonic() >= deadline:
                break  # its submitter died before starting it: the state says so
            time.sleep(0.02)
        return Task(task_id, self)

    def _copy_resume_inputs(self, from_task: str, path: Path) -> None:
        earlier = self._existing(from_task)
        (path / RESUME_DIR).mkdir()
        for name in RESUME_INPUTS:  # the earlier task's to replace with links: not followed
            copy_record(earlier / name, path / RESUME_DIR / name)

    def spec(self, task_id: str) -> TaskSpec:
        """The task's spec, as submitted."""
        data = read_record(self._existing(task_id) / SPEC_FILE)
        if data is None:
            raise TaskNotFoundError(f"task {task_id}'s {SPEC_FILE} is not a regular file")
        return TaskSpec.from_mapping(json.loads(data))

    def _alive(self, task_id: str, path: Path) -> bool:
        child = self._children.get(task_id)
        if child is not None:
            return child.poll() is None  # our own child: poll() also reaps it
        return self._runner_pid(path) is not None

    def _runner_pid(self, path: Path) -> int | None:
        """The pid of the runner this provider started for the task at ``path``, if it
        still runs, proven: ``process.json`` is the task's to overwrite (it runs as this
        user), so its pid counts only when that process started when recorded, leads its
        own process group (the runner is started in a session of its own) and is
        ``python -m rclaude_infra.runner --task-dir <path>``."""
        try:
            process = json.loads(read_record(path / PROCESS_FILE) or b"null")
            pid = int(process["pid"])
        except (ValueError, KeyError, TypeError):
            return None
        ticks = start_ticks(pid)
        if ticks is None or ticks != process.get("start_ticks"):
            return None
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            leads = os.getpgid(pid) == pid
        except (OSError, ProcessLookupError):
            return None
        runner = [b"-m", b"rclaude_infra.runner", b"--task-dir", os.fsencode(path)]
        return pid if leads and argv[1:5] == runner else None

    # -- reading -----------------------------------------------------------------------

    def state(self, task_id: str) -> TaskState:
        path = self._existing(task_id)
        submitted = self._submitted_at(path)
        if self._alive(task_id, path):
            running = (path / LOG_FILE).exists()
            return TaskState(status=TaskStatus.RUNNING if running else TaskStatus.PENDING,
                             started_at=submitted)
        result = self._read_result(path)
        if result is not None:
            return state_from_result(result)
        if not (path / PROCESS_FILE).exists() and self._young(path):
            # Its folder is in place and its submitter is starting the runner now: not
            # a runner gone (the budget would count it as ended, at nothing).
            return TaskState(status=TaskStatus.PENDING, reason="submitted: its runner is "
                             "starting")
        # The runner is gone without its result: killed. What its command started in
        # sessions of its own outlived it; where it ran in a cgroup, it ends now.
        self._end_leftovers(task_id, path)
        asked = read_record(path / STOP_REASON_FILE, limit=4096)
        if asked is not None:
            # Stopped before the runner could handle the signal (it was still starting).
            return TaskState(status=TaskStatus.STOPPED, started_at=submitted,
                             reason=asked.decode("utf-8", errors="replace"))
        return TaskState(
            status=TaskStatus.FAILED, started_at=submitted,
            reason=f"the runner exited without a result; see {path / RUNNER_OUT}",
        )

    @staticmethod
    def _young(path: Path) -> bool:
        """Submitted less than :data:`START_GRACE_SECONDS` ago."""
        try:
            written = (path / SPEC_FILE).stat().st_mtime
        except OSError:
            return False
        return time.time() - written < START_GRACE_SECONDS

    @staticmethod
    def _end_leftovers(task_id: str, path: Path) -> None:
        recorded = read_record(path / CGROUP_FILE, limit=4096)
        cgroup = (None if recorded is None
                  else Cgroup.found(recorded.decode("utf-8", errors="replace"), task_id))
        if cgroup is not None:
            cgroup.remove()

    def advance(self, task_id: str) -> TaskState:
        """A local task has no pending step (nothing preempts it): its state."""
        return self.state(task_id)

    def pump(self) -> list[str]:
        """Local tasks start at once: nothing is ever queued."""
        return []

    def _submitted_at(self, path: Path) -> dt.datetime | None:
        try:
            return _parse_time(json.loads(read_record(path / PROCESS_FILE) or b"null")
                               ["submitted_at"])
        except (ValueError, KeyError, TypeError):
            return None

    @staticmethod
    def _read_result(path: Path) -> dict[str, Any] | None:
        """The task's ``result.json`` as its runner left it. The task could write that
        name while it ran (it runs as this user): the runner replaces it once the command
        and all it started have ended, and callers read it only once the runner has
        exited, as a regular file holding a JSON object."""
        try:
            data = json.loads(read_record(path / RESULT_FILE) or b"null")
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _final_result(self, task_id: str, path: Path) -> dict[str, Any] | None:
        """:meth:`_read_result`, once the runner has exited (what is there before is
        the task's to forge)."""
        return None if self._alive(task_id, path) else self._read_result(path)

    def log_lines(self, task_id: str, *, since: dt.datetime | None,
                  follow: bool) -> Iterator[LogLine]:
        path = self._existing(task_id)
        since_ms = None if since is None else since.timestamp() * 1000
        offset, pending = 0, b""
        while True:
            finished = self._final_result(task_id, path) is not None
            try:
                with (path / LOG_FILE).open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
            except FileNotFoundError:
                chunk = b""
            offset += len(chunk)
            data = pending + chunk
            *complete, pending = data.split(b"\n")
            for raw in complete:
                if not raw.strip():
                    continue
                line = _log_line(raw)
                if since_ms is not None and line.time.timestamp() * 1000 < since_ms:
                    continue
                yield line
            # The result is written after the last log line: once it was there before
            # this read, everything has been read.
            if not follow or (finished and not chunk):
                return
            if not chunk:
                if not finished and self.state(task_id).status.done:
                    continue  # the runner died without a result: read what is left, once
                time.sleep(self.poll_interval)

    def result(self, task_id: str) -> Mapping[str, Any]:
        path = self._existing(task_id)
        result = self._final_result(task_id, path)
        if result is None:
            state = self.state(task_id)
            raise TaskNotFoundError(f"task {task_id} has no result yet (it is "
                                    f"{state.status.value}); wait() for it first")
        return result

    def download(self, task_id: str, dest: Path, *,
                 names: Collection[str] | None = None) -> Downloaded:
        """The task's records and artifacts (``names``: those only) into
        ``dest/<task_id>/``: regular files only; a link the task left is skipped
        (reported), never followed."""
        path = self._existing(task_id)
        target = dest / task_id
        target.mkdir(parents=True, exist_ok=True)
        return copy_tree(path, target, (RESULT_FILE, SPEC_FILE, *OUTPUT_FILES),
                         tree=ARTIFACTS_DIR, only=names)

    def stop(self, task_id: str, reason: str) -> None:
        path = self._existing(task_id)
        child = self._children.get(task_id)
        pid = (child.pid if child is not None and child.poll() is None
               else self._runner_pid(path))
        if pid is None:
            return  # not running, or not a process this provider can prove it started
        write_record(path / STOP_REASON_FILE, reason)
        # The runner forwards this to the command's process group, then writes its
        # result (status "stopped") with the logs and the diff so far.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)

    def cost(self, task_id: str, prices: Any = None) -> float:
        """A local task runs on this machine: it costs nothing on AWS."""
        self._existing(task_id)
        return 0.0

    def exec(self, task_id: str, command: str, *, run: Any = None) -> int:
        """``command`` through the shell in the running task's working directory (its
        clone when it has a repository), with this terminal; the command's exit code."""
        path = self._existing(task_id)
        state = self.state(task_id)
        if state.status is not TaskStatus.RUNNING:
            raise ExecError(f"exec needs a RUNNING task; task {task_id} is "
                            f"{state.status.value}")
        work = path / "workspace"
        cwd = work / "repo" if (work / "repo").is_dir() else work
        return int((run or subprocess.call)(["/bin/sh", "-c", command], cwd=cwd))

    def active_task_ids(self) -> dict[str, str]:
        """Task id -> status of every task not ended yet."""
        return {t.task_id: status.value for t in self.list()
                if not (status := t.status).done}

    def list(self, *, limit: int | None = None,
             status: TaskStatus | None = None) -> list[Task]:
        """Tasks, newest first."""
        if not self.root.is_dir():
            return []
        # Task folders only: not a submit's staging folder, nor anything else put there.
        paths = sorted((p for p in self.root.iterdir()
                        if is_task_id(p.name) and (p / SPEC_FILE).is_file()),
                       key=lambda p: (p / SPEC_FILE).stat().st_mtime, reverse=True)
        return select_tasks([p.name for p in paths], self, limit=limit, status=status)
