"""Another tool driving rclaude-infra: gate a deployment on policy and budget, deploy it
while reacting to progress events, and run a batch of tasks, collecting their results.

Offline by default (no AWS account, no Pulumi CLI): the gate runs on the offline plan and
the batch runs on the local provider. ``--deploy`` runs the real path on AWS instead.

    python examples/embed.py                 # offline: gate, then a local batch, JSON out
    python examples/embed.py --deploy        # AWS: gate, up with events, batch on ECS
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

from rclaude_infra import (
    CostEstimate,
    Deployment,
    DeploymentConfig,
    ResourceDone,
    ResourceFailed,
    ResourceStarted,
    StackOutputs,
    Summary,
    TaskSpec,
    Usage,
)


class EventLog:
    """Reacts to typed progress events: counts them, and reports failures at once."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.failed: list[str] = []

    def __call__(self, event: Any) -> None:
        self.counts[type(event).__name__] += 1
        if isinstance(event, ResourceStarted):
            print(f"  {event.op} {event.name} ...", file=sys.stderr)
        elif isinstance(event, ResourceDone):
            print(f"  {event.op} {event.name} done", file=sys.stderr)
        elif isinstance(event, ResourceFailed):
            self.failed.append(f"{event.name}: {event.message}")
        elif isinstance(event, Summary):
            print(f"  {event.changed} changed in {event.duration_seconds:.0f}s", file=sys.stderr)


def gate(deployment: Deployment, usage: Usage) -> CostEstimate:
    """Refuse a stack that breaks a mandatory security rule or the config's budget."""
    deployment.check_policies().raise_for_mandatory()
    estimate = deployment.estimate_cost(usage)
    estimate.check_budget(deployment.config.max_monthly_usd)
    return estimate


def deploy(deployment: Deployment, events: EventLog) -> StackOutputs:
    """``up`` with our own event handler, and no live display of the library's own."""
    return deployment.up(on_progress=events, progress=False)


def run_batch(deployment: Deployment, commands: list[str]) -> list[dict[str, Any]]:
    """Start every command as a task, wait for all, and return what each left."""
    tasks = deployment.run_tasks([TaskSpec(command=c, timeout=600) for c in commands])
    results = []
    for task in tasks:
        state = task.wait(timeout=900)
        output = [line.text for line in task.logs() if not line.text.startswith("[runner]")]
        results.append({"task_id": task.task_id, "status": state.status.value,
                        "exit_code": state.exit_code, "reason": state.reason,
                        "output": output})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploy", action="store_true", help="deploy to AWS and run there")
    parser.add_argument("--name", default="embed")
    args = parser.parse_args(argv)

    config = DeploymentConfig(max_monthly_usd=50)
    # Shell commands, not prompts: no model tokens to pay for.
    usage = Usage(tasks_per_day=20, task_minutes=10, model_usd_per_task=0)
    estimate = gate(Deployment(args.name, config), usage)
    print(f"gate passed: ${estimate.monthly:.2f}/month for 20 tasks/day", file=sys.stderr)

    commands = ["echo one", "python3 -c 'print(6 * 7)'", "exit 3"]
    if args.deploy:
        deployment = Deployment(args.name, config)
        events = EventLog()
        deploy(deployment, events)
        if events.failed:
            print("\n".join(events.failed), file=sys.stderr)
            return 1
    else:
        deployment = Deployment(args.name, config, provider="local")
    results = run_batch(deployment, commands)
    print(json.dumps({"monthly_estimate": round(estimate.monthly, 2), "tasks": results},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
