"""What a stack would be: every resource the program registers, as plain data.

A :class:`Plan` is produced offline by :func:`rclaude_infra.plan` (the program run
under the Pulumi runtime's mocks) and read by cost estimates and policy checks; it
never calls AWS. Inputs are JSON-able and keyed the way the engine receives them
(Pulumi's camelCase, as in stack state); secret values are replaced by
:data:`SECRET_MASK`, and values only known after deployment (ids, ARNs of other
resources) are placeholders shaped like the real thing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._render import Rendered, titled
from .config import DeploymentConfig

if TYPE_CHECKING:
    from rich.console import Group

    from .policy import PolicyReport

SECRET_MASK = "[secret]"


@attrs.frozen(kw_only=True)
class PlannedResource:
    """One resource the program would create.

    >>> from rclaude_infra import plan
    >>> cluster = plan().one("aws:ecs:Cluster")
    >>> cluster.name, cluster.type, cluster.parent
    ('rclaude-dev-cluster', 'aws:ecs/cluster:Cluster', 'dev')
    """

    #: Pulumi type token, e.g. ``aws:ec2/launchTemplate:LaunchTemplate``.
    type: str
    #: Logical name, unique within the plan.
    name: str
    #: Logical name of the parent resource (``None`` for the stack's own component).
    parent: str | None
    inputs: Mapping[str, Any] = attrs.field(eq=False, hash=False)
    #: ``False`` for component resources, which group others and create nothing in AWS.
    custom: bool = True
    #: What the resource would expose once created (``id``, ``arn``, ``name``...), as the
    #: offline placeholders other resources' inputs hold; links them in
    #: :meth:`Plan.to_terraform`.
    state: Mapping[str, Any] = attrs.field(factory=dict, eq=False, hash=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "custom": self.custom,
            "inputs": self.inputs,
        }


@attrs.frozen(kw_only=True)
class Plan(Rendered):
    """Every resource ``up`` would create for a deployment, in registration order.

    ``print(p)`` is a table of type, name and parent; ``p.to_json()`` is everything,
    secrets masked.

    >>> from rclaude_infra import DeploymentConfig, plan
    >>> p = plan(DeploymentConfig(), name="dev")
    >>> p.one("aws:ec2:LaunchTemplate").inputs["metadataOptions"]["httpTokens"]
    'required'
    >>> len(p.stack_resources)
    34
    """

    name: str
    config: DeploymentConfig
    resources: tuple[PlannedResource, ...]
    #: Stack outputs, with values known only after deployment as placeholders.
    outputs: Mapping[str, Any] = attrs.field(factory=dict, eq=False, hash=False)

    def __iter__(self) -> Iterator[PlannedResource]:
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)

    def __getitem__(self, name: str) -> PlannedResource:
        """The resource with this logical name."""
        for resource in self.resources:
            if resource.name == name:
                return resource
        raise KeyError(name)

    @property
    def stack_resources(self) -> tuple[PlannedResource, ...]:
        """What the stack creates in AWS: everything but its component and its provider."""
        return tuple(r for r in self.resources if r.parent is not None)

    def by_type(self, type_token: str) -> list[PlannedResource]:
        """Resources of one type, e.g. ``plan.by_type("aws:ec2/subnet:Subnet")``.

        A short form without the module part also matches:
        ``"aws:ec2:Subnet"`` finds ``aws:ec2/subnet:Subnet``.
        """
        return [r for r in self.resources if _type_matches(r.type, type_token)]

    def one(self, type_token: str) -> PlannedResource:
        """The single resource of a type; ``LookupError`` when there are none or several."""
        found = self.by_type(type_token)
        if len(found) != 1:
            raise LookupError(f"expected one {type_token}, the plan has {len(found)}")
        return found[0]

    def attached(self, resource: PlannedResource, type_token: str,
                 attribute: str = "bucket") -> list[PlannedResource]:
        """Resources of ``type_token`` whose ``attribute`` names ``resource`` by its id
        (the offline placeholder): a bucket's lifecycle, versioning or notification.

        >>> from rclaude_infra import plan
        >>> p = plan()
        >>> bucket = p["rclaude-dev-results"]
        >>> [r.name for r in p.attached(bucket, "aws:s3:BucketLifecycleConfiguration")]
        ['rclaude-dev-results-lifecycle']
        """
        ident = resource.state.get("id")
        return [r for r in self.by_type(type_token)
                if ident is not None and r.inputs.get(attribute) == ident]

    def types(self) -> dict[str, int]:
        """How many resources of each type, in order of first appearance."""
        counts: dict[str, int] = {}
        for resource in self.resources:
            counts[resource.type] = counts.get(resource.type, 0) + 1
        return counts

    def check_policies(self) -> PolicyReport:
        """Every security rule on this plan, offline (see :mod:`rclaude_infra.policy`)."""
        from .policy import check_policies

        return check_policies(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "config": self.config.to_dict(),
            "resources": [r.to_dict() for r in self.resources],
            "outputs": dict(self.outputs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any],
                  states: list[Mapping[str, Any]] | None = None) -> Plan:
        """The plan :meth:`to_dict` gave; ``states``, each resource's
        :attr:`~PlannedResource.state` in order, which ``to_dict`` leaves out.

        >>> from rclaude_infra import plan
        >>> p = plan()
        >>> Plan.from_dict(p.to_dict()) == p
        True
        """
        resources = data["resources"]
        if states is None:
            states = [{} for _ in resources]
        return cls(
            name=data["name"], config=DeploymentConfig.from_mapping(data["config"]),
            resources=tuple(
                PlannedResource(type=r["type"], name=r["name"], parent=r["parent"],
                                custom=r["custom"], inputs=r["inputs"], state=state)
                for r, state in zip(resources, states, strict=True)),
            outputs=data.get("outputs", {}),
        )

    def to_json(self, *, indent: int | None = 2) -> str:
        """The plan as JSON (stable key order, secrets masked)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    def to_terraform(self) -> dict[str, Any]:
        """The plan as Terraform plan JSON (``terraform show -json`` of a first apply), as
        a dict, for Checkov, Trivy, Infracost and other tools that read Terraform plans.

        pulumi-aws is bridged from the Terraform AWS provider, so types and properties
        map one to one (:mod:`rclaude_infra.terraform_plan` says how); references
        between resources are in ``configuration``.

        >>> from rclaude_infra import plan
        >>> tf = plan().to_terraform()
        >>> [r["values"]["metadata_options"] for r in tf["planned_values"]["root_module"]
        ...  ["resources"] if r["type"] == "aws_launch_template"][0][0]["http_tokens"]
        'required'
        """
        from .terraform_plan import to_terraform_plan

        return to_terraform_plan(self.stack_resources, region=self.config.region,
                                 secret_mask=SECRET_MASK)

    def to_terraform_json(self, *, indent: int | None = 2) -> str:
        """:meth:`to_terraform` as JSON text, ready for ``checkov -f plan.json``."""
        return json.dumps(self.to_terraform(), indent=indent)

    def __rich__(self) -> Group:
        """The plan as a rich table of resources, with a one-line summary: what
        ``rclaude-infra plan`` prints, ``str(plan)`` and a notebook show."""
        from rich.console import Group
        from rich.text import Text

        cfg = self.config
        table = titled(f"Plan for deployment {self.name!r} in {cfg.region}")
        table.add_column("#", justify="right", style="dim")
        table.add_column("type")
        # Names are what a user greps for: other columns wrap first.
        table.add_column("name", style="bold", no_wrap=True)
        table.add_column("parent", style="dim")
        for i, resource in enumerate(self.resources, 1):
            table.add_row(str(i), short_type(resource.type), resource.name,
                          resource.parent or "")
        capacity = "spot" if cfg.spot else "on-demand"
        summary = Text.assemble(
            (f"{len(self.stack_resources)} resources", "bold"),
            f" · {', '.join(cfg.instance_types)} ({capacity}, {cfg.min_instances}"
            f"-{cfg.max_instances} instances) · NAT: {cfg.nat} · offline plan, nothing deployed",
        )
        return Group(table, summary)


def short_type(token: str) -> str:
    """``aws:ec2/launchTemplate:LaunchTemplate`` -> ``aws:ec2:LaunchTemplate``."""
    package, _, rest = token.partition(":")
    module, _, kind = rest.partition(":")
    return f"{package}:{module.split('/', 1)[0]}:{kind}"


def _type_matches(token: str, query: str) -> bool:
    return token == query or short_type(token) == query
