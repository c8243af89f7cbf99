"""``check``, ``preview``, ``up``, ``status``, ``destroy``, ``sweep`` and
``permissions``: the deployed stack."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._validate import number_between
from ._common import (
    backend_argument,
    config_arguments,
    confirm,
    console,
    deployment,
    emit_json,
    json_argument,
    note,
    task_source_arguments,
    usage_arguments,
    verb,
)


def add_parsers(commands: Any) -> None:
    verb(commands, "check", "prerequisites for up: Pulumi CLI, AWS credentials, region, "
         "quotas", _check, config_arguments, json_argument)
    for name, text, handler in (
            ("preview", "what up would change, from the engine", _preview),
            ("up", "deploy (create or update) the stack", _up),
            ("destroy", "delete every resource of the stack", _destroy)):
        cmd = verb(commands, name, text, handler, config_arguments, backend_argument,
                   json_argument)
        if name != "destroy":
            usage_arguments(cmd)  # the budget up and preview hold the estimate to
        if name != "preview":
            cmd.add_argument("--yes", "-y", action="store_true",
                             help="do not ask for confirmation (required without a terminal)")
            cmd.add_argument("--progress", action=argparse.BooleanOptionalAction,
                             default=None, help="live progress bar (default: on a terminal)")
        if name == "destroy":
            cmd.add_argument("--remove", action="store_true",
                             help="also remove the stack and its history from the backend")
            cmd.add_argument("--drain", type=float, default=0.0, metavar="SECONDS",
                             help="after closing the deployment to new tasks, give the "
                             "running ones this long to end by themselves before they are "
                             "stopped (default 0)")
    verb(commands, "status", "the stack's outputs, its instances and the tasks not ended",
         _status, config_arguments, task_source_arguments, json_argument)
    sweep = verb(commands, "sweep", "resources tagged for the deployment that its stack no "
                 "longer manages (leaks); --delete deletes them", _sweep, config_arguments,
                 backend_argument, json_argument)
    sweep.add_argument("--delete", action="store_true",
                       help="delete what is found (default: only list it)")
    sweep.add_argument("--yes", "-y", action="store_true",
                       help="with --delete: do not ask (required without a terminal)")
    verb(commands, "permissions", "the IAM policy whoever submits tasks to the stack needs "
         "(JSON, for aws iam put-role-policy)", _permissions, config_arguments,
         task_source_arguments)


def _sweep(args: argparse.Namespace) -> int:
    d = deployment(args)
    if args.delete:
        found = d.sweep(dry_run=True)
        if not found.swept:
            return _show_sweep(args, found)
        confirm(args, f"Delete {len(found.swept)} resources tagged for {d.name!r} that its "
                "stack does not manage?")
    return _show_sweep(args, d.sweep(dry_run=not args.delete))


def _show_sweep(args: argparse.Namespace, report: Any) -> int:
    if args.json:
        print(report.to_json())
    else:
        console().print(report)
    return 1 if report.failed else 0


def _permissions(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..permissions import submitter_policy_json

    if args.provider == "local":
        raise ConfigError("--provider", "local", "ecs-ec2 (local tasks need no IAM policy)")
    print(submitter_policy_json(deployment(args, for_tasks=True).outputs))
    return 0


def _check(args: argparse.Namespace) -> int:
    report = deployment(args).check()
    if args.json:
        emit_json([{"name": i.name, "status": i.status, "detail": i.detail, "fix": i.fix}
                   for i in report.items])
    else:
        console().print(report)
    return 0 if report.ok else 1


def _preview(args: argparse.Namespace) -> int:
    changes = deployment(args).preview(progress=False)
    if args.json:
        emit_json({"changes": changes})
    else:
        summary = ", ".join(f"{count} to {op}" for op, count in changes.items()) or "no changes"
        print(f"preview: {summary}")
    return 0


def _up(args: argparse.Namespace) -> int:
    from ..errors import PriceNotFoundError

    d = deployment(args)
    if not args.json:
        try:
            estimate = d.estimate_cost()
            note(f"deploying {d.name!r} in {d.config.region}: about "
                 f"${estimate.idle_monthly:,.2f}/month idle, ${estimate.monthly:,.2f}/month "
                 "for the config's usage (rclaude-infra cost for the detail)")
        except PriceNotFoundError:
            note(f"deploying {d.name!r} in {d.config.region} (no price snapshot for this "
                 "region's services: rclaude-infra cost --other-rates-from us-east-1)")
    # up() itself refuses over budget or on a mandatory policy violation, before any call.
    confirm(args, f"Deploy {d.name!r} to {d.config.region}?")
    outputs = d.up(progress=_progress(args))
    if args.json:
        emit_json(outputs.to_dict())
    else:
        console().print(outputs)
        note(f"next: rclaude-infra run --name {d.name} --prompt '...' --follow")
    return 0


def _destroy(args: argparse.Namespace) -> int:
    d = deployment(args)
    try:
        active = len(d.status().tasks)
    except Exception:  # only for the question: the destroy itself says what is wrong
        active = 0
    number_between("--drain", args.drain, 0, 24 * 3600)  # before the question
    confirm(args, f"Delete every resource of {d.name!r} in {d.config.region}?" + (
        f" Its {active} running or waiting tasks are stopped first" + (
            f" (after {args.drain:g}s to end by themselves)" if args.drain else "") + "."
        if active else ""))
    d.destroy(remove=args.remove, drain=args.drain, progress=_progress(args))
    if args.json:
        emit_json({"destroyed": d.name, "removed": args.remove})
    else:
        note(f"destroyed {d.name!r}" + (" and removed its stack" if args.remove else ""))
    return 0


def _progress(args: argparse.Namespace) -> bool:
    if args.json:
        return False  # stdout is for the JSON
    return bool(sys.stdout.isatty()) if args.progress is None else bool(args.progress)


def _status(args: argparse.Namespace) -> int:
    status = deployment(args, for_tasks=True).status()
    if args.json:
        emit_json(status.to_dict())
    else:
        console().print(status)
    return 0
