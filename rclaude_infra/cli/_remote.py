"""``run``, ``tasks``, ``logs``, ``result`` and ``stop`` with ``--server``: the same verbs
against a hosted service's task API, signed in by ``rclaude-infra login``. Imported when
such a verb runs (the client is no cost to the CLI's other verbs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..client import ServiceClient, line_of, state_of
from ..errors import ConfigError
from ..tasks.records import write_record
from ..tasks.spec import is_task_id
from ._common import console, emit_json, env_pairs, note


def client(args: argparse.Namespace) -> ServiceClient:
    return ServiceClient.logged_in(args.server or None)


#: ``run`` flags the service's task API takes, by field.
_FIELDS = ("prompt", "command", "repo", "ref", "timeout", "model", "max_turns",
           "max_budget_usd", "output", "branch", "cpu", "memory", "max_retries_on_preemption",
           "claude_settings", "git_token_secret", "check")


def _request(args: argparse.Namespace) -> dict[str, Any]:
    for flag in ("task_id", "github_api_url"):
        if getattr(args, flag, None) is not None:
            raise ConfigError("--" + flag.replace("_", "-"), getattr(args, flag),
                              "not with --server (the service names its tasks)")
    if getattr(args, "interactive", False):
        raise ConfigError("--interactive", True, "not with --server (a shell opens in a "
                          "task of your own deployment)")
    fields = {name: getattr(args, name, None) for name in _FIELDS}
    env = env_pairs(args.env)
    fields.update(env=env or None, secrets=args.secret or None,
                  claude_args=args.claude_arg or None)
    return {k: v for k, v in fields.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    service = client(args)
    if args.resume is not None:
        if args.prompt is None:
            raise ConfigError("--resume", args.resume, "given with --prompt (what to do next)")
        task = service.follow_up(args.resume, args.prompt)
    else:
        task = service.create_task(_request(args))
    if args.json and not args.follow:
        emit_json({"task_id": task["id"], "status": task["status"]})
        return 0
    note(f"task {task['id']} started on {service.url}")
    if args.follow:
        return _follow(service, task["id"], args)
    print(task["id"])
    note(f"follow it: rclaude-infra logs {task['id']} --follow --server {service.url}")
    return 0


def _follow(service: ServiceClient, task_id: str, args: argparse.Namespace) -> int:
    from ._tasks import _exit_code, _print_lines

    final: dict[str, Any] | None = None

    def lines() -> Any:
        nonlocal final
        for event in service.events(task_id):
            if event.kind == "log":
                yield line_of(event.data)
            elif event.kind == "status":
                final = event.data
            elif event.kind == "error":
                note(f"following {task_id} ended: {event.data.get('detail')}")

    try:
        _print_lines(lines(), args)
    except KeyboardInterrupt:
        note(f"\nstopped following; task {task_id} keeps running "
             f"(rclaude-infra stop {task_id} --server {service.url} ends it)")
        return 130
    state = state_of(final or service.task(task_id))
    reason = f": {state.reason}" if state.reason else ""
    if args.json:
        emit_json({"task_id": task_id, "status": state.status.value,
                   "exit_code": state.exit_code, "reason": state.reason}, indent=None)
    else:
        note(f"task {task_id} {state.status.value}{reason}")
    return _exit_code(state) if state.status.done else 1


def logs(args: argparse.Namespace) -> int:
    from ._tasks import _print_lines

    service = client(args)
    if args.follow:
        return _follow(service, args.task_id, args)
    shown = service.logs(args.task_id)
    if args.since is not None:
        shown = [line for line in shown if line.time >= args.since]
    _print_lines(shown, args)
    return 0


def tasks(args: argparse.Namespace) -> int:
    found = client(args).tasks(limit=args.limit, status=args.status)
    if args.json:
        emit_json([{"task_id": t["id"], "status": t["status"], "reason": t.get("reason"),
                    "exit_code": t.get("exit_code"), "started_at": t.get("started_at"),
                    "stopped_at": t.get("stopped_at"), "attempt": t.get("attempt"),
                    "created_at": t.get("created_at")} for t in found])
        return 0
    from .._display import tasks_renderable

    console().print(tasks_renderable([(t["id"], state_of(t), None, None) for t in found]))
    return 0


def result(args: argparse.Namespace) -> int:
    service = client(args)
    answer = service.result(args.task_id)
    saved: list[Path] = []
    if args.download:
        if not is_task_id(answer.get("id")):
            raise ConfigError("task", answer.get("id"), "a task id (as the service sent)")
        folder = Path(args.download) / answer["id"]
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in (("result.json", json.dumps(answer, indent=2)),
                           ("diff.patch", service.diff(args.task_id))):
            write_record(folder / name, text)
            saved.append(folder / name)
    if args.json:
        emit_json({**answer, "downloaded": [str(p) for p in saved]})
        return 0
    from .._render import fields_table

    cost = answer.get("cost") or {}
    agent = answer.get("agent") or {}
    fields: dict[str, Any] = {
        "status": answer.get("status"), "exit_code": answer.get("exit_code"),
        "reason": answer.get("reason"), "branch": answer.get("branch"),
        "pull_request_url": answer.get("pull_request_url"),
        "cost": None if not cost else f"${cost.get('total_usd') or 0:.4f}"}
    if agent:
        fields.update({
            "agent": agent.get("subtype") or "no result line", "turns": agent.get("turns"),
            "tokens": ", ".join(f"{k.removesuffix('_tokens')} {v:,}" for k, v in
                                (agent.get("usage") or {}).items()
                                if isinstance(v, int) and v) or None,
            "session": agent.get("session_id"), "model": agent.get("model"),
            "final text": agent.get("text")})
    console().print(fields_table(f"Result of {answer.get('id')}", fields))
    if saved:
        note(f"{len(saved)} files in {args.download}/{answer['id']}/")
    return 0


def stop(args: argparse.Namespace) -> int:
    task = client(args).cancel(args.task_id)
    if args.json:
        emit_json({"task_id": task["id"], "stopping": True, "status": task["status"]})
    else:
        note(f"stopping {task['id']} ({task['status']}): its logs, diff and result stay")
    return 0
