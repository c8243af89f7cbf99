"""The offline plan as Terraform plan JSON, for the scanners a security team already runs.

pulumi-aws is bridged from the Terraform AWS provider, so each resource type has a
Terraform twin and each property a Terraform name. This module writes what
``terraform show -json`` would print for a first apply (format 1.2): every resource in
``planned_values`` and ``resource_changes`` with the action ``create``, and
``configuration`` holding the references between resources, which is how Checkov's graph
checks (a bucket and its public access block, a VPC and its flow log) and Infracost's
usage-based prices connect them.

What changes on the way:

* type tokens map through :data:`TERRAFORM_TYPES`; a type with no entry is left out and
  named in ``rclaude_unconverted`` (components such as ``awsx:ecr:Image`` create nothing
  themselves);
* property names go from Pulumi's camelCase to Terraform's snake_case, and the block
  names pulumi-aws pluralized go back to Terraform's singular (:data:`BLOCK_NAMES`);
* an object-valued property is a Terraform block, which plan JSON writes as a list of one;
  ``tags`` stays a map;
* a value that is another resource's id, ARN or name (the offline plan's placeholders) is
  unknown until apply: it is left out of ``values``, marked in ``after_unknown`` and
  written as a reference in ``configuration``, as Terraform does;
* masked secrets are left out and marked in ``sensitive_values``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from .policy import ResourceLike

#: Pulumi type token -> Terraform resource type, for every type the program registers.
TERRAFORM_TYPES: Mapping[str, str] = {
    "aws:autoscaling/group:Group": "aws_autoscaling_group",
    "aws:cloudwatch/eventRule:EventRule": "aws_cloudwatch_event_rule",
    "aws:cloudwatch/eventTarget:EventTarget": "aws_cloudwatch_event_target",
    "aws:cloudwatch/logGroup:LogGroup": "aws_cloudwatch_log_group",
    "aws:codebuild/project:Project": "aws_codebuild_project",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "aws_default_security_group",
    "aws:ec2/eip:Eip": "aws_eip",
    "aws:ec2/flowLog:FlowLog": "aws_flow_log",
    "aws:ec2/internetGateway:InternetGateway": "aws_internet_gateway",
    "aws:ec2/launchTemplate:LaunchTemplate": "aws_launch_template",
    "aws:ec2/natGateway:NatGateway": "aws_nat_gateway",
    "aws:ec2/routeTable:RouteTable": "aws_route_table",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "aws_route_table_association",
    "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
    "aws:ec2/subnet:Subnet": "aws_subnet",
    "aws:ec2/vpc:Vpc": "aws_vpc",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": "aws_ecr_lifecycle_policy",
    "aws:ecr/repository:Repository": "aws_ecr_repository",
    "aws:ecs/capacityProvider:CapacityProvider": "aws_ecs_capacity_provider",
    "aws:ecs/cluster:Cluster": "aws_ecs_cluster",
    "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders":
        "aws_ecs_cluster_capacity_providers",
    "aws:ecs/taskDefinition:TaskDefinition": "aws_ecs_task_definition",
    "aws:iam/instanceProfile:InstanceProfile": "aws_iam_instance_profile",
    "aws:iam/role:Role": "aws_iam_role",
    "aws:iam/rolePolicy:RolePolicy": "aws_iam_role_policy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "aws_iam_role_policy_attachment",
    "aws:kms/alias:Alias": "aws_kms_alias",
    "aws:kms/key:Key": "aws_kms_key",
    "aws:s3/bucket:Bucket": "aws_s3_bucket",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration":
        "aws_s3_bucket_lifecycle_configuration",
    "aws:s3/bucketLogging:BucketLogging": "aws_s3_bucket_logging",
    "aws:s3/bucketNotification:BucketNotification": "aws_s3_bucket_notification",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "aws_s3_bucket_ownership_controls",
    "aws:s3/bucketPolicy:BucketPolicy": "aws_s3_bucket_policy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
        "aws_s3_bucket_public_access_block",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
        "aws_s3_bucket_server_side_encryption_configuration",
    "aws:s3/bucketVersioning:BucketVersioning": "aws_s3_bucket_versioning",
    "aws:secretsmanager/secret:Secret": "aws_secretsmanager_secret",
    "aws:secretsmanager/secretVersion:SecretVersion": "aws_secretsmanager_secret_version",
    "aws:sqs/queue:Queue": "aws_sqs_queue",
    "aws:sqs/queuePolicy:QueuePolicy": "aws_sqs_queue_policy",
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": "aws_sqs_queue_redrive_allow_policy",
    "aws:acm/certificate:Certificate": "aws_acm_certificate",
    "aws:acm/certificateValidation:CertificateValidation": "aws_acm_certificate_validation",
    "aws:ecs/service:Service": "aws_ecs_service",
    "aws:lb/listener:Listener": "aws_lb_listener",
    "aws:lb/loadBalancer:LoadBalancer": "aws_lb",
    "aws:lb/targetGroup:TargetGroup": "aws_lb_target_group",
    "aws:rds/instance:Instance": "aws_db_instance",
    "aws:rds/parameterGroup:ParameterGroup": "aws_db_parameter_group",
    "aws:rds/subnetGroup:SubnetGroup": "aws_db_subnet_group",
    "aws:route53/record:Record": "aws_route53_record",
}

#: Terraform blocks that pulumi-aws names in the plural (its bridge pluralizes a
#: repeatable block): Pulumi name -> Terraform name. Names pulumi-aws keeps as Terraform
#: spells them (``block_device_mappings``, ``tag_specifications``) need no entry.
BLOCK_NAMES: Mapping[str, str] = {
    "aliases": "alias",
    "defaultActions": "default_action",
    "defaultCapacityProviderStrategies": "default_capacity_provider_strategy",
    "encryptionConfigurations": "encryption_configuration",
    "environmentVariables": "environment_variable",
    "loadBalancers": "load_balancer",
    "overrides": "override",
    "parameters": "parameter",
    "routes": "route",
    "rules": "rule",
    "settings": "setting",
    "volumes": "volume",
    "vpcZoneIdentifiers": "vpc_zone_identifier",
}

#: Object-valued properties that are Terraform maps, not blocks.
_MAPS = frozenset({"tags", "tagsAll"})

#: Attributes of a deployed resource that other resources refer to, with their Terraform
#: names (a bucket's ``bucket`` is its name).
_REFERABLE = {"id": "id", "arn": "arn", "name": "name", "bucket": "bucket",
              "keyId": "key_id", "repositoryUrl": "repository_url",
              # the service's (mode="service"): a record's alias, a container's database
              "dnsName": "dns_name", "zoneId": "zone_id", "address": "address",
              "fqdn": "fqdn"}

FORMAT_VERSION = "1.2"
#: The Terraform release whose plan format this follows.
TERRAFORM_VERSION = "1.9.8"
PROVIDER = "registry.terraform.io/hashicorp/aws"

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_UNKNOWN = "<unknown>"


class Resource(ResourceLike, Protocol):
    """What the conversion reads of a planned resource (:class:`~rclaude_infra.PlannedResource`):
    what the rules read, and what it would expose once created."""

    @property
    def state(self) -> Mapping[str, Any]: ...


def snake_case(name: str) -> str:
    """A Pulumi property name as Terraform spells it.

    >>> snake_case("httpPutResponseHopLimit"), snake_case("s3Logs"), snake_case("rules")
    ('http_put_response_hop_limit', 's3_logs', 'rule')
    """
    return BLOCK_NAMES.get(name) or _CAMEL.sub("_", name).lower()


def to_terraform_plan(resources: Iterable[Resource], *, region: str,
                      secret_mask: str) -> dict[str, Any]:
    """Terraform plan JSON (as a dict) for ``resources``; see the module's docstring."""
    resources = list(resources)
    convertible = [r for r in resources if r.type in TERRAFORM_TYPES]
    unconverted = sorted({r.type for r in resources if r.type not in TERRAFORM_TYPES
                          and not r.type.startswith("pulumi:")})
    refs = _reference_index(convertible)
    planned: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    configured: list[dict[str, Any]] = []
    for resource in convertible:
        tf_type = TERRAFORM_TYPES[resource.type]
        address = f"{tf_type}.{resource.name}"
        converter = _Converter(refs, secret_mask, own=address)
        values, unknown, sensitive, expressions = converter.top(resource.inputs)
        head = {"address": address, "mode": "managed", "type": tf_type, "name": resource.name,
                "provider_name": PROVIDER}
        planned.append({**head, "schema_version": 0, "values": values,
                        "sensitive_values": sensitive})
        changes.append({**head, "change": {
            "actions": ["create"], "before": None, "after": values,
            "after_unknown": {**unknown, "id": True}, "before_sensitive": False,
            "after_sensitive": sensitive}})
        configured.append({"address": address, "mode": "managed", "type": tf_type,
                           "name": resource.name, "provider_config_key": "aws",
                           "expressions": expressions, "schema_version": 0})
    return {
        "format_version": FORMAT_VERSION,
        "terraform_version": TERRAFORM_VERSION,
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {
            "provider_config": {"aws": {
                "name": "aws", "full_name": PROVIDER,
                "expressions": {"region": {"constant_value": region}}}},
            "root_module": {"resources": configured},
        },
        "rclaude_unconverted": unconverted,
    }


def _reference_index(resources: Iterable[Resource]) -> dict[str, list[str]]:
    """Placeholder value -> the Terraform references it stands for."""
    index: dict[str, list[str]] = {}
    for resource in resources:
        address = f"{TERRAFORM_TYPES[resource.type]}.{resource.name}"
        for key, attribute in _REFERABLE.items():
            value = resource.state.get(key)
            if isinstance(value, str) and value and value not in index:
                index[value] = [f"{address}.{attribute}", address]
    return index


class _Converter:
    def __init__(self, refs: Mapping[str, list[str]], secret_mask: str, own: str) -> None:
        self.refs = refs
        self.secret_mask = secret_mask
        self.own = own

    def _reference(self, value: Any) -> list[str] | None:
        if not isinstance(value, str):
            return None
        found = self.refs.get(value)
        # A resource's own name in its own inputs is a constant, not a reference.
        return found if found and found[1] != self.own else None

    def top(self, inputs: Mapping[str, Any]
            ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
        """``values``, ``after_unknown``, ``sensitive_values`` and ``expressions``."""
        values: dict[str, Any] = {}
        unknown: dict[str, Any] = {}
        sensitive: dict[str, Any] = {}
        expressions: dict[str, Any] = {}
        for key, value in inputs.items():
            name = "tag" if key == "tags" and isinstance(value, list) else snake_case(key)
            known, unknown_part, sensitive_part, expression = self._value(key, value)
            if known is not _ABSENT:
                values[name] = known
            if unknown_part:
                unknown[name] = unknown_part
            if sensitive_part:
                sensitive[name] = sensitive_part
            if expression is not None:
                expressions[name] = expression
        return values, unknown, sensitive, expressions

    def _value(self, key: str, value: Any) -> tuple[Any, Any, Any, Any]:
        """(known value or _ABSENT, after_unknown, sensitive, configuration expression)."""
        if value == self.secret_mask:
            return _ABSENT, None, True, None
        if value == _UNKNOWN:
            return _ABSENT, True, None, None
        reference = self._reference(value)
        if reference is not None:
            return _ABSENT, True, None, {"references": reference}
        if isinstance(value, list):
            refs = [r for item in value for r in (self._reference(item) or [])]
            if refs:
                # A list holding unknowns is unknown as a whole until apply.
                return _ABSENT, True, None, {"references": refs}
            items = [self.top(item) if isinstance(item, Mapping) else self._value(key, item)
                     for item in value]
            return ([known for known, *_ in items if known is not _ABSENT],
                    _nested([u for _, u, _, _ in items]),
                    _nested([s for _, _, s, _ in items]),
                    _nested([e for *_, e in items]))
        if isinstance(value, Mapping):
            if key in _MAPS:
                return dict(value), None, None, None
            block, unknown, sensitive, expressions = self.top(value)
            # Terraform writes a single nested block as a list of one.
            return ([block], [unknown] if unknown else None,
                    [sensitive] if sensitive else None,
                    [expressions] if expressions else None)
        return value, None, None, None


def _nested(parts: list[Any]) -> list[Any] | None:
    return [p or {} for p in parts] if any(parts) else None


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()
