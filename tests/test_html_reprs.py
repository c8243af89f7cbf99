"""What a notebook shows for each object: the facts that matter, escaped, and the same
rendering ``str()`` and the terminal give (one ``__rich__`` per report)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from plan_helpers import PlanFor

from rclaude_infra import (
    BestOf,
    CheckItem,
    CheckReport,
    Deployment,
    DeploymentConfig,
    DeploymentStatus,
    InstanceInfo,
    StackOutputs,
    SweepReport,
    TaskSpec,
    Usage,
    estimate_cost,
)
from rclaude_infra._render import HTML_WIDTH, to_text
from rclaude_infra.sweep_report import SweptResource, TaggedResource
from rclaude_infra.tasks.best_of import Attempt


def shown_text(page: str) -> str:
    """The characters a notebook displays for an HTML repr: tags dropped, entities read."""
    assert page.startswith("<pre") and page.endswith("</pre>"), page[:200]
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def same_everywhere(obj: Any) -> str:
    """The notebook's text equals ``str()``'s at the notebook's width, so both come from
    the one renderer; returns it."""
    text = shown_text(obj._repr_html_())
    assert [line.rstrip() for line in text.rstrip("\n").splitlines()] == \
        to_text(obj, width=HTML_WIDTH).splitlines()
    return text


def test_deployment() -> None:
    d = Deployment("dev", DeploymentConfig(region="eu-west-1", nat="single",
                                           max_monthly_usd=80))
    shown = same_everywhere(d)
    for fact in ("Deployment dev", "ecs-ec2", "eu-west-1", "t3.medium", "spot", "NAT single",
                 "$80.00/month"):
        assert fact in shown
    assert "deployed" not in shown  # no outputs known, and none fetched for a repr
    deployed = Deployment.from_outputs("dev", StackOutputs(cluster_name="c-1", bucket="b-1"))
    assert "cluster c-1, bucket b-1" in same_everywhere(deployed)


def test_plan_and_cost(plan_for: PlanFor) -> None:
    p = plan_for()
    shown = same_everywhere(p)
    assert f"{len(p.stack_resources)} resources" in shown
    assert "aws:ecs:Cluster" in shown and "rclaude-dev-cluster" in shown
    estimate = estimate_cost(p, Usage(tasks_per_day=4))
    shown = same_everywhere(estimate)
    assert "idle $0.50/month" in shown and estimate.summary in shown.replace("\n", " ")
    diff = same_everywhere(estimate.diff(estimate_cost(plan_for(nat="single"),
                                                        Usage(tasks_per_day=4))))
    assert "rclaude-dev-nat-0 / NAT gateway" in diff and "+32.85" in diff


def test_reports_escape_what_they_show() -> None:
    report = CheckReport(items=(CheckItem(name="<Pulumi>", status="problem", detail="x",
                                          fix="install & retry"),))
    page = report._repr_html_()
    assert "&lt;Pulumi&gt;" in page and "install &amp; retry" in page
    assert "<Pulumi>" not in page
    assert "1 problem(s) to fix before up" in same_everywhere(report)


def test_status_outputs_best_of_and_sweep() -> None:
    outputs = StackOutputs(cluster_name="c-1", bucket="b-1", subnet_ids=("s-1", "s-2"))
    status = DeploymentStatus(name="dev", provider="ecs-ec2", outputs=outputs,
                              instances=(InstanceInfo(
                                  instance_id="i-0abc", instance_type="t3.medium",
                                  lifecycle="spot", status="ACTIVE", running_tasks=2,
                                  pending_tasks=0, agent_connected=True),),
                              tasks={"t-1": "RUNNING"})
    shown = same_everywhere(status)
    for fact in ("Instances (1)", "i-0abc", "Tasks not ended (1)", "t-1", "RUNNING",
                 "s-1, s-2", "connected"):
        assert fact in shown
    assert "b-1" in same_everywhere(outputs)
    best = BestOf(attempts=(
        Attempt(task_id="t-a1", status="SUCCEEDED", check_passed=True, diff_lines=2,
                cost_usd=0.05),
        Attempt(task_id="t-a2", status="FAILED", check_passed=False, diff_lines=None,
                cost_usd=0.01)), winner="t-a1", branch="rclaude/t")
    shown = same_everywhere(best)
    assert "winner: t-a1; pushed rclaude/t" in shown and "$0.0500" in shown
    sweep = SweepReport(deployment="dev", region="us-east-1", dry_run=True, kept=3, swept=(
        SweptResource(resource=TaggedResource(arn="arn:aws:s3:::leaked", kind="s3:bucket",
                                              id="leaked"), outcome="would delete"),))
    shown = same_everywhere(sweep)
    assert "arn:aws:s3:::leaked" in shown and "1 leaked resources (would delete)" in shown


def test_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path))
    task = Deployment("dev", provider="local").run_task(TaskSpec(command="exit 2",
                                                                 task_id="t-html"))
    task.wait(timeout=60)
    assert "Task t-html: FAILED" in same_everywhere(task)
    assert "exit code 2" in shown_text(task._repr_html_())
