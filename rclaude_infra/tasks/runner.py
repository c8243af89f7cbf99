"""The task runner: what ``python -m rclaude_infra.runner`` runs for one task.

The same code runs a task in the container and under the local provider. It reads
``spec.json`` from the task directory, clones the repository at the ref when one is
given, runs the command (by default Claude Code headless, the prompt on its standard
input), streams its output line by line to stdout and to ``log.jsonl`` (each line with
its time), enforces the timeout, and always writes ``result.json`` (exit code, timing,
status, reason and, for a prompt, the agent's own result), the transcript, the git diff
and an ``artifacts/`` folder, also when the command fails, times out or is stopped.

A prompt task is judged by Claude Code's own result line, not by its exit code: it
exits 0 even when it did nothing. An error it reports (an API error, the turn or budget
limit) fails the task with its words; no result line at all fails it too.

The names in a task directory are listed, once, in :mod:`rclaude_infra.tasks.layout`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .agent import AGENT_ENV, AgentStream
from .delivery import deliver
from .git import git, git_env
from .layout import (
    ARTIFACTS_DIR,
    CGROUP_FILE,
    CLAUDE_DIR,
    DIFF_FILE,
    LOG_FILE,
    OUTPUT_FILES,
    PREEMPTED_EXIT,
    RESULT_FILE,
    SETTINGS_FILE,
    SPEC_FILE,
    STDERR_FILE,
    STOP_REASON_FILE,
    TRANSCRIPT_FILE,
)
from .processes import (
    CGROUP_PREFIX,
    Cgroup,
    become_subreaper,
    descendants,
    die_with_parent,
    end_all,
    reap,
)
from .records import read_record, write_record
from .sessions import (
    Checkpoint,
    Checkpoints,
    apply_earlier,
    continuation,
    keep_session,
    resume_session,
)
from .spec import TaskSpec

#: Exit code of a command stopped for its timeout (as coreutils' ``timeout`` uses).
TIMEOUT_EXIT = 124
#: Where the instance's spot watcher leaves the two-minute notice (a read-only volume).
SPOT_NOTICE_ENV = "RCLAUDE_SPOT_NOTICE"
_KILL_GRACE_SECONDS = 10
#: How long what a finished command left running has to end after SIGTERM.
_LEFTOVER_GRACE_SECONDS = 2


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Log:
    """Each output line to stdout (the container's log stream) and to log.jsonl; the
    command's standard output also to the transcript, its standard error to stderr.log."""

    def __init__(self, task_dir: Path) -> None:
        self._jsonl = (task_dir / LOG_FILE).open("a", encoding="utf-8")
        self._transcript: IO[str] | None = None
        self._stderr: IO[str] | None = None
        self._lock = threading.Lock()

    def attach(self, task_dir: Path) -> None:
        self._transcript = (task_dir / TRANSCRIPT_FILE).open("a", encoding="utf-8")
        self._stderr = (task_dir / STDERR_FILE).open("a", encoding="utf-8")

    def line(self, text: str, *, to: IO[str] | None = None) -> None:
        with self._lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            self._jsonl.write(json.dumps({"t": int(time.time() * 1000), "line": text}) + "\n")
            self._jsonl.flush()
            if to is not None:
                to.write(text + "\n")
                to.flush()

    def transcript(self, text: str) -> None:
        self.line(text, to=self._transcript)

    def stderr(self, text: str) -> None:
        self.line(text, to=self._stderr)

    def close(self) -> None:
        for stream in (self._jsonl, self._transcript, self._stderr):
            if stream is not None:
                stream.close()


def _checkout(spec: TaskSpec, work: Path, log: _Log) -> tuple[Path, str | None]:
    """Clone the repository at the ref; returns the working directory and HEAD's commit."""
    if spec.repo is None:
        work.mkdir(parents=True, exist_ok=True)
        return work, None
    target = work / "repo"
    # A secret, so run() has checked it is there.
    env = git_env(os.environ[spec.git_token_secret] if spec.git_token_secret else None)
    log.line(f"[runner] cloning {spec.repo}" + (f" at {spec.ref}" if spec.ref else ""))
    try:
        git(["clone", "--quiet", "--branch", spec.ref, "--", spec.repo, str(target)]
             if spec.ref else ["clone", "--quiet", "--", spec.repo, str(target)], env=env)
    except RuntimeError:
        if spec.ref is None:
            raise
        # Not a branch or tag: clone, then check the commit out. The ref must name a
        # commit: `git checkout <path>` would restore a file and leave the default branch
        # checked out, and the task would work on what nobody asked for.
        git(["clone", "--quiet", "--", spec.repo, str(target)], env=env)
        try:
            commit = git(["rev-parse", "--verify", "--quiet", "--end-of-options",
                          f"{spec.ref}^{{commit}}"], cwd=target).strip()
        except RuntimeError:
            raise RuntimeError(f"ref {spec.ref!r} is no branch, tag or commit of "
                               f"{spec.repo}") from None
        git(["checkout", "--quiet", "--detach", commit], cwd=target)
    return target, git(["rev-parse", "HEAD"], cwd=target).strip()


def _diff(repo: Path) -> str:
    # Intent-to-add makes new files show in the diff without staging their content.
    git(["add", "--intent-to-add", "--all"], cwd=repo)
    return git(["diff", "HEAD", "--binary"], cwd=repo)


class _Stopper:
    """Ends the command's process group: on timeout, or when the runner is told to stop."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.reason: str | None = None
        #: The task's cgroup, where the hierarchy is writable: one kill ends all of it.
        self.cgroup: Cgroup | None = None
        self._lock = threading.Lock()

    def stop(self, reason: str) -> None:
        with self._lock:
            if self.reason is not None or self.process is None:
                self.reason = self.reason or reason
                return
            self.reason = reason
            process = self.process
        # The command's group, and what left it (setsid) or was orphaned to the runner.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        end_all(_leftovers(process), signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_KILL_GRACE_SECONDS)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        _kill_leftovers(process)
        if self.cgroup is not None:
            self.cgroup.kill()


def _leftovers(process: subprocess.Popen[str]) -> list[int]:
    """What the command started, but the command itself: the runner's descendants outside
    its own session (the runner is a child subreaper: what the command orphaned is among
    them; what the runner starts itself, git or the check, is in its session)."""
    return [pid for pid in descendants(not_in_session=os.getsid(0)) if pid != process.pid]


def _kill_leftovers(process: subprocess.Popen[str]) -> None:
    leftovers = _leftovers(process)
    end_all(leftovers, signal.SIGKILL)
    reap(leftovers)


def _end_leftovers_when_done(process: subprocess.Popen[str]) -> None:
    """When the command ends, what it left running (a daemon holding its output open,
    say) ends too: SIGTERM, a moment, then SIGKILL. Its output then reaches its end."""
    process.wait()
    leftovers = _leftovers(process)
    if not leftovers:
        return
    end_all(leftovers, signal.SIGTERM)
    deadline = time.monotonic() + _LEFTOVER_GRACE_SECONDS
    while time.monotonic() < deadline and _leftovers(process):
        time.sleep(0.05)
        reap(leftovers)
    _kill_leftovers(process)


#: Lines of the check's output its record keeps (all of it is in the log).
CHECK_TAIL_LINES = 40


def _run_check(spec: TaskSpec, cwd: Path, env: dict[str, str], log: _Log,
               cgroup: Cgroup | None) -> dict[str, Any]:
    """Run the spec's check in the checkout; its record (``passed`` on exit code 0). It
    ends as the command does: in a session (and cgroup) of its own, what it leaves running
    is ended when it ends, and on its timeout its group and all it started."""
    argv = spec.check_argv()
    assert argv is not None
    log.line(f"[runner] checking: {' '.join(argv[2:] if argv[:2] == ['bash', '-lc'] else argv)}")
    started = time.monotonic()
    lines: list[str] = []
    timed_out = threading.Event()

    def time_out(process: subprocess.Popen[str]) -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        _kill_leftovers(process)

    code: int | None = None
    try:
        with subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                              errors="replace", start_new_session=True,
                              preexec_fn=_in_task(cgroup)) as process:
            threading.Thread(target=_end_leftovers_when_done, args=(process,),
                             daemon=True).start()
            timer = threading.Timer(spec.timeout, time_out, args=(process,))
            timer.daemon = True
            timer.start()
            assert process.stdout is not None
            for raw in process.stdout:
                text = raw.rstrip("\n")
                log.line(f"[check] {text}")
                lines.append(text)
            code = process.wait()
            timer.cancel()
    except FileNotFoundError as exc:
        lines.append(f"command not found: {exc.filename}")
    if timed_out.is_set():
        code = None
        lines.append(f"the check did not end within {spec.timeout}s")
    return {"command": spec.check if isinstance(spec.check, str) else list(spec.check or ()),
            "exit_code": code, "passed": code == 0,
            "duration_seconds": round(time.monotonic() - started, 3),
            "output": lines[-CHECK_TAIL_LINES:]}


def _in_task(cgroup: Cgroup | None) -> Callable[[], None]:
    """The ``preexec_fn`` of what the runner starts for the task (its command, its check):
    killed with the runner, and born in the task's cgroup when there is one."""
    def preexec() -> None:
        die_with_parent()
        if cgroup is not None:
            cgroup.enter()

    return preexec


def _diff_stats(repo: Path) -> dict[str, int]:
    """Files and lines the diff changes (binary files count as one line each)."""
    files = lines = 0
    for row in git(["diff", "HEAD", "--numstat"], cwd=repo).splitlines():
        added, deleted, _ = row.split("\t", 2)
        files += 1
        lines += 1 if added == "-" else int(added) + int(deleted)
    return {"files": files, "lines": lines}


def _agent_setup(spec: TaskSpec, task_dir: Path, env: dict[str, str]) -> list[str]:
    """Claude Code's command line and environment for a prompt task: its own
    configuration directory in the task, no updates or telemetry, the spec's settings."""
    config_dir = task_dir / CLAUDE_DIR
    config_dir.mkdir(exist_ok=True)
    env.update(AGENT_ENV)
    env["CLAUDE_CONFIG_DIR"] = str(config_dir)
    settings = None
    if spec.claude_settings:
        settings = config_dir / SETTINGS_FILE
        settings.write_text(json.dumps(dict(spec.claude_settings), indent=2))
    return spec.argv(as_root=os.geteuid() == 0,
                     settings_file=None if settings is None else str(settings))


def _feed(stream: IO[str] | None, data: str) -> None:
    """Write the prompt to the command's standard input and close it (a thread: the
    command may print before it has read everything)."""
    assert stream is not None
    with contextlib.suppress(BrokenPipeError, OSError):
        stream.write(data)
    with contextlib.suppress(BrokenPipeError, OSError):
        stream.close()


def _drain(stream: IO[str] | None, log: _Log, last: list[str]) -> None:
    assert stream is not None
    for raw in stream:
        text = raw.rstrip("\n")
        log.stderr(text)
        if text.strip():
            last[:] = [text]


def run(task_dir: Path, *, checkpoint: Checkpoint | None = None) -> int:
    """Run the task in ``task_dir``; returns the exit code for the runner's process.
    ``checkpoint`` is called with the task directory after each checkpoint of an agent."""
    started = _now()
    log = _Log(task_dir)
    stopper = _Stopper()
    result: dict[str, Any] = {"started_at": started.isoformat(), "attempt": 1}

    def on_signal(signum: int, _frame: object) -> None:
        # ECS stops a task with SIGTERM; so do stop() and, on a spot interruption notice,
        # the instance's watcher, which leaves the notice first.
        notice = os.environ.get(SPOT_NOTICE_ENV)
        why = "preempted" if notice and os.path.exists(notice) else "stopped"
        threading.Thread(target=stopper.stop, args=(why,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    exit_code: int | None = None
    repo: Path | None = None
    cwd: Path | None = None
    checkpoints: Checkpoints | None = None
    agent: AgentStream | None = None
    last_stderr: list[str] = []
    try:
        spec = TaskSpec.from_mapping(json.loads((task_dir / SPEC_FILE).read_text()))
        result.update(task_id=spec.task_id, repo=spec.repo, ref=spec.ref, timeout=spec.timeout)
        spec, facts = continuation(spec, task_dir, log.line)
        result.update(facts)
        stopper.cgroup = Cgroup.create(f"{CGROUP_PREFIX}{spec.task_id}-{os.getpid()}")
        if stopper.cgroup is not None:
            # For whoever finds this runner killed: what the task left runs in it.
            write_record(task_dir / CGROUP_FILE, str(stopper.cgroup.path))
        artifacts = task_dir / ARTIFACTS_DIR
        artifacts.mkdir(exist_ok=True)
        # Before the clone: the git token is one of the secrets.
        missing = [name for name in spec.secrets if not os.environ.get(name)]
        if missing:
            raise RuntimeError(f"secrets not provided to the task: {', '.join(missing)}")
        cwd, commit = _checkout(spec, task_dir / "workspace", log)
        repo = cwd if spec.repo else None
        result["commit"] = commit
        env = {**os.environ, **spec.env, "RCLAUDE_TASK_ID": spec.task_id,
               "RCLAUDE_ARTIFACTS": str(artifacts)}
        log.attach(task_dir)
        apply_earlier(spec, task_dir, cwd, log.line)
        if spec.prompt is not None:
            argv = _agent_setup(spec, task_dir, env)
            if spec.resume_from is not None:
                resume_session(spec, task_dir, cwd)
            agent = AgentStream()
        else:
            argv = spec.argv()
        log.line(f"[runner] running {argv[0]} in {cwd.name}")
        timer = threading.Timer(spec.timeout, stopper.stop, args=("timeout",))
        timer.daemon = True
        become_subreaper()  # what the command orphans stays the runner's to end
        with subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, errors="replace",
                              stdin=subprocess.DEVNULL if agent is None else subprocess.PIPE,
                              start_new_session=True,
                              preexec_fn=_in_task(stopper.cgroup)) as process:
            stopper.process = process
            threading.Thread(target=_end_leftovers_when_done, args=(process,),
                             daemon=True).start()
            if stopper.reason is not None:  # stopped (or preempted) while cloning
                why, stopper.reason = stopper.reason, None
                stopper.stop(why)
            timer.start()
            if agent is not None:
                checkpoints = Checkpoints(task_dir, repo, cwd, agent, checkpoint)
                checkpoints.start()
            helpers = [threading.Thread(target=_drain, args=(process.stderr, log, last_stderr),
                                        daemon=True)]
            if agent is not None:
                assert spec.prompt is not None
                helpers.append(threading.Thread(target=_feed, args=(process.stdin, spec.prompt),
                                                daemon=True))
            for helper in helpers:
                helper.start()
            assert process.stdout is not None
            for raw in process.stdout:
                text = raw.rstrip("\n")
                if agent is None or agent.feed(text):
                    log.transcript(text)
                else:
                    log.line(text)  # not part of the event stream: the log only
            exit_code = process.wait()
            for helper in helpers:
                helper.join(timeout=_KILL_GRACE_SECONDS)
        timer.cancel()
        if checkpoints is not None:
            checkpoints.stop()
    except FileNotFoundError as exc:
        result["reason"] = f"command not found: {exc.filename}" + (
            " (Claude Code is not installed where the task runs: npm install -g "
            "@anthropic-ai/claude-code)" if agent is not None else "")
    except Exception as exc:
        result["reason"] = str(exc)
    finally:
        if repo is not None:
            try:
                write_record(task_dir / DIFF_FILE, _diff(repo))
                result["diff"] = _diff_stats(repo)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                log.line(f"[runner] could not write the diff: {exc}")
        finished = _now()
        summary = agent.summary() if agent is not None else None
        if summary is not None and cwd is not None:
            with contextlib.suppress(OSError):
                keep_session(task_dir, cwd, summary.session_id)
        if summary is not None:
            result["agent"] = summary.to_dict()
        if stopper.reason == "timeout":
            status, exit_code = "timeout", TIMEOUT_EXIT
            result["reason"] = f"timed out after {result['timeout']}s"
        elif stopper.reason == "preempted":
            status, exit_code = "preempted", PREEMPTED_EXIT
            if checkpoints is not None:
                checkpoints.save()  # the last one: where the next attempt goes on from
            result["reason"] = ("spot interruption notice: the instance is reclaimed; the "
                                "runner stopped the command and kept its work")
        elif stopper.reason == "stopped":
            status = "stopped"
            asked = read_record(task_dir / STOP_REASON_FILE, limit=4096)
            result["reason"] = (asked.decode("utf-8", errors="replace").strip() if asked
                                else "stopped")
        elif summary is not None and exit_code is not None and summary.failure_reason:
            # Judged by the agent's own result line, not by its exit code.
            status = "failed"
            reason = summary.failure_reason
            if summary.subtype is None:
                reason += f" (exit code {exit_code})" + (
                    f": {last_stderr[0]}" if last_stderr else "")
            result["reason"] = reason
        elif exit_code == 0:
            status = "succeeded"
            if spec.check is not None and cwd is not None:
                check = _run_check(spec, cwd, env, log, stopper.cgroup)
                result["check"] = check
                if not check["passed"]:
                    status = "failed"
                    last = next((x for x in reversed(check["output"]) if x.strip()), "")
                    result["reason"] = (f"the check failed (exit code {check['exit_code']})"
                                        + (f": {last}" if last else ""))
            if status == "succeeded" and repo is not None and spec.output != "diff":
                delivery = deliver(spec, repo, summary, task_dir / DIFF_FILE)
                result["delivery"] = delivery
                if delivery.get("error"):
                    # What was asked for is not there: the task fails, its work kept.
                    status = "failed"
                    result["reason"] = f"{delivery['error']}; the work is in {DIFF_FILE}"
                else:
                    log.line(f"[runner] pushed {delivery['branch']}" + (
                        f", opened {delivery['pull_request']}"
                        if delivery.get("pull_request") else ""))
        else:
            status = "failed"
            if exit_code is not None:
                result.setdefault("reason", f"exit code {exit_code}")
        if checkpoints is not None:
            result["checkpoints"] = checkpoints.count
        if stopper.cgroup is not None:
            stopper.cgroup.remove()  # nothing the task started outlives its result
        result.update(
            status=status, exit_code=exit_code, finished_at=finished.isoformat(),
            duration_seconds=round((finished - started).total_seconds(), 3),
            files=[name for name in (*OUTPUT_FILES, ARTIFACTS_DIR)
                   if (task_dir / name).exists()],
        )
        log.line(f"[runner] {status}" + (f": {result['reason']}" if result.get("reason")
                                         else ""))
        log.close()
        # Whole or not at all, and over whatever the task left at that name (a link is
        # replaced, not followed): its command and all it started have ended by now.
        write_record(task_dir / RESULT_FILE, json.dumps(result, indent=2))
    return exit_code if exit_code is not None else 1
