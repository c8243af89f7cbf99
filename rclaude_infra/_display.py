"""Terminal renderings (rich). Imported only by the faces, never by ``import rclaude_infra``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ._plan import Plan, short_type
from .checks import CheckReport
from .cost import CostEstimate, InstancePrice, TaskCost
from .outputs import StackOutputs
from .policy import PolicyReport
from .status import DeploymentStatus
from .tasks.agent import AgentResult
from .tasks.model import LogLine, TaskState


def plan_renderable(plan: Plan) -> Group:
    """The plan as a rich table of resources, with a one-line summary."""
    cfg = plan.config
    table = Table(title=f"Plan for deployment {plan.name!r} in {cfg.region}", title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("type")
    table.add_column("name", style="bold")
    table.add_column("parent", style="dim")
    for i, resource in enumerate(plan.resources, 1):
        table.add_row(str(i), short_type(resource.type), resource.name, resource.parent or "")
    capacity = "spot" if cfg.spot else "on-demand"
    summary = Text.assemble(
        (f"{len(plan.stack_resources)} resources", "bold"),
        f" · {', '.join(cfg.instance_types)} ({capacity}, {cfg.min_instances}"
        f"-{cfg.max_instances} instances) · NAT: {cfg.nat} · offline plan, nothing deployed",
    )
    return Group(table, summary)


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def _price(value: float) -> str:
    return "$" + (f"{value:.7f}".rstrip("0").rstrip(".") if value else "0")


def cost_renderable(estimate: CostEstimate) -> Group:
    """The estimate as an Infracost-style rich table with totals and assumptions."""
    table = Table(
        title=f"Cost of deployment {estimate.name!r} in {estimate.region}", title_justify="left"
    )
    table.add_column("resource / component")
    table.add_column("qty/month", justify="right")
    table.add_column("unit")
    table.add_column("price", justify="right")
    table.add_column("monthly", justify="right", style="bold")
    table.add_column("kind")
    current = None
    for line in estimate.lines:
        if line.resource != current:
            current = line.resource
            table.add_row(Text(f"{line.resource} ({line.resource_type})", style="bold"))
        table.add_row(
            f"  {line.component}", f"{line.quantity:,.2f}", line.unit.split(" (", 1)[0],
            _price(line.unit_price), _money(line.monthly_cost),
            ("idle" if line.baseline else "usage") + (" *" if line.assumed else ""),
        )
    usage = estimate.usage
    per_task = "n/a (no tasks)" if estimate.per_task is None else f"${estimate.per_task:.4f}"
    summary = Text.assemble(
        ("Idle: ", "bold"), f"{_money(estimate.idle_monthly)}/month   ",
        ("Per task: ", "bold"), f"{per_task}   ",
        ("Monthly: ", "bold"),
        f"{_money(estimate.monthly)} for {usage.tasks_per_day:g} tasks/day x "
        f"{usage.task_minutes:g} min (concurrency {usage.concurrency})",
    )
    parts: list[Table | Text] = [table, summary]
    for assumption in estimate.assumptions:
        parts.append(Text(f"* {assumption}", style="dim"))
    return Group(*parts)


def instance_prices_renderable(rows: list[InstancePrice], region: str) -> Table:
    """On-demand vs spot per instance type, per hour and for a month 24/7."""
    table = Table(title=f"Instance prices in {region}", title_justify="left")
    for column in ("type", "vCPU", "GiB", "on-demand/h", "spot/h", "on-demand/mo",
                   "spot/mo"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for row in rows:
        mark = " *" if row.spot_assumed else ""
        table.add_row(
            row.instance_type, str(row.vcpu), f"{row.memory_mib / 1024:g}",
            f"${row.on_demand_hourly:.4f}", f"${row.spot_hourly:.4f}{mark}",
            _money(row.on_demand_monthly), _money(row.spot_monthly) + mark,
        )
    return table


def policy_renderable(report: PolicyReport) -> Group:
    """Findings of the security rules: violations first, then waivers with their reasons."""
    table = Table(title="Security rules", title_justify="left")
    for column in ("status", "rule", "severity", "resource", "finding", "references"):
        table.add_column(column)
    ordered = sorted(report.findings, key=lambda f: (f.waived, not f.mandatory, f.rule_id))
    for f in ordered:
        if f.waived:
            status = Text("waived", style="yellow")
        elif f.mandatory:
            status = Text("MANDATORY", style="bold red")
        else:
            status = Text("advisory", style="magenta")
        message = f.message + (f"\nwaived: {f.waiver}" if f.waiver else "")
        table.add_row(status, f.rule_id, f.severity, f.resource, message,
                      ", ".join(f.references))
    summary = Text(
        f"{report.rules_checked} rules checked: {len(report.violations)} violations "
        f"({len(report.mandatory_violations)} mandatory), {len(report.waived)} waived",
        style="bold green" if report.ok else "bold red",
    )
    return Group(table, summary) if report.findings else Group(summary)


_STATUS_STYLE = {"ok": "green", "warning": "yellow", "problem": "bold red",
                 "SUCCEEDED": "green", "RUNNING": "cyan", "PENDING": "blue",
                 "FAILED": "bold red", "STOPPED": "yellow", "PREEMPTED": "magenta",
                 "QUEUED": "cyan"}


def _styled(value: str) -> Text:
    return Text(value, style=_STATUS_STYLE.get(value, ""))


def check_renderable(report: CheckReport) -> Group:
    """Prerequisites: one row per check, with the fix for each problem."""
    table = Table(title="Prerequisites for up", title_justify="left")
    for column in ("status", "check", "found", "fix"):
        table.add_column(column)
    for item in report.items:
        table.add_row(_styled(item.status), item.name, item.detail, item.fix)
    summary = Text("ready to deploy" if report.ok else
                   f"{len(report.problems)} problem(s) to fix before up",
                   style="bold green" if report.ok else "bold red")
    return Group(table, summary)


def fields_renderable(title: str, fields: Mapping[str, Any]) -> Table:
    """Name and value per row (empty values left out; lists joined)."""
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in fields.items():
        if value is not None and value != "" and value != []:
            table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list)
                          else str(value))
    return table


def outputs_renderable(outputs: StackOutputs) -> Table:
    return fields_renderable("Stack outputs", outputs.to_dict())


def status_renderable(status: DeploymentStatus) -> Group:
    parts: list[Table | Text] = []
    if status.outputs is not None:
        parts.append(outputs_renderable(status.outputs))
        instances = Table(title=f"Instances ({len(status.instances)})", title_justify="left")
        for column in ("instance", "type", "lifecycle", "status", "running", "pending",
                       "agent"):
            instances.add_column(column)
        for i in status.instances:
            instances.add_row(i.instance_id, i.instance_type or "?", i.lifecycle, i.status,
                              str(i.running_tasks), str(i.pending_tasks),
                              "connected" if i.agent_connected else "disconnected")
        parts.append(instances)
    if status.tasks:
        tasks = Table(title=f"Tasks not ended ({len(status.tasks)})", title_justify="left")
        tasks.add_column("task")
        tasks.add_column("status")
        for task_id, state in status.tasks.items():
            tasks.add_row(task_id, _styled(state))
        parts.append(tasks)
    else:
        parts.append(Text(f"No tasks running in {status.name!r} ({status.provider}).",
                          style="dim"))
    return Group(*parts)


def tasks_renderable(
        rows: list[tuple[str, TaskState, AgentResult | None, TaskCost | None]]) -> Table:
    """A row per task; turns from the agent's own result, when it left one, and both
    halves of its cost (``?`` where it could not be priced)."""
    table = Table(title=f"Tasks ({len(rows)}, newest first)", title_justify="left")
    numbers = ("turns", "model $", "compute $", "total $")
    for column in ("task", "status", "exit", *numbers, "started", "stopped", "reason"):
        table.add_column(column, justify="right" if column in numbers else "left")
    for task_id, state, agent, cost in rows:
        turns = "" if agent is None or agent.turns is None else str(agent.turns)
        model = "" if cost is None or cost.model_usd is None else f"{cost.model_usd:.4f}"
        compute, total = (("?", "?") if cost is None
                          else (f"{cost.compute_usd:.4f}", f"{cost.total_usd:.4f}"))
        table.add_row(task_id, _styled(state.status.value),
                      "" if state.exit_code is None else str(state.exit_code), turns, model,
                      compute, total, _when(state.started_at), _when(state.stopped_at),
                      state.reason or "")
    return table


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def log_line(line: LogLine, *, timestamps: bool) -> Text:
    """A log line for a terminal: the runner's own lines dimmed, times when asked."""
    text = Text(line.text, style="cyan" if line.text.startswith("[runner]") else "")
    if timestamps:
        return Text.assemble((line.time.astimezone().strftime("%H:%M:%S "), "dim"), text)
    return text
