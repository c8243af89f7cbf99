"""Terminal renderings (rich). Imported only by the faces, never by ``import rclaude_infra``."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ._plan import Plan


def _short_type(token: str) -> str:
    """``aws:ec2/launchTemplate:LaunchTemplate`` -> ``aws:ec2:LaunchTemplate``."""
    package, _, rest = token.partition(":")
    module, _, kind = rest.partition(":")
    return f"{package}:{module.split('/', 1)[0]}:{kind}"


def plan_renderable(plan: Plan) -> Group:
    """The plan as a rich table of resources, with a one-line summary."""
    cfg = plan.config
    table = Table(title=f"Plan for deployment {plan.name!r} in {cfg.region}", title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("type")
    table.add_column("name", style="bold")
    table.add_column("parent", style="dim")
    for i, resource in enumerate(plan.resources, 1):
        table.add_row(str(i), _short_type(resource.type), resource.name, resource.parent or "")
    capacity = "spot" if cfg.spot else "on-demand"
    summary = Text.assemble(
        (f"{len(plan.stack_resources)} resources", "bold"),
        f" · {', '.join(cfg.instance_types)} ({capacity}, {cfg.min_instances}"
        f"-{cfg.max_instances} instances) · NAT: {cfg.nat} · offline plan, nothing deployed",
    )
    return Group(table, summary)
