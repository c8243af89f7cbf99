"""What a deployment has right now: its outputs, its instances and its unfinished tasks
(:meth:`rclaude_infra.Deployment.status`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._render import Rendered, styled, titled
from .outputs import StackOutputs

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table


@attrs.frozen(kw_only=True)
class InstanceInfo:
    """One EC2 instance registered in the cluster.

    >>> InstanceInfo(instance_id="i-0abc", instance_type="t3.medium", lifecycle="spot",
    ...              status="ACTIVE", running_tasks=2, pending_tasks=0,
    ...              agent_connected=True).lifecycle
    'spot'
    """

    instance_id: str
    instance_type: str | None
    lifecycle: str  # "spot" or "on-demand"
    status: str  # the container instance's: ACTIVE, DRAINING, ...
    running_tasks: int
    pending_tasks: int
    agent_connected: bool


@attrs.frozen(kw_only=True)
class DeploymentStatus(Rendered):
    """A deployment now: outputs (``None`` for the local provider), instances, and the
    tasks not yet ended by id with their status.

    >>> DeploymentStatus(name="dev", provider="local", tasks={"t-1": "RUNNING"}).to_dict()["tasks"]
    {'t-1': 'RUNNING'}
    """

    name: str
    provider: str
    outputs: StackOutputs | None = None
    instances: tuple[InstanceInfo, ...] = ()
    tasks: Mapping[str, str] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "provider": self.provider,
            "outputs": None if self.outputs is None else self.outputs.to_dict(),
            "instances": [attrs.asdict(i) for i in self.instances],
            "tasks": dict(self.tasks),
        }

    def __rich__(self) -> Group:
        """The outputs, the instances with their tasks and agents, and the tasks not ended."""
        from rich.console import Group
        from rich.text import Text

        parts: list[Table | Text] = []
        if self.outputs is not None:
            parts.append(self.outputs.__rich__())
            instances = titled(f"Instances ({len(self.instances)})")
            for column in ("instance", "type", "lifecycle", "status", "running", "pending",
                           "agent"):
                instances.add_column(column)
            for i in self.instances:
                instances.add_row(i.instance_id, i.instance_type or "?", i.lifecycle, i.status,
                                  str(i.running_tasks), str(i.pending_tasks),
                                  "connected" if i.agent_connected else "disconnected")
            parts.append(instances)
        if self.tasks:
            tasks = titled(f"Tasks not ended ({len(self.tasks)})")
            tasks.add_column("task")
            tasks.add_column("status")
            for task_id, state in self.tasks.items():
                tasks.add_row(task_id, styled(state))
            parts.append(tasks)
        else:
            parts.append(Text(f"No tasks running in {self.name!r} ({self.provider}).",
                              style="dim"))
        return Group(*parts)
