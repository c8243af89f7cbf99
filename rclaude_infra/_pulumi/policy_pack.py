"""The security rules as CrossGuard policies, for the pack in ``crossguard/`` (a real PolicyPack).

Each rule of :mod:`rclaude_infra.policy` becomes a policy running the very same check
function on the engine's properties; a rule with declared waivers also gets an advisory
``<id>-waived`` policy, so waived findings still show, with their reason, in
``pulumi preview``. The deployment config (for precise waivers) comes from the
``RCLAUDE_DEPLOYMENT_CONFIG`` environment variable (JSON of ``DeploymentConfig.to_dict()``),
which ``Deployment`` sets for the engine; without it a declared waiver applies whenever
its rule is violated, since the program only violates those rules for the configs the
waivers name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from ..config import DeploymentConfig
from ..policy import RULES, WAIVERS, Rule, rule_hits, waiver_for

CONFIG_ENV = "RCLAUDE_DEPLOYMENT_CONFIG"
PACK_NAME = "rclaude-infra"

Policy = ResourceValidationPolicy | StackValidationPolicy


def deployment_config_from_env() -> DeploymentConfig | None:
    raw = os.environ.get(CONFIG_ENV)
    return DeploymentConfig.from_mapping(json.loads(raw)) if raw else None


def _validator(
    rule: Rule, config: DeploymentConfig | None, *, waived: bool, stack: bool
) -> Callable[[Any, ReportViolation], None]:
    """Report the rule's findings that are (``waived=True``) or are not waived."""

    def report(hits: Iterator[tuple[str, str]], report_violation: ReportViolation) -> None:
        waiver = waiver_for(rule.id, config)
        for name, message in hits:
            if waived and waiver is not None:
                report_violation(f"{name}: {message} (waived: {waiver.reason})", None)
            elif not waived and waiver is None:
                report_violation(f"{name}: {message}", None)

    if stack:
        def validate_stack(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            resources = [(r.resource_type, r.name, r.props) for r in args.resources]
            report(rule_hits(rule, resources), report_violation)

        return validate_stack

    def validate_resource(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        report(rule_hits(rule, [(args.resource_type, args.name, args.props)]), report_violation)

    return validate_resource


def build_policies(config: DeploymentConfig | None = None) -> list[Policy]:
    """One CrossGuard policy per rule, plus an advisory one per waived rule."""
    config = config if config is not None else deployment_config_from_env()
    waived_rules = {w.rule_id for w in WAIVERS}
    policies: list[Policy] = []
    for rule in RULES:
        stack = rule.stack_check is not None
        kind: type[Policy] = StackValidationPolicy if stack else ResourceValidationPolicy
        references = ", ".join(rule.references) or "rclaude-infra"
        policies.append(kind(
            name=rule.id,
            description=f"{rule.description} ({references})",
            validate=_validator(rule, config, waived=False, stack=stack),
            enforcement_level=(
                EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY
            ),
            severity=Severity(rule.severity),
        ))
        if rule.id in waived_rules:
            policies.append(kind(
                name=f"{rule.id}-waived",
                description=f"{rule.description}: findings waived on purpose, with the reason",
                validate=_validator(rule, config, waived=True, stack=stack),
                enforcement_level=EnforcementLevel.ADVISORY,
                severity=Severity.LOW,
            ))
    return policies
