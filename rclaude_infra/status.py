"""What a deployment has right now: its outputs, its instances and its unfinished tasks
(:meth:`rclaude_infra.Deployment.status`)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import attrs

from .outputs import StackOutputs


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
class DeploymentStatus:
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

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(i.instance_id)}</td><td>{html.escape(i.instance_type or '')}"
            f"</td><td>{i.lifecycle}</td><td>{html.escape(i.status)}</td>"
            f"<td>{i.running_tasks}</td></tr>" for i in self.instances)
        tasks = "".join(f"<li>{html.escape(t)}: {html.escape(s)}</li>"
                        for t, s in self.tasks.items())
        return (f"<div><strong>{html.escape(self.name)}</strong> ({html.escape(self.provider)}): "
                f"{len(self.instances)} instances, {len(self.tasks)} tasks not ended</div>"
                + (("<table><thead><tr><th>instance</th><th>type</th><th>lifecycle</th>"
                    f"<th>status</th><th>tasks</th></tr></thead><tbody>{rows}</tbody></table>")
                   if self.instances else "")
                + (f"<ul>{tasks}</ul>" if tasks else ""))
