"""A prompt task's Claude Code session across tasks and attempts: kept with the task's
outputs, resumed by a task that continues it (``TaskSpec.resume_from``), checkpointed while
the agent works, and gone on from after a spot interruption. The runner
(:mod:`rclaude_infra.tasks.runner`) calls these at its steps.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .agent import AgentStream
from .git import git
from .layout import (
    CHECKPOINT_FILE,
    CHECKPOINT_INDEX,
    CLAUDE_DIR,
    DIFF_FILE,
    PREVIOUS_DIR,
    RESULT_FILE,
    RESUME_DIR,
    RESUME_INPUTS,
    SESSION_FILE,
)
from .records import copy_record, write_record
from .spec import TaskSpec

#: Where a step's lines go (the runner's log).
Say = Callable[[str], None]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def snapshot_diff(repo: Path, scratch: Path) -> str:
    """The work so far as the final diff shows it, through a scratch index: the agent may be
    running git at the same time, and the repository's own index is left alone."""
    env = {**os.environ, "GIT_INDEX_FILE": str(scratch)}
    scratch.unlink(missing_ok=True)
    git(["read-tree", "HEAD"], cwd=repo, env=env)
    git(["add", "--all"], cwd=repo, env=env)
    return git(["diff", "--cached", "HEAD", "--binary"], cwd=repo, env=env)


def sessions_dir(config_dir: Path, cwd: Path) -> Path:
    """Where Claude Code keeps the sessions of work in ``cwd``: its configuration
    directory's ``projects/`` entry named by the path, each non-alphanumeric a ``-``."""
    return config_dir / "projects" / re.sub(r"[^A-Za-z0-9-]", "-", str(cwd))


def apply_earlier(spec: TaskSpec, task_dir: Path, cwd: Path, say: Say) -> None:
    """Start from the earlier task's work (``resume_from``, ``apply_from``): its diff on
    the clone, unless the checkout has it already (the branch it was pushed to)."""
    earlier = spec.earlier_work
    patch = task_dir / RESUME_DIR / DIFF_FILE
    if earlier is None or spec.repo is None or not patch.is_file() or not patch.stat().st_size:
        return
    try:
        git(["apply", "--whitespace=nowarn", str(patch)], cwd=cwd)
        say(f"[runner] applied the work of task {earlier}")
    except RuntimeError as exc:
        try:
            git(["apply", "--reverse", "--check", str(patch)], cwd=cwd)
        except RuntimeError:
            raise RuntimeError(f"the work of task {earlier} does not apply to this "
                               f"checkout: {exc}") from None


def resume_session(spec: TaskSpec, task_dir: Path, cwd: Path) -> None:
    """The resumed task's session where Claude Code looks for it from this directory."""
    session = task_dir / RESUME_DIR / SESSION_FILE
    if not session.is_file():
        raise RuntimeError(f"task {spec.resume_from} left no agent session to resume")
    target = sessions_dir(task_dir / CLAUDE_DIR, cwd) / f"{spec.resume_session}.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(session, target)


def keep_session(task_dir: Path, cwd: Path, session_id: str | None) -> None:
    """The agent's session among the task's outputs, for a later task to resume."""
    if session_id is None:
        return
    found = sessions_dir(task_dir / CLAUDE_DIR, cwd) / f"{session_id}.jsonl"
    copy_record(found, task_dir / SESSION_FILE)


#: Seconds between two checkpoints of a running agent (``RCLAUDE_CHECKPOINT_SECONDS``).
CHECKPOINT_SECONDS = 300.0
#: The prompt of an attempt that goes on after a spot interruption, in the same session.
CONTINUE_PROMPT = (
    "The machine you were working on was reclaimed and your session moved to a new one; "
    "the files are as you left them at the last checkpoint. Continue the task where you "
    "stopped. The task was:\n\n{prompt}")

Checkpoint = Callable[[Path], None]


class Checkpoints:
    """Saves a running agent's session and the diff so far, every ``interval`` seconds and
    once more when it is stopped; ``on_save`` puts them where a next attempt finds them
    (S3, in the container)."""

    def __init__(self, task_dir: Path, repo: Path | None, cwd: Path, agent: AgentStream,
                 on_save: Checkpoint | None) -> None:
        self.task_dir, self.repo, self.cwd, self.agent = task_dir, repo, cwd, agent
        self.on_save = on_save
        self.count = 0
        self._done = threading.Event()
        self._lock = threading.Lock()
        interval = float(os.environ.get("RCLAUDE_CHECKPOINT_SECONDS", CHECKPOINT_SECONDS))
        self._thread = threading.Thread(target=self._loop, args=(interval,), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self, interval: float) -> None:
        while not self._done.wait(interval):
            self.save()

    def save(self) -> None:
        session = self.agent.init.get("session_id")
        if session is None:
            return  # Claude Code has not started its session yet
        with self._lock:
            try:
                if self.repo is not None:
                    write_record(self.task_dir / DIFF_FILE,
                                 snapshot_diff(self.repo, self.task_dir / CHECKPOINT_INDEX))
                keep_session(self.task_dir, self.cwd, session)
            except (RuntimeError, OSError, subprocess.SubprocessError):
                return  # the next one, or the final one, saves it
            self.count += 1
            write_record(self.task_dir / CHECKPOINT_FILE, json.dumps({
                "count": self.count, "session_id": session, "at": _now().isoformat()}))
            if self.on_save is not None:
                with contextlib.suppress(Exception):
                    self.on_save(self.task_dir)

    def stop(self) -> None:
        self._done.set()


def continuation(spec: TaskSpec, task_dir: Path, say: Say) -> tuple[TaskSpec, dict[str, Any]]:
    """After a spot interruption: the task goes on from its last checkpoint (the earlier
    attempt's session resumed, its diff applied), and the result says so."""
    previous = task_dir / PREVIOUS_DIR
    try:
        earlier = json.loads((previous / RESULT_FILE).read_text())
        checkpoint = json.loads((previous / CHECKPOINT_FILE).read_text())
    except (OSError, ValueError):
        return spec, {}
    attempt = int(earlier.get("attempt", 1)) + 1
    facts: dict[str, Any] = {"attempt": attempt}
    if (earlier.get("status") != "preempted" or spec.prompt is None
            or not (previous / SESSION_FILE).is_file()):
        return spec, facts
    inputs = task_dir / RESUME_DIR
    inputs.mkdir(exist_ok=True)
    for name in RESUME_INPUTS:
        copy_record(previous / name, inputs / name)
    say(f"[runner] going on from checkpoint {checkpoint.get('count')} of attempt "
             f"{attempt - 1}")
    facts["continued_from_checkpoint"] = checkpoint.get("count")
    return attrs.evolve(spec, prompt=CONTINUE_PROMPT.format(prompt=spec.prompt),
                        resume_from=spec.task_id, resume_session=checkpoint["session_id"],
                        apply_from=None), facts
