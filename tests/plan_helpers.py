"""Helpers for tests that read plans (the ``plan_for`` fixture is in conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rclaude_infra import Plan, PlannedResource

#: The type of the ``plan_for`` fixture: ``plan_for(**config_fields) -> Plan``.
PlanFor = Callable[..., Plan]


def policy_document(resource: PlannedResource, key: str = "policy") -> dict[str, Any]:
    """A JSON policy input of a planned resource, parsed."""
    return json.loads(resource.inputs[key])


def container(plan: Plan, *, interactive: bool = False) -> dict[str, Any]:
    """The runner's container definition in the plan's task definition (``interactive``:
    in the one interactive tasks run from)."""
    [definition] = [d for d in plan.by_type("aws:ecs:TaskDefinition")
                    if d.name.endswith("-interactive") == interactive]
    definitions = json.loads(definition.inputs["containerDefinitions"])
    assert len(definitions) == 1
    return definitions[0]
