"""What a notebook shows for each object: the facts that matter, escaped."""

from __future__ import annotations

from pathlib import Path

import pytest
from plan_helpers import PlanFor

from rclaude_infra import (
    CheckItem,
    CheckReport,
    Deployment,
    DeploymentConfig,
    DeploymentStatus,
    InstanceInfo,
    StackOutputs,
    TaskSpec,
    estimate_cost,
)


def test_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    d = Deployment("dev", DeploymentConfig(region="eu-west-1", nat="single",
                                           max_monthly_usd=80))
    shown = d._repr_html_()
    for fact in ("Deployment dev", "ecs-ec2", "eu-west-1", "t3.medium", "spot", "NAT single",
                 "$80.00/month"):
        assert fact in shown
    assert "deployed" not in shown  # no outputs known, and none fetched for a repr
    deployed = Deployment.from_outputs("dev", StackOutputs(cluster_name="c-1", bucket="b-1"))
    assert "cluster c-1, bucket b-1" in deployed._repr_html_()


def test_plan_and_cost(plan_for: PlanFor) -> None:
    p = plan_for()
    shown = p._repr_html_()
    assert f"{len(p.stack_resources)} resources" in shown
    assert "aws:ecs:Cluster" in shown and "<details>" in shown
    assert "idle $0.50/month" in estimate_cost(p)._repr_html_()


def test_check_report_escapes() -> None:
    report = CheckReport(items=(CheckItem(name="<Pulumi>", status="problem", detail="x",
                                          fix="install & retry"),))
    shown = report._repr_html_()
    assert "&lt;Pulumi&gt;" in shown and "install &amp; retry" in shown


def test_status_and_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    status = DeploymentStatus(name="dev", provider="ecs-ec2", instances=(InstanceInfo(
        instance_id="i-0abc", instance_type="t3.medium", lifecycle="spot", status="ACTIVE",
        running_tasks=2, pending_tasks=0, agent_connected=True),), tasks={"t-1": "RUNNING"})
    shown = status._repr_html_()
    assert "1 instances, 1 tasks not ended" in shown and "i-0abc" in shown and "t-1" in shown
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path))
    task = Deployment("dev", provider="local").run_task(TaskSpec(command="exit 2",
                                                                 task_id="t-html"))
    task.wait(timeout=60)
    assert "Task t-html</strong>: FAILED" in task._repr_html_()
    assert "exit code 2" in task._repr_html_()
