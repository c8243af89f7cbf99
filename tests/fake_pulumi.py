"""A PulumiCommand that records every `pulumi` invocation and answers like the CLI.

It replaces only the process: the Automation API's own code builds the arguments,
parses the outputs and raises its own errors (``create_command_error`` decides the type
from the CLI's error text, as for a real failure). Output shapes follow the CLI's JSON
(``stack output --json``, ``stack history --json``, ``stack ls --json``, ``config
--json``) as the SDK parses them, and events are written to ``--event-log`` as JSON lines
the way the engine writes them (the file-based event log of CLI versions up to 3.205).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
from pulumi.automation import PulumiCommand
from pulumi.automation._cmd import CommandResult
from pulumi.automation.errors import create_command_error
from semver import VersionInfo

URN = "urn:pulumi:{stack}::rclaude::{type}::{name}"
NOT_FOUND = "error: no stack named '{stack}' found"
LOCKED = (
    "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) "
    "to end or delete the lock file with `pulumi cancel`.\n  file:///root/.rclaude/state/"
    ".pulumi/locks/organization/rclaude/dev/7f3c.json: created by root@host (pid 4242) at "
    "2026-11-27T12:00:00Z"
)


@attrs.define
class Call:
    args: list[str]
    cwd: str
    env: dict[str, str]

    @property
    def positional(self) -> list[str]:
        """The arguments that are neither flags nor flag values."""
        words, skip = [], False
        for arg in self.args:
            if skip:
                skip = False
            elif arg.startswith("-"):
                skip = arg in _FLAGS_WITH_VALUES
            else:
                words.append(arg)
        return words

    @property
    def verb(self) -> str:
        """The subcommand, e.g. ``stack select`` or ``up``."""
        words = self.positional
        if len(words) > 1 and words[0] in ("stack", "config") and words[1] in _SUBCOMMANDS:
            return f"{words[0]} {words[1]}"
        return words[0] if words else ""


_FLAGS_WITH_VALUES = {"--stack", "--event-log", "--exec-kind", "--secrets-provider",
                      "--page-size", "--page", "--color", "--plaintext", "--secret",
                      "--policy-pack", "--message", "--parallel"}
_ENGINE_VERBS = {"up", "preview", "refresh", "destroy"}
_SUBCOMMANDS = {"select", "init", "rm", "ls", "output", "history", "set-all", "export",
                "import", "tag"}


def event(sequence: int, **payload: Any) -> str:
    # The engine stamps events with the time they happen (seconds since the epoch).
    return json.dumps({"sequence": sequence, "timestamp": int(time.time()) + sequence,
                       **payload})


def step(op: str, stack: str, type_: str, name: str) -> dict[str, Any]:
    urn = URN.format(stack=stack, type=type_, name=name)
    return {"op": op, "urn": urn, "type": type_, "provider": ""}


def success_events(stack: str, op: str = "create") -> list[str]:
    resources = [("aws:s3/bucket:Bucket", "rclaude-dev-results"),
                 ("aws:ecs/cluster:Cluster", "rclaude-dev-cluster")]
    lines = [event(0, preludeEvent={"config": {}})]
    seq = 1
    for type_, name in resources:
        lines.append(event(seq, resourcePreEvent={"metadata": step(op, stack, type_, name),
                                                  "planning": False}))
        lines.append(event(seq + 1, resOutputsEvent={"metadata": step(op, stack, type_, name),
                                                     "planning": False}))
        seq += 2
    lines.append(event(seq, summaryEvent={"maybeCorrupt": False, "durationSeconds": 42,
                                          "resourceChanges": {op: len(resources), "same": 1},
                                          "PolicyPacks": {}}))
    lines.append(event(seq + 1, cancelEvent={}))
    return lines


def failure_events(stack: str) -> list[str]:
    meta = step("create", stack, "aws:autoscaling/group:Group", "rclaude-dev-asg")
    return [
        event(1, resourcePreEvent={"metadata": meta, "planning": False}),
        event(2, diagnosticEvent={
            "urn": meta["urn"], "prefix": "error: ", "color": "never", "severity": "error",
            "message": "creating Auto Scaling Group (rclaude-dev-asg-1a2b3c4): operation error "
            "Auto Scaling: CreateAutoScalingGroup, api error ValidationError: You must use a "
            "valid fully-formed launch template.\n",
        }),
        event(3, resOpFailedEvent={"metadata": meta, "status": 1, "steps": 1}),
        event(4, summaryEvent={"maybeCorrupt": False, "durationSeconds": 7,
                               "resourceChanges": {"create": 1}, "PolicyPacks": {}}),
        event(5, cancelEvent={}),
    ]


OUTPUTS = {
    "deployment": "dev", "region": "us-east-1", "cluster_name": "rclaude-dev-cluster-1a2b3c4",
    "cluster_arn": "arn:aws:ecs:us-east-1:111122223333:cluster/rclaude-dev-cluster-1a2b3c4",
    "capacity_provider": "rclaude-dev-cp-5d6e7f8", "task_definition_family": "rclaude-dev-runner",
    "task_definition_arn": "arn:aws:ecs:us-east-1:111122223333:task-definition/"
    "rclaude-dev-runner:3", "container_name": "runner", "bucket": "rclaude-dev-results-9a8b7c6",
    "log_group": "/rclaude/dev", "subnet_ids": ["subnet-0a1b2c3d", "subnet-4e5f6a7b"],
    "security_group_id": "sg-0123456789abcdef0",
    "task_role_arn": "arn:aws:iam::111122223333:role/rclaude-dev-task-1234567",
    "execution_role_arn": "arn:aws:iam::111122223333:role/rclaude-dev-execution-7654321",
    "secret_arn": "arn:aws:secretsmanager:us-east-1:111122223333:secret:"
    "rclaude/dev/anthropic-api-key-20261127-AbCdEf",
    "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/rclaude-dev-runner-1a2b3c4@sha256:"
    + "ab" * 32,
}

HISTORY = [{
    "kind": "update", "startTime": "2026-11-27T12:00:00.000Z", "message": "",
    "environment": {"exec.kind": "auto.inline"}, "config": {}, "result": "succeeded",
    "endTime": "2026-11-27T12:04:12.000Z", "version": 1, "resourceChanges": {"create": 33},
}]


Responder = Callable[[Call], tuple[str, str, int] | None]


class FakePulumi(PulumiCommand):
    """Records invocations; answers from a small model of one stack in one backend."""

    def __init__(self, *, version: str = "3.205.0", stack_exists: bool = False,
                 events: Callable[[str], list[str]] = success_events,
                 overrides: Mapping[str, Responder] | None = None) -> None:
        # No `pulumi version` process: the real constructor would run one. What the
        # engine runs itself (a secret on stdin) reaches a small executable standing in for
        # the CLI, which records its arguments and its standard input.
        self._bin = Path(tempfile.mkdtemp(prefix="fake-pulumi-"))
        self.command = str(self._bin / "pulumi")
        Path(self.command).write_text(
            f"#!{sys.executable}\nimport json, os, sys\n"
            "with open(os.path.join(os.path.dirname(sys.argv[0]), 'calls.jsonl'), 'a') as f:\n"
            "    f.write(json.dumps({'args': sys.argv[1:], 'stdin': sys.stdin.read(),"
            " 'cwd': os.getcwd()}) + '\\n')\n")
        Path(self.command).chmod(0o755)
        self.version = VersionInfo.parse(version)
        self.calls: list[Call] = []
        self.stacks: set[str] = {"dev"} if stack_exists else set()
        self._config: dict[str, dict[str, Any]] = {}
        self.events = events
        self.overrides = dict(overrides or {})
        #: The ids (and ARNs) of the resources the stack's state holds (`stack export`).
        self.managed: list[str] = []

    def run(self, args: list[str], cwd: str, additional_env: Mapping[str, str],
            on_output: Any = None, on_error: Any = None) -> CommandResult:
        args = list(args)
        if "--non-interactive" not in args:
            args.insert(0, "--non-interactive")
        call = Call(args=args, cwd=cwd, env=dict(additional_env))
        self.calls.append(call)
        answer = self.overrides[call.verb](call) if call.verb in self.overrides else None
        stdout, stderr, code = answer if answer is not None else self._answer(call)
        if answer is not None and code == 0 and call.verb in _ENGINE_VERBS:
            # An operation that ran ends its event log with a cancel event, as the engine
            # does (the SDK's reader waits 5 s for one otherwise).
            self._write_events(call, [event(0, cancelEvent={})])
        for line in stdout.splitlines():
            if on_output:
                on_output(line)
        result = CommandResult(stdout=stdout, stderr=stderr, code=code)
        if code != 0:
            raise create_command_error(result)
        return result

    @property
    def stdin_calls(self) -> list[dict[str, Any]]:
        """What the engine ran as the CLI itself: ``args``, ``stdin``, ``cwd`` each."""
        path = self._bin / "calls.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    @property
    def config(self) -> dict[str, dict[str, Any]]:
        """The stack's config: set through the Automation API, and secrets set on stdin."""
        for call in self.stdin_calls:
            args = call["args"]
            if args[:2] == ["config", "set"] and "--secret" in args:
                self._config[args[-1]] = {"value": call["stdin"], "secret": True}
        return self._config

    def _write_events(self, call: Call, lines: list[str]) -> None:
        if "--event-log" in call.args:
            with open(call.args[call.args.index("--event-log") + 1], "w") as f:
                f.write("\n".join(lines) + "\n")

    def _stack_arg(self, call: Call) -> str:
        args = call.args
        return args[args.index("--stack") + 1] if "--stack" in args else "dev"

    def _answer(self, call: Call) -> tuple[str, str, int]:
        stack = self._stack_arg(call)
        verb = call.verb
        if verb == "stack select":
            if stack not in self.stacks:
                return "", NOT_FOUND.format(stack=stack), 255
            return "", "", 0
        if verb == "stack init":
            name = call.positional[2]
            self.stacks.add(name)
            return f"Created stack '{name}'\n", "", 0
        if verb == "config set-all":
            args = call.args
            for i, arg in enumerate(args):
                if arg in ("--plaintext", "--secret"):
                    key, _, value = args[i + 1].partition("=")
                    self._config[key] = {"value": value, "secret": arg == "--secret"}
            return "", "", 0
        if verb == "config":
            shown = {k: {**v, "value": v["value"]} for k, v in self.config.items()}
            return json.dumps(shown), "", 0
        if verb in ("up", "preview", "refresh", "destroy"):
            if stack not in self.stacks:
                return "", NOT_FOUND.format(stack=stack), 255
            lines = self.events(stack)
            self._write_events(call, lines)
            failed = any("resOpFailedEvent" in line for line in lines)
            if failed:
                return ("Updating (dev):\n error: update failed\n", "error: update failed", 255)
            return f"{verb} of {stack} done\n", "", 0
        if verb == "stack output":
            shown = dict(OUTPUTS)
            return json.dumps(shown), "", 0
        if verb == "stack export":
            if stack not in self.stacks:
                return "", NOT_FOUND.format(stack=stack), 255
            return json.dumps({"version": 3, "deployment": {"resources": [
                {"urn": f"urn:pulumi:{stack}::rclaude-infra::t::r{i}", "type": "t",
                 "id": known, "outputs": {"arn": known}}
                for i, known in enumerate(self.managed)]}}), "", 0
        if verb == "stack history":
            return json.dumps(HISTORY), "", 0
        if verb == "stack ls":
            return json.dumps([
                {"name": name, "current": False, "lastUpdate": "2026-11-27T12:04:12.000Z",
                 "updateInProgress": False, "resourceCount": 33}
                for name in sorted(self.stacks)
            ]), "", 0
        if verb == "stack rm":
            self.stacks.discard(call.positional[-1])
            return "Stack 'dev' has been removed!\n", "", 0
        if verb == "cancel":
            return "The currently running update for 'dev' has been canceled!\n", "", 0
        raise AssertionError(f"unexpected pulumi invocation: {call.args}")

    def verbs(self) -> list[str]:
        return [c.verb for c in self.calls]
