"""``run``, ``logs``, ``tasks``, ``result`` and ``stop``: tasks on ECS or locally."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, RclaudeError
from ..tasks.agent import AgentResult
from ..tasks.downloads import Downloaded
from ..tasks.model import LogLine, Task, TaskNotFoundError, TaskState, TaskStatus
from ..tasks.spec import OUTPUTS, TaskSpec
from ._common import (
    config_file_argument,
    console,
    deployment,
    emit_json,
    env_pairs,
    json_argument,
    note,
    parse_since,
    server_argument,
    task_argument,
    task_source_arguments,
    verb,
)

if TYPE_CHECKING:
    from ..cost import TaskCost


def add_parsers(commands: Any) -> None:
    where = (config_file_argument, task_source_arguments)
    run = verb(commands, "run", "start a task (a Claude Code prompt or a command)", _run,
               *where, server_argument, json_argument, _task_arguments)
    run.add_argument("--check", metavar="COMMAND",
                     help="run after the agent in its checkout (e.g. 'pytest -q'): a "
                     "failure fails the task, and only checked work is delivered")
    run.add_argument("--resume", metavar="TASK",
                     help="continue TASK: its agent session and its work, with --prompt "
                     "(--model, --max-turns, --max-budget-usd, --timeout may change)")
    run.add_argument("--follow", "-f", action="store_true",
                     help="stream the logs until the task ends; exit with its exit code")
    run.add_argument("--timestamps", "-t", action="store_true",
                     help="with --follow: show each line's time")
    run.add_argument("--interactive", "-i", action="store_true",
                     help="start the task so a shell can be opened in it, and open one "
                     "once it runs (ECS Exec: a stack deployed with --interactive-tasks, "
                     "whose interactive tasks have a writable root; locally a shell)")

    best = verb(commands, "best-of", "run a prompt task N times at once, check each "
                "attempt's work, deliver the best", _best_of, *where, json_argument,
                _task_arguments)
    best.add_argument("-n", type=_positive, default=3, help="attempts (2 to 10; default 3)")
    best.add_argument("--check", required=True, metavar="COMMAND",
                      help="judges each attempt's work in its checkout, e.g. 'pytest -q'")
    best.add_argument("--wait-timeout", type=float, metavar="SECONDS",
                      help="how long to wait for each task")

    logs = verb(commands, "logs", "a task's output", _logs, task_argument, *where,
                server_argument)
    logs.add_argument("--follow", "-f", action="store_true",
                      help="keep reading until the task ends; exit with its exit code")
    logs.add_argument("--since", type=parse_since, metavar="WHEN",
                      help="from this time on: ISO 8601, or 30s / 10m / 2h / 1d ago")
    logs.add_argument("--timestamps", "-t", action="store_true", help="show each line's time")
    logs.add_argument("--json", action="store_true", help="one JSON object per line")

    tasks = verb(commands, "tasks", "task history, newest first", _tasks, *where,
                 server_argument, json_argument)
    tasks.add_argument("--limit", type=_positive, default=20, metavar="N")
    tasks.add_argument("--status", type=_status_arg, metavar="STATUS",
                       help="only this status: " + ", ".join(s.value for s in TaskStatus))

    result = verb(commands, "result", "what a finished task left", _result, task_argument,
                  *where, server_argument, json_argument)
    result.add_argument("--download", metavar="DIR",
                        help="copy result.json, transcript, diff.patch and artifacts here")

    reconcile = verb(commands, "reconcile", "start queued tasks the group has room for, and "
                     "submit again those a spot interruption or a capacity timeout stopped "
                     "(reads never do)", _reconcile, *where, json_argument)
    reconcile.add_argument("--limit", type=_positive, default=100, metavar="N",
                           help="look at the N newest tasks")

    spend = verb(commands, "spend", "what the deployment cost: its tasks' compute and model, "
                 "and the idle stack", _spend, *where, json_argument)
    spend.add_argument("--since", type=parse_since, metavar="WHEN",
                       help="from this time on: ISO 8601, or 30s / 10m / 2h / 1d ago "
                       "(default: the 1st of this month, UTC)")

    stop = verb(commands, "stop", "stop a task (its logs, diff and result stay)", _stop,
                task_argument, *where, server_argument, json_argument)
    stop.add_argument("--reason", default="stopped from the command line")


def _task_arguments(run: argparse.ArgumentParser) -> None:
    """What a task is: the flags of TaskSpec's fields (``run`` and ``best-of``)."""
    what = run.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="run Claude Code headless on this prompt")
    what.add_argument("--command", help="run this shell command instead")
    run.add_argument("--repo", help="git URL (or path) to clone first")
    run.add_argument("--ref", help="branch, tag or commit to check out")
    run.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                     help="environment for the task (repeat)")
    run.add_argument("--secret", action="append", default=[], metavar="NAME",
                     help="name of a secret the task gets (repeat; never its value)")
    run.add_argument("--cpu", type=int, metavar="UNITS", help="CPU units (1024 = 1 vCPU)")
    run.add_argument("--memory", type=int, metavar="MIB")
    run.add_argument("--timeout", type=int, metavar="SECONDS")
    run.add_argument("--task-id", help="your id for the task (default: generated)")
    run.add_argument("--max-retries-on-preemption", type=int, metavar="N")
    run.add_argument("--model", help="Claude Code's model (an alias such as 'sonnet', a full "
                     "name, or with Bedrock one of the deployment's bedrock_models)")
    run.add_argument("--max-turns", type=int, metavar="N",
                     help="agent turns before Claude Code stops (the task fails)")
    run.add_argument("--max-budget-usd", type=float, metavar="USD",
                     help="model spend before Claude Code stops (the task fails)")
    run.add_argument("--claude-arg", action="append", default=[], metavar="ARG",
                     help="one more Claude Code argument (repeat; e.g. --claude-arg="
                     "--disallowedTools --claude-arg=WebFetch)")
    run.add_argument("--claude-settings", type=_json_object, metavar="JSON",
                     help="Claude Code settings for the task, as a JSON object")
    run.add_argument("--git-token-secret", metavar="NAME",
                     help="which --secret is a token for the repository's host (clone and "
                     "push over HTTPS)")
    run.add_argument("--output", choices=OUTPUTS,
                     help="what the task delivers: its diff (default), the work pushed on "
                     "a branch, or that branch and a GitHub pull request")
    run.add_argument("--branch", help="the branch to push to (default rclaude/TASK_ID)")
    run.add_argument("--github-api-url", metavar="URL",
                     help="GitHub's API for the pull request (GitHub Enterprise: "
                     "https://HOST/api/v3)")


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"got {value!r}; allowed: an integer of at least 1")
    return number


def _status_arg(value: str) -> TaskStatus:
    try:
        return TaskStatus(value.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"got {value!r}; allowed: one of " + ", ".join(s.value for s in TaskStatus)
        ) from None


def _json_object(value: str) -> dict[str, Any]:
    import json

    try:
        data = json.loads(value)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError(f"not a JSON object: {value[:60]!r}")
    return data


def _agent_of(task: Task, state: TaskState) -> AgentResult | None:
    """The agent's account of an ended prompt task (None while running, for a command,
    or when the task left no result)."""
    if not state.status.done:
        return None
    try:
        return task.agent
    except TaskNotFoundError:
        return None


def _local_repo(repo: str | None) -> str | None:
    """A relative path given as ``--repo`` (``.``, ``../app``) as the absolute path a task
    spec takes, when it is a directory here; anything else is left for the spec to judge."""
    if repo is None or "://" in repo or repo.startswith(("/", "git@")):
        return repo
    path = Path(repo)
    return str(path.resolve()) if path.is_dir() else repo


def _spec(args: argparse.Namespace) -> TaskSpec:
    env = env_pairs(args.env)
    fields: dict[str, Any] = {"prompt": args.prompt, "command": args.command,
                              "repo": _local_repo(args.repo), "ref": args.ref, "env": env,
                              "secrets": args.secret, "cpu": args.cpu, "memory": args.memory,
                              "timeout": args.timeout, "task_id": args.task_id,
                              "max_retries_on_preemption": args.max_retries_on_preemption,
                              "model": args.model, "max_turns": args.max_turns,
                              "max_budget_usd": args.max_budget_usd,
                              "claude_args": args.claude_arg or None,
                              "claude_settings": args.claude_settings,
                              "git_token_secret": args.git_token_secret,
                              "output": args.output, "branch": args.branch,
                              "github_api_url": args.github_api_url,
                              "check": getattr(args, "check", None),
                              # A shell is opened in it: on ECS it must start with exec on.
                              "interactive": getattr(args, "interactive", None) or None}
    return TaskSpec.from_mapping({k: v for k, v in fields.items() if v is not None})


#: ``run`` flags a resumed task may change; the rest it keeps from the task it continues.
_RESUME_CHANGES = ("model", "max_turns", "max_budget_usd", "timeout", "task_id")


def _run(args: argparse.Namespace) -> int:
    if args.server is not None:
        from . import _remote

        return _remote.run(args)
    if args.resume is not None:
        if args.prompt is None:
            raise ConfigError("--resume", args.resume, "given with --prompt (what to do next)")
        d = deployment(args, for_tasks=True)
        changes = {name: getattr(args, name) for name in _RESUME_CHANGES
                   if getattr(args, name) is not None}
        if args.interactive:
            changes["interactive"] = True
        task = d.resume(args.resume, args.prompt, **changes)
    else:
        spec = _spec(args)  # a bad spec exits 2 here, before any call
        task = deployment(args, for_tasks=True).run_task(spec)
    if args.json and not args.follow:
        emit_json({"task_id": task.task_id, "status": task.status.value})
        return 0
    note(f"task {task.task_id} started")
    if args.interactive:
        return _interactive(task)
    if args.follow:
        return _follow(task, task.logs(follow=True), args)
    print(task.task_id)
    note(f"follow it: rclaude-infra logs {task.task_id} --follow")
    return 0


def _best_of(args: argparse.Namespace) -> int:
    if args.prompt is None:
        raise ConfigError("--prompt", None, "the task's prompt (best-of runs the agent)")
    spec = _spec(args)
    best = deployment(args, for_tasks=True).run_best_of(
        spec, n=args.n, check=args.check, timeout=args.wait_timeout)
    if args.json:
        emit_json(best.to_dict())
    else:
        console().print(best)
    return 0 if best.winner is not None and best.reason is None else 1


def _interactive(task: Task) -> int:
    delay = 0.2
    while (state := task.state()).status is TaskStatus.PENDING:
        time.sleep(delay)
        delay = min(delay * 1.5, 3.0)
    if state.status.done:
        note(f"task {task.task_id} ended ({state.status.value}) before a shell could open")
        return _exit_code(state)
    return task.exec("bash")


def _follow(task: Task, lines: Iterable[LogLine], args: argparse.Namespace) -> int:
    """Print lines as they come; the task's outcome becomes the exit code."""
    try:
        _print_lines(lines, args)
        state = task.wait()
    except KeyboardInterrupt:
        note(f"\nstopped following; task {task.task_id} keeps running "
             f"(rclaude-infra stop {task.task_id} ends it)")
        return 130
    reason = f": {state.reason}" if state.reason else ""
    if args.json:
        emit_json({"task_id": task.task_id, "status": state.status.value,
                   "exit_code": state.exit_code, "reason": state.reason}, indent=None)
    else:
        note(f"task {task.task_id} {state.status.value}{reason}")
    return _exit_code(state)


def _exit_code(state: TaskState) -> int:
    """The task's outcome as this process's exit code: its own, a signal as the shell
    reports it (128 + N), else 1."""
    code = state.exit_code
    if state.status is TaskStatus.SUCCEEDED:
        return 0
    if code is not None and code < 0:
        return 128 + min(-code, 127)
    return code if code and code < 256 else 1


def _print_lines(lines: Iterable[LogLine], args: argparse.Namespace) -> None:
    if args.json:
        for line in lines:
            emit_json({"time": line.time, "text": line.text}, indent=None)
        return
    out = console()
    if not out.is_terminal:
        for line in lines:  # piped: the output itself, as written
            print(f"{line.time.isoformat()} {line.text}" if args.timestamps else line.text,
                  flush=True)
        return
    from .._display import log_line

    for line in lines:
        out.print(log_line(line, timestamps=args.timestamps))


def _logs(args: argparse.Namespace) -> int:
    if args.server is not None:
        from . import _remote

        return _remote.logs(args)
    task = deployment(args, for_tasks=True).task(args.task_id)
    lines = task.logs(follow=args.follow, since=args.since)
    if args.follow:
        return _follow(task, lines, args)
    _print_lines(lines, args)
    return 0


def _cost_of(task: Task) -> TaskCost | None:
    """Both halves of a task's cost; ``None`` when it cannot be priced (ECS forgot an
    attempt, a type without a price)."""
    try:
        return task.cost()
    except RclaudeError:
        return None


def _tasks(args: argparse.Namespace) -> int:
    if args.server is not None:
        from . import _remote

        return _remote.tasks(args)
    found = deployment(args, for_tasks=True).tasks(limit=args.limit, status=args.status)
    rows = []
    for task in found:
        state = task.state()
        rows.append((task.task_id, state, _agent_of(task, state), _cost_of(task)))
    if args.json:
        emit_json([{"task_id": task_id, "status": s.status.value, "reason": s.reason,
                    "exit_code": s.exit_code, "started_at": s.started_at,
                    "stopped_at": s.stopped_at, "attempt": s.attempt,
                    "turns": a.turns if a else None,
                    **(c.to_dict() if c else {"compute_usd": None, "model_usd": None,
                                              "total_usd": None})}
                   for task_id, s, a, c in rows])
    else:
        from .._display import tasks_renderable

        console().print(tasks_renderable(rows))
    return 0


def _result(args: argparse.Namespace) -> int:
    if args.server is not None:
        from . import _remote

        return _remote.result(args)
    task = deployment(args, for_tasks=True).task(args.task_id)
    result = task.result()
    cost = _cost_of(task)
    files = result.download(args.download) if args.download else Downloaded()
    for name, why in files.skipped:  # what the task left that was not written
        note(f"skipped {name!r}: {why}")
    if args.json:
        emit_json({**result.data, "cost": cost.to_dict() if cost else None,
                   "downloaded": [str(p) for p in files],
                   "skipped": [{"name": name, "why": why} for name, why in files.skipped]})
        return 0
    from .._render import fields_table

    fields = {k: v for k, v in result.data.items() if k not in ("files", "agent")}
    if cost is not None:
        fields.update({
            "cost": f"${cost.total_usd:.4f} (compute ${cost.compute_usd:.4f}"
            + ("" if cost.model_usd is None else f" + model ${cost.model_usd:.4f}") + ")",
            "model cost from": None if cost.model_usd is None else cost.model_source})
    agent = result.agent
    if agent is not None:
        fields.update({
            "agent": agent.subtype or "no result line", "turns": agent.turns,
            "tokens": ", ".join(f"{k.removesuffix('_tokens')} {v:,}"
                                for k, v in agent.usage.items() if v) or None,
            "session": agent.session_id, "model": agent.model,
            "permission mode": agent.permission_mode,
            "denied tool calls": len(agent.permission_denials) or None,
            "final text": agent.text})
    console().print(fields_table(f"Result of {result.task_id}", fields))
    if files:
        note(f"{len(files)} files in {args.download}/{result.task_id}/")
    return 0


def _spend(args: argparse.Namespace) -> int:
    import datetime as dt

    since = args.since or dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0,
                                                          microsecond=0)
    d = deployment(args, for_tasks=True)
    spent = d.spend(since)
    if args.json:
        emit_json(spent.to_dict())
        return 0
    from .._render import fields_table

    limit = d.config.max_monthly_usd
    console().print(fields_table(f"Spend of {d.name} since {since:%Y-%m-%d %H:%M} UTC", {
        "tasks": spent.tasks,
        "model": f"${spent.model_usd:.4f}",
        "compute": f"${spent.tasks_usd:.4f}",
        "idle stack": f"${spent.baseline_usd:.4f}",
        "total": f"${spent.total_usd:.4f}",
        "max_monthly_usd": None if limit is None else f"${limit:.2f}",
    }))
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    again = deployment(args, for_tasks=True).reconcile(limit=args.limit)
    if args.json:
        emit_json({"resubmitted": [t.task_id for t in again]})
    else:
        note(f"started or submitted again: {', '.join(t.task_id for t in again)}" if again
             else "nothing to start: no queued task has room, no stopped task has retries")
    return 0


def _stop(args: argparse.Namespace) -> int:
    if args.server is not None:
        from . import _remote

        return _remote.stop(args)
    task = deployment(args, for_tasks=True).task(args.task_id)
    task.stop(args.reason)
    if args.json:
        emit_json({"task_id": task.task_id, "stopping": True, "reason": args.reason})
    else:
        note(f"stopping {task.task_id}: its logs, diff and result stay")
    return 0


