"""Typed stack outputs: what a deployed stack tells the task runner and the user."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._render import Rendered, fields_table
from .errors import ConfigError

if TYPE_CHECKING:
    from rich.table import Table


@attrs.frozen(kw_only=True)
class StackOutputs(Rendered):
    """The outputs of a deployed stack (``pulumi stack output --json`` as an object).

    >>> StackOutputs.from_mapping({"cluster_name": "c", "bucket": "b"}).bucket
    'b'
    """

    deployment: str | None = None
    region: str | None = None
    cluster_name: str | None = None
    cluster_arn: str | None = None
    capacity_provider: str | None = None
    task_definition_family: str | None = None
    task_definition_arn: str | None = None
    #: With ``interactive_tasks``: the task definition interactive (ECS Exec) tasks run
    #: from; absent otherwise, and from stacks deployed before tasks chose.
    interactive_task_definition_arn: str | None = None
    container_name: str | None = None
    bucket: str | None = None
    log_group: str | None = None
    subnet_ids: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    security_group_id: str | None = None
    task_role_arn: str | None = None
    #: The task role's unique id (``AROA...``): with an ECS task's id, the ``aws:userid``
    #: whose run folder that task may use. Absent from stacks deployed before runs were
    #: scoped: their tasks share the ``tasks/`` prefix, as their task role allows.
    task_role_id: str | None = None
    execution_role_arn: str | None = None
    secret_arn: str | None = None
    image: str | None = None
    #: With ``build_image="remote"``: the CodeBuild project that builds ``image``, and
    #: the key of its sources in ``bucket``.
    image_build_project: str | None = None
    image_source_key: str | None = None
    #: With ``task_events``: the SQS queue of the cluster's task state changes, and its
    #: dead-letter queue.
    task_events_queue_url: str | None = None
    task_events_dead_letter_url: str | None = None
    #: With ``mode="service"``: where people reach the service, its image and its
    #: database's address.
    service_url: str | None = None
    service_image: str | None = None
    service_database: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | str) -> StackOutputs:
        """From the stack outputs as a mapping, or the JSON the CLI prints; unknown keys
        (outputs added by a newer program) are ignored, wrong types are errors."""
        if isinstance(data, str):
            text = data
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise ConfigError("outputs", text[:80], f"stack outputs as JSON ({exc})") from exc
        if not isinstance(data, Mapping):
            raise ConfigError("outputs", data, "a mapping of stack outputs")
        names = {a.name for a in attrs.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for key, value in values.items():
            if key == "subnet_ids":
                if not isinstance(value, list | tuple) or not all(
                        isinstance(s, str) for s in value):
                    raise ConfigError("outputs.subnet_ids", value, "a list of subnet ids")
            elif value is not None and not isinstance(value, str):
                raise ConfigError(f"outputs.{key}", value, "a string")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["subnet_ids"] = list(self.subnet_ids)
        return data

    def __rich__(self) -> Table:
        """Each output that has a value, by name."""
        return fields_table("Stack outputs", self.to_dict())
