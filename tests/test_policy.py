"""Security rules: each rule passes a good resource and fails a bad one; the stack's plans
break no rule beyond the declared waivers; the CrossGuard pack runs the same rules."""

from __future__ import annotations

import base64
import copy
import json
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from plan_helpers import PlanFor

from rclaude_infra import Deployment, DeploymentConfig, Plan, PolicyViolationError
from rclaude_infra.policy import (
    RULES,
    WAIVERS,
    Rule,
    check_policies,
    evaluate,
    rules_by_id,
    waiver_for,
)

ROOT = Path(__file__).resolve().parent.parent
# The runner image built in the account: its repository and build project are in the plan.
STRICT = {"nat": "single", "log_retention_days": 365, "build_image": "remote",
          "security_profile": "strict"}


def props_of(p: Plan, token: str) -> dict[str, Any]:
    return copy.deepcopy(dict(p.by_type(token)[0].inputs))


def with_containers(props: dict[str, Any], **changes: Any) -> dict[str, Any]:
    containers = json.loads(props["containerDefinitions"])
    containers[0].update(changes)
    props["containerDefinitions"] = json.dumps(containers)
    return props


def with_policy(props: dict[str, Any], key: str, statements: list[dict[str, Any]]) -> dict:
    props[key] = json.dumps({"Version": "2012-10-17", "Statement": statements})
    return props


def set_in(props: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target = props
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return props


Mutation = Callable[[dict[str, Any]], dict[str, Any]]
LT, SG = "aws:ec2:LaunchTemplate", "aws:ec2:SecurityGroup"
TD, ASG = "aws:ecs:TaskDefinition", "aws:autoscaling:Group"
ALLOW = {"Effect": "Allow", "Sid": "Bad"}

# rule id -> (type token, mutation that makes the strict plan's resource fail it)
BREAKERS: dict[str, tuple[str, Mutation]] = {
    "lt-imdsv2": (LT, lambda p: set_in(p, "metadataOptions.httpTokens", "optional")),
    "lt-metadata-hop-limit": (LT, lambda p: set_in(p, "metadataOptions.httpPutResponseHopLimit",
                                                   2)),
    "lt-ebs-encrypted": (LT, lambda p: set_in(p, "blockDeviceMappings.0.ebs.encrypted", "false")),
    "lt-no-public-ip": (LT, lambda p: {**p, "networkInterfaces": [
        {"associatePublicIpAddress": "true"}]}),
    "lt-no-secrets-in-user-data": (LT, lambda p: {**p, "userData": base64.b64encode(
        b"#!/bin/bash\nexport ANTHROPIC_API_KEY=sk-ant-api03-abcdefgh\n").decode()}),
    "subnet-no-auto-public-ip": ("aws:ec2:Subnet", lambda p: {**p, "mapPublicIpOnLaunch": True}),
    "sg-no-ingress-from-anywhere": (SG, lambda p: {**p, "ingress": [
        {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"],
         "description": "ssh"}]}),
    "sg-no-inbound-rules": (SG, lambda p: {**p, "ingress": [
        {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["10.0.0.0/8"],
         "description": "ssh from the VPN"}]}),
    "sg-descriptions": (SG, lambda p: set_in(p, "egress.0.description", "")),
    "sg-narrow-egress": (SG, lambda p: {**p, "egress": [
        {"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"],
         "description": "all"}]}),
    "s3-public-access-block": ("aws:s3:BucketPublicAccessBlock",
                               lambda p: {**p, "restrictPublicBuckets": False}),
    "s3-default-encryption": ("aws:s3:BucketServerSideEncryptionConfiguration",
                              lambda p: {**p, "rules": []}),
    "s3-tls-only": ("aws:s3:BucketPolicy", lambda p: with_policy(p, "policy", [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
         "Action": "s3:GetObject", "Resource": "*"}])),
    "s3-lifecycle": ("aws:s3:BucketLifecycleConfiguration",
                     lambda p: {**p, "rules": [p["rules"][0]]}),
    "s3-acls-disabled": ("aws:s3:BucketOwnershipControls",
                         lambda p: {**p, "rule": {"objectOwnership": "ObjectWriter"}}),
    "ecs-not-privileged": (TD, lambda p: with_containers(p, privileged=True)),
    "ecs-no-host-pid": (TD, lambda p: {**p, "pidMode": "host"}),
    "ecs-no-host-network": (TD, lambda p: {**p, "networkMode": "host"}),
    "ecs-non-root": (TD, lambda p: with_containers(p, user="0:0")),
    "ecs-read-only-root": (TD, lambda p: with_containers(p, readonlyRootFilesystem=False)),
    "ecs-no-secrets-in-environment": (TD, lambda p: with_containers(p, environment=[
        {"name": "GITHUB_TOKEN", "value": "x"}])),
    "ecs-logging": (TD, lambda p: with_containers(p, logConfiguration=None)),
    "ecs-separate-roles": (TD, lambda p: {**p, "taskRoleArn": p["executionRoleArn"]}),
    "ecs-termination-protection": ("aws:ecs:CapacityProvider", lambda p: set_in(
        p, "autoScalingGroupProvider.managedTerminationProtection", "DISABLED")),
    "asg-launch-template": (ASG, lambda p: {
        **{k: v for k, v in p.items() if k != "mixedInstancesPolicy"},
        "launchConfiguration": "old-style"}),
    "asg-propagate-tags": (ASG, lambda p: set_in(p, "tags.0.propagateAtLaunch", False)),
    "asg-multi-az": (ASG, lambda p: {**p, "vpcZoneIdentifiers": p["vpcZoneIdentifiers"][:1]}),
    "asg-multi-type-spot": (ASG, lambda p: set_in(
        p, "mixedInstancesPolicy.launchTemplate.overrides", [{"instanceType": "t3.medium"}])),
    "iam-no-wildcard-action": ("aws:iam:RolePolicy", lambda p: with_policy(p, "policy", [
        {**ALLOW, "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}])),
    "iam-scoped-resources": ("aws:iam:RolePolicy", lambda p: with_policy(p, "policy", [
        {**ALLOW, "Action": ["s3:GetObject"], "Resource": "*"}])),
    "iam-passrole-scoped": ("aws:iam:RolePolicy", lambda p: with_policy(p, "policy", [
        {**ALLOW, "Action": "iam:PassRole", "Resource": "*"}])),
    "iam-trust-services-only": ("aws:iam:Role", lambda p: with_policy(p, "assumeRolePolicy", [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}])),
    "iam-no-admin-policy": ("aws:iam:RolePolicyAttachment", lambda p: {
        **p, "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
    "logs-retention-set": ("aws:cloudwatch:LogGroup", lambda p: {**p, "retentionInDays": 0}),
    "logs-retention-one-year": ("aws:cloudwatch:LogGroup",
                                lambda p: {**p, "retentionInDays": 30}),
    "tagged-for-sweep": ("aws:ecs:Cluster", lambda p: {**p, "tags": {"team": "ml"}}),
    "ecs-container-insights": ("aws:ecs:Cluster", lambda p: {**p, "settings": [
        {"name": "containerInsights", "value": "disabled"}]}),
    "logs-customer-key": ("aws:cloudwatch:LogGroup", lambda p: {**p, "kmsKeyId": None}),
    "secret-customer-key": ("aws:secretsmanager:Secret", lambda p: {**p, "kmsKeyId": None}),
    "kms-key-rotation": ("aws:kms:Key", lambda p: {**p, "enableKeyRotation": False}),
    "ecr-scan-on-push": ("aws:ecr:Repository", lambda p: set_in(
        p, "imageScanningConfiguration.scanOnPush", False)),
    "ecr-immutable-tags": ("aws:ecr:Repository", lambda p: {**p, "imageTagMutability": "MUTABLE"}),
    # A project that runs something else (tests, a deploy script) with Docker's privileges.
    "codebuild-privileged-image-builds-only": ("aws:codebuild:Project", lambda p: set_in(
        p, "source.buildspec", "ci/buildspec.yml")),
    "ecr-customer-key": ("aws:ecr:Repository", lambda p: {
        **p, "encryptionConfigurations": [{"encryptionType": "AES256"}]}),
}

#: Resource rules the strict stack fails by necessity (waived whatever the config), each
#: with a resource that passes and one that fails: (type, passing name, failing name).
NECESSARY_FINDINGS = {
    "s3-log-target-customer-key": ("aws:s3:Bucket", "rclaude-dev-results",
                                   "rclaude-dev-access-logs"),
    "codebuild-not-privileged": ("aws:codebuild:Project", None, "rclaude-dev-image-build"),
}


#: The strict stack in service mode (its database with a standby).
STRICT_SERVICE = {**STRICT, "mode": "service", "service": {
    "domain": "agents.example.com", "zone_id": "Z0123456789ABC", "db_multi_az": True}}
LB, DB = "aws:lb:LoadBalancer", "aws:rds:Instance"
# The service's rules: rule id -> (type, resource name suffix, breaking mutation).
SERVICE_BREAKERS: dict[str, tuple[str, str, Mutation]] = {
    "sg-service-ingress-from-groups": (SG, "-service-db", lambda p: set_in(
        p, "ingress.0.cidrBlocks", ["10.0.0.0/16"])),
    "lb-listener-https": ("aws:lb:Listener", "-https", lambda p: {
        **p, "sslPolicy": "ELBSecurityPolicy-2016-08"}),
    "lb-hardened": (LB, "", lambda p: {**p, "dropInvalidHeaderFields": False}),
    "rds-encrypted-private": (DB, "", lambda p: {**p, "publiclyAccessible": True}),
    "rds-multi-az": (DB, "", lambda p: {**p, "multiAz": False}),
    "rds-enhanced-monitoring": (DB, "", lambda p: {**p, "monitoringInterval": 0}),
    "rds-customer-key": (DB, "", lambda p: {**p, "performanceInsightsKmsKeyId": None}),
    "ecs-service-no-public-ip": ("aws:ecs:Service", "-api", lambda p: set_in(
        p, "networkConfiguration.assignPublicIp", True)),
}
#: What the strict service stack fails by necessity: (type, resource name suffix).
SERVICE_NECESSARY = {
    "lb-http-open-for-redirect": (SG, "-service-lb"),
    "lb-deletion-protection": (LB, ""),
    "rds-deletion-protection": (DB, ""),
    "lb-access-logs": (LB, ""),
}


def _named(plan: Plan, token: str, suffix: str) -> dict[str, Any]:
    [found] = [r for r in plan.by_type(token) if r.name.endswith(suffix)]
    return copy.deepcopy(dict(found.inputs))


@pytest.mark.parametrize("rule_id", sorted(SERVICE_BREAKERS))
def test_a_service_rule_passes_the_service_stack_and_fails_the_broken_resource(
        plan_for: PlanFor, rule_id: str) -> None:
    rule = rules_by_id()[rule_id]
    token, suffix, breaker = SERVICE_BREAKERS[rule_id]
    good = _named(plan_for(**STRICT_SERVICE), token, suffix)
    assert rule.check is not None
    assert list(rule.check(good)) == []
    assert list(rule.check(breaker(good)))


@pytest.mark.parametrize("rule_id", sorted(SERVICE_NECESSARY))
def test_rules_the_strict_service_stack_fails_by_necessity(plan_for: PlanFor,
                                                            rule_id: str) -> None:
    rule = rules_by_id()[rule_id]
    token, suffix = SERVICE_NECESSARY[rule_id]
    strict = plan_for(**STRICT_SERVICE)
    assert rule.check is not None
    assert list(rule.check(_named(strict, token, suffix)))
    assert waiver_for(rule_id, strict.config) is not None


def test_every_rule_has_a_breaker_and_references() -> None:
    resource_rules = {r.id for r in RULES if r.check is not None}
    assert set(BREAKERS) | set(NECESSARY_FINDINGS) | set(SERVICE_BREAKERS) | set(
        SERVICE_NECESSARY) == resource_rules
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for rule in RULES:
        assert rule.description
        # Ours alone: the sweep's tag, and privileged builds narrowed to the image build
        # (CKV_AWS_316 refuses them all: codebuild-not-privileged).
        if rule.id not in ("tagged-for-sweep", "codebuild-privileged-image-builds-only"):
            assert rule.references, rule.id


@pytest.mark.parametrize("rule_id", sorted(BREAKERS))
def test_rule_passes_the_stack_and_fails_the_broken_resource(
    plan_for: PlanFor, rule_id: str
) -> None:
    rule = rules_by_id()[rule_id]
    token, breaker = BREAKERS[rule_id]
    strict = plan_for(**STRICT)
    good = strict.by_type(token)[0]
    assert good.type in rule.resource_types
    assert rule.check is not None
    assert list(rule.check(good.inputs)) == []
    bad = breaker(props_of(strict, token))
    messages = list(rule.check(bad))
    assert messages and all(isinstance(m, str) and m for m in messages)


@pytest.mark.parametrize("rule_id", sorted(NECESSARY_FINDINGS))
def test_rules_the_strict_stack_fails_by_necessity(plan_for: PlanFor, rule_id: str) -> None:
    rule = rules_by_id()[rule_id]
    token, passing, failing = NECESSARY_FINDINGS[rule_id]
    assert rule.check is not None
    strict = plan_for(**STRICT)
    resources = {r.name: r for r in strict.by_type(token)}
    assert list(rule.check(resources[failing].inputs))
    if passing is not None:
        assert list(rule.check(resources[passing].inputs)) == []
    else:  # the only one of its type: unprivileged, it passes
        assert list(rule.check(set_in(props_of(strict, token),
                                      "environment.privilegedMode", False))) == []
    assert waiver_for(rule_id, strict.config) is not None


def test_bucket_hardening_is_checked_across_resources(plan_for: PlanFor) -> None:
    rule = rules_by_id()["s3-bucket-hardened"]
    p = plan_for(**STRICT)
    resources = [(r.type, r.name, r.inputs) for r in p]
    assert rule.stack_check is not None
    assert list(rule.stack_check(resources)) == []
    without_block = [r for r in resources if not r[0].endswith("BucketPublicAccessBlock")]
    hits = list(rule.stack_check(without_block))
    assert hits == [(name, "2 buckets but 0 with public access block")
                    for name in ("rclaude-dev-access-logs", "rclaude-dev-results")]


def test_image_build_rules_are_checked_across_resources(plan_for: PlanFor) -> None:
    p = plan_for(**STRICT)
    resources = [(r.type, r.name, r.inputs) for r in p]
    lifecycle, logs = (rules_by_id()[i].stack_check
                       for i in ("ecr-lifecycle-policy", "codebuild-logs-retained"))
    assert lifecycle is not None and logs is not None
    assert list(lifecycle(resources)) == [] and list(logs(resources)) == []
    without_lifecycle = [r for r in resources if not r[0].endswith("LifecyclePolicy")
                         or "ecr" not in r[0]]
    assert list(lifecycle(without_lifecycle)) == [
        ("rclaude-dev-runner", "1 repositories but 0 with a lifecycle policy")]
    # Builds logging to a group kept forever, or to no group of the stack.
    forever = [(t, n, {**i, "retentionInDays": None} if n == "rclaude-dev-image-build"
                and t.endswith("LogGroup") else i) for t, n, i in resources]
    assert [n for n, _ in logs(forever)] == ["rclaude-dev-image-build"]
    elsewhere = [(t, n, set_in(copy.deepcopy(dict(i)), "logsConfig.cloudwatchLogs.groupName",
                               "/aws/codebuild/other") if t.endswith("Project") else i)
                 for t, n, i in resources]
    assert [n for n, _ in logs(elsewhere)] == ["rclaude-dev-image-build"]


def test_the_default_security_group_is_held_closed(plan_for: PlanFor) -> None:
    check = rules_by_id()["vpc-default-sg-closed"].stack_check
    assert check is not None
    resources = [(r.type, r.name, r.inputs) for r in plan_for(**STRICT)]
    assert list(check(resources)) == []
    unmanaged = [r for r in resources if not r[0].endswith("DefaultSecurityGroup")]
    assert [name for name, _ in check(unmanaged)] == ["rclaude-dev-vpc"]
    opened = [(t, n, {**i, "ingress": [{"protocol": "-1", "self": True}]})
              if t.endswith("DefaultSecurityGroup") else (t, n, i) for t, n, i in resources]
    assert [m for _, m in check(opened)] == ["the VPC's default security group has rules"]
    # An existing VPC is the user's: its default group is not the stack's to manage.
    existing = plan_for(vpc_id="vpc-0123abcd", subnet_ids=("subnet-0a1b2c3d", "subnet-4e5f6a7b"))
    assert not existing.by_type("aws:ec2:DefaultSecurityGroup")


def test_strict_profile_rules_are_checked_across_resources(plan_for: PlanFor) -> None:
    resources = [(r.type, r.name, r.inputs) for r in plan_for(**STRICT)]
    checks = {i: rules_by_id()[i].stack_check for i in ("s3-versioning", "s3-access-logging",
                                                       "vpc-flow-logs", "s3-customer-key")}
    for rule_id, check in checks.items():
        assert check is not None and list(check(resources)) == [], rule_id
    without = {
        "s3-versioning": "BucketVersioning", "s3-access-logging": "BucketLogging",
        "vpc-flow-logs": "FlowLog", "s3-customer-key": "BucketServerSideEncryptionConfiguration"}
    for rule_id, kind in without.items():
        check = checks[rule_id]
        assert check is not None
        hits = list(check([r for r in resources if not r[0].endswith(kind)]))
        assert hits, rule_id
    suspended = [(t, n, {**i, "versioningConfiguration": {"status": "Suspended"}})
                 if t.endswith("BucketVersioning") else (t, n, i) for t, n, i in resources]
    assert list(checks["s3-versioning"](suspended))  # type: ignore[misc]


def test_a_widened_image_build_role_is_refused(plan_for: PlanFor) -> None:
    """The build's role is held to the IAM rules like every role: pushing to any
    repository is a mandatory violation."""
    p = plan_for(**STRICT)
    broken = []
    for r in p:
        inputs = dict(r.inputs)
        if r.type.endswith("RolePolicy") and r.name == "rclaude-dev-image-build":
            document = json.loads(inputs["policy"])
            for statement in document["Statement"]:
                if statement["Sid"] == "PushRunnerImage":
                    statement["Resource"] = "*"
            inputs["policy"] = json.dumps(document)
        broken.append(type(r)(type=r.type, name=r.name, parent=r.parent, custom=r.custom,
                              inputs=inputs))
    report = check_policies(type(p)(name=p.name, config=p.config, resources=tuple(broken)))
    assert [(f.rule_id, f.resource) for f in report.mandatory_violations] == [
        ("iam-scoped-resources", "rclaude-dev-image-build")]


VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "nat-single": {"nat": "single"},
    "existing-vpc": {"vpc_id": "vpc-0123abcd",
                     "subnet_ids": ("subnet-0a1b2c3d", "subnet-4e5f6a7b")},
    "on-demand": {"spot": False, "instance_types": ("m5.large",)},
    "arm64": {"instance_types": ("t4g.medium", "m7g.large")},
    "remote-image-build": {"build_image": "remote"},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_stack_plans_have_no_violation_beyond_declared_waivers(
    plan_for: PlanFor, variant: str
) -> None:
    report = plan_for(**VARIANTS[variant]).check_policies()
    assert report.ok, str(report)
    assert report.rules_checked == len(RULES)
    declared = {w.rule_id for w in WAIVERS}
    assert {f.rule_id for f in report.waived} <= declared
    reasons = {w.reason for w in WAIVERS}
    assert all(finding.waiver in reasons for finding in report.waived)


BASELINE_WAIVED = {"s3-versioning", "s3-access-logging", "vpc-flow-logs",
                   "ecs-container-insights", "logs-customer-key", "secret-customer-key",
                   "s3-customer-key", "ecr-customer-key", "s3-event-notifications"}
#: Waived whatever the config: no option fixes them (README, "Deliberate exceptions").
ALWAYS_WAIVED = {"s3-cross-region-replication", "secret-rotation"}


def test_waivers_go_away_with_the_stricter_choice(plan_for: PlanFor) -> None:
    default = plan_for().check_policies()
    assert {f.rule_id for f in default.waived} == {
        "lt-no-public-ip", "subnet-no-auto-public-ip", "logs-retention-one-year",
        *BASELINE_WAIVED, *ALWAYS_WAIVED}
    nat = plan_for(nat="single").check_policies()
    assert {f.rule_id for f in nat.waived} == {"logs-retention-one-year", *BASELINE_WAIVED,
                                              *ALWAYS_WAIVED}
    strict = plan_for(nat="single", security_profile="strict").check_policies()
    unfixable = {*ALWAYS_WAIVED, "s3-log-target-customer-key"}
    assert {f.rule_id for f in strict.waived} == {"logs-retention-one-year", *unfixable}
    strict = plan_for(**STRICT).check_policies()
    assert {f.rule_id for f in strict.findings} == {*unfixable, "codebuild-not-privileged"}
    bedrock = plan_for(**STRICT, auth="bedrock").check_policies()
    assert {f.rule_id for f in bedrock.findings} == {*unfixable, "codebuild-not-privileged"
                                                     } - {"secret-rotation"}


def test_a_waiver_does_not_cover_a_config_it_was_not_declared_for(plan_for: PlanFor) -> None:
    # Public IPs are waived for nat='none'; in a NAT layout the same finding is a violation.
    p = plan_for(nat="single")
    resources = [(r.type, r.name, r.inputs) for r in p]
    template = next(i for i, r in enumerate(resources) if r[0].endswith("LaunchTemplate"))
    kind, name, props = resources[template]
    resources[template] = (kind, name, BREAKERS["lt-no-public-ip"][1](dict(props)))
    findings = evaluate(resources, p.config)
    (finding,) = [f for f in findings if f.rule_id == "lt-no-public-ip"]
    assert not finding.waived and not finding.mandatory


def test_mandatory_violations_refuse_with_rule_and_resource(plan_for: PlanFor) -> None:
    p = plan_for(**STRICT)
    broken = [
        r if not r.type.endswith("TaskDefinition")
        else type(r)(type=r.type, name=r.name, parent=r.parent, custom=r.custom,
                     inputs=with_containers(dict(r.inputs), privileged=True))
        for r in p
    ]
    report = check_policies(type(p)(name=p.name, config=p.config, resources=tuple(broken)))
    assert [f.rule_id for f in report.mandatory_violations] == ["ecs-not-privileged"]
    with pytest.raises(PolicyViolationError) as info:
        report.raise_for_mandatory()
    assert "ecs-not-privileged on rclaude-dev-runner" in str(info.value)
    plan_for(**STRICT).check_policies().raise_for_mandatory()  # nothing to refuse


def test_report_renderings(default_plan: Plan) -> None:
    report = default_plan.check_policies()
    data = json.loads(report.to_json())
    assert data["ok"] is True and len(data["findings"]) == 15
    assert all(f["waived"] for f in data["findings"])
    assert str(report).endswith("0 violations (0 mandatory), 15 waived")
    assert Deployment("dev").check_policies().ok


# -- the CrossGuard pack ------------------------------------------------------------------


def run_pack(p: Plan, config: DeploymentConfig | None) -> dict[str, list[str]]:
    """Run every policy of the pack on the plan, as the engine would; messages by policy."""
    from pulumi_policy import (
        PolicyResource,
        PolicyResourceOptions,
        ResourceValidationArgs,
        ResourceValidationPolicy,
        StackValidationArgs,
    )
    from pulumi_policy.proxy import unknown_checking_proxy

    from rclaude_infra._pulumi.policy_pack import build_policies

    options = PolicyResourceOptions(False, [], None, [], None, [])  # type: ignore[arg-type]
    reported: dict[str, list[str]] = {}
    for policy in build_policies(config):
        messages = reported.setdefault(policy.name, [])

        def report(message: str, urn: str | None, messages: list[str] = messages) -> None:
            messages.append(message)

        if isinstance(policy, ResourceValidationPolicy):
            for r in p:
                args = ResourceValidationArgs(r.type, unknown_checking_proxy(dict(r.inputs)),
                                              f"urn:{r.name}", r.name, options, None)
                policy.validate(args, report)
        else:
            resources = [PolicyResource(r.type, unknown_checking_proxy(dict(r.inputs)),
                                        f"urn:{r.name}", r.name, options, None, None, [], {})
                         for r in p]
            policy.validate(StackValidationArgs(resources), report)
    return reported


@pytest.mark.parametrize("with_config", [True, False])
def test_the_pack_runs_the_same_rules(plan_for: PlanFor, with_config: bool) -> None:
    from pulumi_policy import EnforcementLevel

    from rclaude_infra._pulumi.policy_pack import build_policies

    p = plan_for()
    reported = run_pack(p, p.config if with_config else None)
    enforced = {policy.name: policy.enforcement_level for policy in build_policies(p.config)}
    for rule in RULES:
        assert rule.id in reported
        expected = (EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY)
        assert enforced[rule.id] == expected
    # Clean stack: nothing reported by the enforcing policies; the waived findings show on
    # the advisory "-waived" policies, with their reason.
    assert all(not reported[rule.id] for rule in RULES)
    waived = {name: msgs for name, msgs in reported.items() if name.endswith("-waived") and msgs}
    assert set(waived) == {"lt-no-public-ip-waived", "subnet-no-auto-public-ip-waived",
                           "logs-retention-one-year-waived",
                           *(f"{rule}-waived" for rule in BASELINE_WAIVED | ALWAYS_WAIVED)}
    assert all("(waived: " in m for msgs in waived.values() for m in msgs)


def test_the_pack_reports_what_the_offline_evaluator_finds(plan_for: PlanFor) -> None:
    p = plan_for(**STRICT)
    broken_resources = []
    for r in p:
        inputs = dict(r.inputs)
        if r.type.endswith("LaunchTemplate"):
            inputs = BREAKERS["lt-imdsv2"][1](copy.deepcopy(inputs))
        if r.type.endswith("TaskDefinition"):
            inputs = with_containers(inputs, user="root")
        broken_resources.append(type(r)(type=r.type, name=r.name, parent=r.parent,
                                        custom=r.custom, inputs=inputs))
    broken = type(p)(name=p.name, config=p.config, resources=tuple(broken_resources))
    violations = broken.check_policies().violations
    offline = {(f.rule_id, f"{f.resource}: {f.message}") for f in violations}
    reported = run_pack(broken, p.config)
    from_pack = {(name, m) for name, msgs in reported.items() for m in msgs
                 if not name.endswith("-waived")}
    assert offline == from_pack
    assert {rule for rule, _ in offline} == {"lt-imdsv2", "ecs-non-root"}


def test_the_pack_program_builds_a_mandatory_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    import pulumi_policy

    built: dict[str, Any] = {}

    def record(**kwargs: Any) -> None:  # PolicyPack() would serve forever
        built.update(kwargs)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", record)
    monkeypatch.setenv("RCLAUDE_DEPLOYMENT_CONFIG", json.dumps(DeploymentConfig().to_dict()))
    runpy.run_path(str(ROOT / "programs" / "policy" / "__main__.py"), run_name="__main__")
    assert built["name"] == "rclaude-infra"
    assert built["enforcement_level"] == pulumi_policy.EnforcementLevel.MANDATORY
    names = {policy.name for policy in built["policies"]}
    assert {rule.id for rule in RULES} <= names
    assert (ROOT / "programs" / "policy" / "PulumiPolicy.yaml").is_file()


def test_rule_objects_validate_their_severity() -> None:
    with pytest.raises(ValueError):
        Rule(id="x", description="x", severity="urgent", references=())
