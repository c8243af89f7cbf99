"""The budget holds when several processes, or hosts, submit at once: the check and the
reservation are one atomic step (a file lock for local tasks, conditional writes to the
S3 ledger for ECS tasks), and a task not ended counts at its cap.

Local: separate Python processes released together, their prompt tasks held mid-turn by
the scripted Anthropic API. ECS: separate Deployment objects (nothing in memory shared,
as on separate hosts) released together by a barrier, against moto's S3 and ECS."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fake_anthropic import FakeAnthropic, Reply
from moto_stack import QUICK_POLL, hold_tasks_running
from waiting import wait_for_file

from rclaude_infra import (
    BudgetExceededError,
    Deployment,
    DeploymentConfig,
    StackOutputs,
    TaskSpec,
    TaskStatus,
)

_SUBMIT = """
import sys, time
from pathlib import Path
from rclaude_infra import BudgetExceededError, Deployment, DeploymentConfig, TaskSpec
d = Deployment("dev", DeploymentConfig(max_monthly_usd=5.05), provider="local")
spec = TaskSpec(prompt="work for a while", max_budget_usd=2.0, task_id=sys.argv[1])
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
try:
    d.run_task(spec)
except BudgetExceededError:
    print("refused")
else:
    print("started")
"""


def test_processes_submitting_at_once_never_pass_the_budget_together(
        fake_api: FakeAnthropic, tmp_path: Path, private_home: Path) -> None:
    fake_api.script = [Reply(text="Done.", hold=120)] * 12
    go = tmp_path / "go"
    ids = [f"t-budget-race-{i}" for i in range(6)]
    procs = [subprocess.Popen([sys.executable, "-c", _SUBMIT, task_id, str(go)],
                              env=dict(os.environ), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for task_id in ids]
    time.sleep(1.0)  # every process imported and waiting
    go.touch()
    said = [p.communicate(timeout=120) for p in procs]
    outcomes = sorted(out.strip() for out, _ in said)
    assert outcomes == ["refused"] * 4 + ["started"] * 2, said  # $2.00 + $2.00 <= $5.05
    d = Deployment("dev", DeploymentConfig(max_monthly_usd=5.05), provider="local")
    running = d.tasks(limit=None)
    assert len(running) == 2
    # A new process counts the two running tasks at their caps ($4.00), not at the
    # model cost a task is expected to have.
    with pytest.raises(BudgetExceededError, match=r"\$4\.00"):
        d.run_task(TaskSpec(prompt="one more", max_budget_usd=1.5))
    for task in running:
        task.stop("done with the test")
    for task in running:
        assert task.wait(timeout=60).status is TaskStatus.STOPPED


def test_hosts_submitting_at_once_never_pass_the_budget_together(
        aws: Any, stack: StackOutputs, moto_endpoint: str,
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    hold_tasks_running(moto_endpoint)
    request.addfinalizer(lambda: hold_tasks_running(moto_endpoint, hold=False))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-budget-race")
    month = dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    probe = Deployment.from_outputs("dev", stack, session=aws, config=DeploymentConfig())
    base = probe.spend(month).total_usd  # the idle stack so far this month
    config = DeploymentConfig(max_monthly_usd=round(base + 250, 2))
    hosts = [Deployment.from_outputs("dev", stack, session=aws, config=config,
                                     poll_interval=QUICK_POLL) for _ in range(5)]
    for host in hosts:
        host.plan()  # each host's plan made before the race, not during it
    barrier = threading.Barrier(len(hosts))
    outcomes: list[str] = []

    def submit(host: Deployment, i: int) -> None:
        spec = TaskSpec(prompt="work", max_budget_usd=100.0, task_id=f"t-host-race-{i}")
        barrier.wait()
        try:
            host.run_task(spec)
        except BudgetExceededError:
            outcomes.append("refused")
        else:
            outcomes.append("started")

    threads = [threading.Thread(target=submit, args=(h, i)) for i, h in enumerate(hosts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(outcomes) == ["refused"] * 3 + ["started"] * 2  # $200 + compute < $250
    ledger = aws.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix="ledger/")
    assert [o["Key"] for o in ledger["Contents"]] == [f"ledger/{month:%Y-%m}.json"]


def test_a_running_task_that_rewrites_its_spec_does_not_stop_the_budget_check(
        tmp_path: Path, private_home: Path) -> None:
    """A local task can write its own spec.json; the budget still checks (that task then
    counts at what it cost so far) and other tasks still start."""
    d = Deployment("dev", DeploymentConfig(max_monthly_usd=5.0), provider="local")
    signal = tmp_path / "rewritten"
    task = d.run_task(TaskSpec(
        command=f"echo '{{\"prompt\": 7}}' > ../spec.json; touch {signal}; sleep 60"))
    wait_for_file(signal)
    other = Deployment("dev", DeploymentConfig(max_monthly_usd=5.0), provider="local")
    assert other.run_task(TaskSpec(command="true")).wait(timeout=60).status is (
        TaskStatus.SUCCEEDED)
    task.stop("done")
    task.wait(timeout=60)
