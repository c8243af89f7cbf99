"""Submit and wait N tasks on moto's server: the library against a plain boto3 loop.

Run: python benchmarks/bench_dispatch.py [--tasks 500] [--poll 1.0] [--latency 0 25]

moto's server runs in its own process (as AWS would be), on a free loopback port, with
the resources of a deployed stack (tests/moto_stack.py). moto moves a task one lifecycle
step per DescribeTasks that names it (RUNNING, DEACTIVATING, STOPPING, DEPROVISIONING,
STOPPED), so both sides need four polls of a task before it has ended.

- plain loop: one RunTask per task, sequentially; then rounds of one DescribeTasks per
  unfinished task, ``--poll`` seconds apart, until all are STOPPED.
- library: ``Deployment.run_tasks`` (spec to S3 with a conditional put, RunTask,
  attempts.json; 16 at a time), then ``task.wait()`` for each task, every status read
  served by the shared DescribeTasks (100 tasks a call, at most once per ``--poll``).

``--latency MS`` adds a round trip to every request, client side, before it is sent (a
sleep, so concurrent requests overlap as they do on a network): 0 is bare loopback, where
moto's own CPU per call (about 4 ms, one process) bounds both sides; 25 ms is about what a
machine in the same region as its API endpoint sees (a laptop sees more).

Reports tasks/s (submit to all ended), API calls per task by operation, and the most
DescribeTasks calls in any one poll round. Targets: the library at least 4x the plain
loop's rate; at most ceil(N/100) DescribeTasks per poll round.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from moto_stack import make_stack

from rclaude_infra import Deployment, StackOutputs, TaskSpec
from rclaude_infra._aws.ecs import EcsProvider


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return server, endpoint
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.1)


class Counter:
    """API calls by operation (one per call, retries not counted twice)."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1

    def reset(self) -> None:
        self.calls.clear()


def session_with(counter: Counter, latency_ms: float) -> Any:
    import boto3

    session = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench",
                            region_name="us-east-1")
    session.events.register("before-call", counter)
    if latency_ms:
        session.events.register("before-send", lambda **_: time.sleep(latency_ms / 1000))
    return session


def plain_loop(session: Any, stack: StackOutputs, n: int, poll: float) -> tuple[float, int]:
    ecs = session.client("ecs")
    start = time.perf_counter()
    arns = [ecs.run_task(cluster=stack.cluster_arn, taskDefinition=stack.task_definition_arn,
                         startedBy=f"plain-{i}", capacityProviderStrategy=[
                             {"capacityProvider": stack.capacity_provider, "weight": 1}],
                         )["tasks"][0]["taskArn"] for i in range(n)]
    pending = set(arns)
    most = 0
    while pending:
        time.sleep(poll)
        calls = 0
        for arn in list(pending):
            calls += 1
            task = ecs.describe_tasks(cluster=stack.cluster_arn, tasks=[arn])["tasks"][0]
            if task["lastStatus"] == "STOPPED":
                pending.discard(arn)
        most = max(most, calls)
    return time.perf_counter() - start, most


def library(session: Any, stack: StackOutputs, n: int, poll: float) -> tuple[float, int]:
    deployment = Deployment.from_outputs("bench", stack, session=session)
    provider = deployment._tasks()
    assert isinstance(provider, EcsProvider)
    provider.poll_interval = poll
    rounds: dict[int, int] = collections.Counter()
    describe = provider.ecs.describe_tasks

    def counted(**kwargs: Any) -> Any:  # which poll round each DescribeTasks belongs to
        rounds[int((time.perf_counter() - start) / poll)] += 1
        return describe(**kwargs)

    provider.ecs.describe_tasks = counted
    start = time.perf_counter()
    tasks = deployment.run_tasks([TaskSpec(command="true") for _ in range(n)])
    for task in tasks:
        task.wait()
    return time.perf_counter() - start, max(rounds.values(), default=0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 25.0], metavar="MS")
    args = parser.parse_args()
    n = args.tasks
    os.environ["RCLAUDE_HOME"] = tempfile.mkdtemp(prefix="rclaude-bench-")
    print(f"{n} tasks, poll every {args.poll:g} s, moto server in its own process")
    server, endpoint = start_moto()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        for latency in args.latency:
            report(n, args.poll, latency)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


def report(n: int, poll: float, latency: float) -> None:
    counter = Counter()
    session = session_with(counter, latency)
    results = {}
    for name, run in (("plain boto3 loop", plain_loop), ("rclaude-infra", library)):
        # A fresh cluster each, so neither side sees the other's tasks.
        stack = make_stack(session, instances=math.ceil(n / 300))
        counter.reset()
        seconds, most = run(session, stack, n, poll)
        results[name] = (seconds, most, dict(counter.calls))
    print(f"\n== {latency:g} ms added per request ==")
    for name, (seconds, most, calls) in results.items():
        total = sum(calls.values())
        print(f"{name}: {seconds:.2f} s, {n / seconds:.1f} tasks/s, "
              f"{total / n:.2f} API calls per task, at most {most} DescribeTasks in one "
              "poll round")
        for operation, count in sorted(calls.items()):
            print(f"  {operation:24} {count:6}  ({count / n:.2f} per task)")
    ratio = results["plain boto3 loop"][0] / results["rclaude-infra"][0]
    bound = math.ceil(n / 100)
    most = results["rclaude-infra"][1]
    print(f"speed-up: {ratio:.1f}x (target >= 4x): {'met' if ratio >= 4 else 'NOT met'}; "
          f"DescribeTasks per poll round: {most} (target <= ceil(N/100) = {bound}): "
          f"{'met' if most <= bound else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
