"""Every process a task starts ends with it: on stop, on timeout, when its command ends,
and when the runner dies.

A command can leave its process group (``setsid``), or leave processes behind that hold
its output open; killing the group is then not enough. So the runner makes itself a
*child subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``): whatever the command orphans is
re-parented to the runner, not to init, and :func:`descendants` finds it by walking
``/proc``. The command itself gets ``PR_SET_PDEATHSIG``: if the runner is killed, the
kernel kills the command at once. Elsewhere than Linux these are not available, and the
process group is what is ended.

Where the cgroup v2 hierarchy is writable (root, or a delegated user slice), each task's
processes also run in a cgroup of their own (:class:`Cgroup`): one ``cgroup.kill`` ends
every one of them, and it still can after the runner was killed, when what the command
had started in sessions of its own was re-parented to init.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1
#: The prefix of a task's cgroup's name: ``rclaude-<task id>-<runner pid>``.
CGROUP_PREFIX = "rclaude-"
_PR_SET_CHILD_SUBREAPER = 36


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # Loaded in the runner, before it forks: the child of a multi-threaded process must
    # not load a library (the loader's lock may be held by a thread that did not fork).
    return ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _prctl(option: int, value: int) -> bool:
    libc = _libc()
    return libc is not None and bool(libc.prctl(option, value, 0, 0, 0) == 0)


def become_subreaper() -> bool:
    """Orphans of this process's descendants become its children (Linux); whether so."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent() -> None:
    """For ``preexec_fn``: the kernel sends this process SIGKILL when its parent dies
    (call :func:`become_subreaper` in the parent first: it loads what this needs)."""
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (``[0]`` the state,
    ``[1]`` the parent, ``[3]`` the session, ``[19]`` the start time in clock ticks), or
    ``None`` when the process is gone or a zombie (it has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
    return None if fields[0] == "Z" else fields


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: with its pid, what tells it
    from a later process given the same pid. ``None`` when it is not running."""
    fields = stat_fields(pid)
    return None if fields is None else int(fields[19])


def descendants(pid: int | None = None, *, not_in_session: int | None = None) -> list[int]:
    """Every live process below ``pid`` (default: this process), children first; with
    ``not_in_session``, those of other sessions only (the task's command runs in a session
    of its own, and what it starts in its own or in new ones: the runner's own helpers,
    git and the check, stay in the runner's session)."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    sessions: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        fields = stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        sessions[int(entry.name)] = int(fields[3])
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return [p for p in found if not_in_session is None or sessions[p] != not_in_session]


def end_all(pids: list[int], signum: int) -> None:
    """Send ``signum`` to each of ``pids`` that still runs."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def reap(pids: list[int]) -> None:
    """Collect the exit status of those of ``pids`` that are this process's children and
    have ended (orphans re-parented here would otherwise stay zombies); never waits."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _cgroup2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup``, or its ``unified``
    folder on a hybrid host), or ``None``."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        before, _, after = line.partition(" - ")
        if after.split(" ", 1)[0] == "cgroup2":
            return Path(before.split()[4])
    return None


def _own_cgroup() -> str | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    return next((line[3:] for line in lines if line.startswith("0::")), None)


class Cgroup:
    """A task's cgroup (v2): its processes, ended together by ``cgroup.kill``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, name: str) -> Cgroup | None:
        """A new cgroup ``name`` beside this process's own, or ``None`` where the
        hierarchy is not there or not writable (then the process group, the subreaper and
        the parent-death signal are what ends a task)."""
        root, own = _cgroup2_root(), _own_cgroup()
        if root is None or own is None:
            return None
        path = root / own.lstrip("/") / name
        try:
            path.mkdir()
            # A process may move itself in only with the folder's procs file writable.
            with open(path / "cgroup.procs", "a"):
                pass
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        return cls(path)

    @classmethod
    def found(cls, recorded: str, task_id: str) -> Cgroup | None:
        """The cgroup a runner recorded for ``task_id``, when ``recorded`` names one as
        :meth:`create` made it: a folder of the cgroup v2 hierarchy called
        ``rclaude-<task_id>-<pid>`` (the record is in the task's reach)."""
        root = _cgroup2_root()
        path = Path(recorded)
        name = path.name
        if (root is None or not path.is_absolute() or ".." in path.parts
                or not path.is_relative_to(root)
                or not name.startswith(f"{CGROUP_PREFIX}{task_id}-")
                or not name.rsplit("-", 1)[1].isdigit()
                or not (path / "cgroup.kill").is_file()):
            return None
        return cls(path)

    def enter(self) -> None:
        """For ``preexec_fn``: move this (just forked) process into the cgroup; what it
        starts is then born there. A refusal leaves it where it was (the process group and
        the subreaper still end it)."""
        with contextlib.suppress(OSError):
            fd = os.open(self.path / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def kill(self) -> None:
        """SIGKILL every process in it (``cgroup.kill``, Linux 5.14; one by one before)."""
        try:
            (self.path / "cgroup.kill").write_text("1")
        except OSError:
            end_all(self.pids(), signal.SIGKILL)

    def remove(self) -> None:
        """Kill what is left in it, and remove it once empty (a moment: the kernel takes
        the killed processes out as they die)."""
        import time

        self.kill()
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)
