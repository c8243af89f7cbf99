"""Terminal renderings of what is not a report of its own: instance prices, the task list,
log lines. Each report (plan, cost, policy, checks, status, outputs, sweep, best-of)
renders itself through ``__rich__`` (see :mod:`rclaude_infra._render`), so the CLI prints
the report object. Imported only by the faces, never by ``import rclaude_infra``."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table
from rich.text import Text

from ._render import money, styled, titled
from .cost import InstancePrice, TaskCost
from .tasks.agent import AgentResult
from .tasks.model import LogLine, TaskState


def instance_prices_renderable(rows: list[InstancePrice], region: str) -> Table:
    """On-demand vs spot per instance type, per hour and for a month 24/7."""
    table = titled(f"Instance prices in {region}")
    for column in ("type", "vCPU", "GiB", "on-demand/h", "spot/h", "on-demand/mo",
                   "spot/mo"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for row in rows:
        mark = " *" if row.spot_assumed else ""
        table.add_row(
            row.instance_type, str(row.vcpu), f"{row.memory_mib / 1024:g}",
            f"${row.on_demand_hourly:.4f}", f"${row.spot_hourly:.4f}{mark}",
            money(row.on_demand_monthly), money(row.spot_monthly) + mark,
        )
    return table


def tasks_renderable(
        rows: list[tuple[str, TaskState, AgentResult | None, TaskCost | None]]) -> Table:
    """A row per task; turns from the agent's own result, when it left one, and both
    halves of its cost (``?`` where it could not be priced)."""
    table = titled(f"Tasks ({len(rows)}, newest first)")
    numbers = ("turns", "model $", "compute $", "total $")
    for column in ("task", "status", "exit", *numbers, "started", "stopped", "reason"):
        table.add_column(column, justify="right" if column in numbers else "left")
    for task_id, state, agent, cost in rows:
        turns = "" if agent is None or agent.turns is None else str(agent.turns)
        model = "" if cost is None or cost.model_usd is None else f"{cost.model_usd:.4f}"
        compute, total = (("?", "?") if cost is None
                          else (f"{cost.compute_usd:.4f}", f"{cost.total_usd:.4f}"))
        table.add_row(task_id, styled(state.status.value),
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
