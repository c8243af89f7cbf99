"""Security rules for the stack: one rule per check, evaluated offline on a plan and, the
same functions, by the CrossGuard policy pack (``_pulumi/crossguard``) at deploy time.

Each rule carries the public ids it corresponds to (Checkov ``CKV_*`` and AWS Security
Hub Foundational Security Best Practices controls). Deliberate exceptions are declared
once, in :data:`WAIVERS`, with their reason; a waived finding is reported as waived, and
the waiver stops applying when the config chooses the stricter option.

Rules read resource properties as the engine sees them (camelCase), through the
``Mapping``/``Sequence`` interfaces only, so they run unchanged on plan inputs and on
CrossGuard's property proxies.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from ._render import Rendered, titled
from .config import DEPLOYMENT_TAG, PURPOSE_TAG, DeploymentConfig
from .errors import PolicyViolationError
from .image_source import BUILDSPEC

if TYPE_CHECKING:
    from rich.console import Group

SEVERITIES = ("low", "medium", "high", "critical")

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
SUBNET = "aws:ec2/subnet:Subnet"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ENCRYPTION = ("aws:s3/bucketServerSideEncryptionConfiguration:"
              "BucketServerSideEncryptionConfiguration")
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
CAPACITY_PROVIDER = "aws:ecs/capacityProvider:CapacityProvider"
AUTO_SCALING_GROUP = "aws:autoscaling/group:Group"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
IAM_POLICY = "aws:iam/policy:Policy"
POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
CODEBUILD_PROJECT = "aws:codebuild/project:Project"
VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BUCKET_LOGGING = "aws:s3/bucketLogging:BucketLogging"
CLUSTER = "aws:ecs/cluster:Cluster"
SECRET = "aws:secretsmanager/secret:Secret"
KMS_KEY = "aws:kms/key:Key"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
ECR_LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
BUCKET_NOTIFICATION = "aws:s3/bucketNotification:BucketNotification"
BUCKET_REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
SECRET_ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"
# The hosted service's (mode="service").
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
DB_INSTANCE = "aws:rds/instance:Instance"
ECS_SERVICE = "aws:ecs/service:Service"

#: Types the stack creates that accept tags (the tag rule checks these).
TAGGABLE = (
    LAUNCH_TEMPLATE, SUBNET, SECURITY_GROUP, BUCKET, TASK_DEFINITION, CAPACITY_PROVIDER,
    ROLE, LOG_GROUP, VPC, DEFAULT_SECURITY_GROUP, "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/routeTable:RouteTable", "aws:ec2/natGateway:NatGateway", "aws:ec2/eip:Eip",
    CLUSTER, "aws:secretsmanager/secret:Secret", FLOW_LOG,
    "aws:iam/instanceProfile:InstanceProfile", CODEBUILD_PROJECT, ECR_REPOSITORY,
    LOAD_BALANCER, LISTENER, TARGET_GROUP, DB_INSTANCE, ECS_SERVICE,
    "aws:rds/subnetGroup:SubnetGroup", "aws:rds/parameterGroup:ParameterGroup",
    "aws:acm/certificate:Certificate",
)

#: Actions AWS does not let a policy scope to a resource; ``"Resource": "*"`` is allowed
#: for these only.
UNSCOPABLE_ACTIONS = (
    "ecr:GetAuthorizationToken",
    "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
    "ecs:DiscoverPollEndpoint", "logs:DescribeLogGroups", "bedrock:ListInferenceProfiles",
    # The service's task role: the type and lifecycle of the instances tasks ran on.
    "ec2:DescribeInstances",
)
#: The tag naming a security group's part (``_pulumi.stack_service.ROLE_TAG``): groups of
#: the hosted service (``mode="service"``) take the inbound traffic their part needs.
ROLE_TAG = "rclaude:role"
#: The service's load balancer: HTTPS (and HTTP, redirected or on request) from anywhere.
LOAD_BALANCER_ROLE = "service-load-balancer"
LOAD_BALANCER_PORTS = (80, 443)
#: The service's other groups: inbound only from another of the stack's groups.
SERVICE_ROLES = ("service", "service-database")
_ADMIN_POLICIES = ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")
_SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"(sk-ant-[A-Za-z0-9_-]{6,}|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|"
    r"aws_secret_access_key|-----BEGIN [A-Z ]*PRIVATE KEY-----|gh[pousr]_[A-Za-z0-9]{20,})"
)

Props = Mapping[str, Any]
Check = Callable[[Props], Iterable[str]]
StackCheck = Callable[[Sequence[tuple[str, str, Props]]], Iterable[tuple[str, str]]]


@attrs.frozen(kw_only=True)
class Rule:
    """One security check.

    ``check`` yields a message per violation for one resource of ``resource_types``;
    a stack rule's ``stack_check`` sees every ``(type, name, props)`` and yields
    ``(resource name, message)`` pairs.
    """

    id: str
    description: str
    severity: str = attrs.field(validator=attrs.validators.in_(SEVERITIES))
    #: Checkov and Security Hub ids this rule corresponds to.
    references: tuple[str, ...]
    resource_types: tuple[str, ...] = ()
    check: Check | None = attrs.field(default=None, eq=False)
    stack_check: StackCheck | None = attrs.field(default=None, eq=False)

    @property
    def mandatory(self) -> bool:
        """High and critical rules block a deployment; the others advise."""
        return self.severity in ("high", "critical")


_REGISTERED: list[Rule] = []


def rule(*, id: str, severity: str, description: str, references: tuple[str, ...],
         resource_types: tuple[str, ...] = (), stack: bool = False) -> Callable[[Any], Any]:
    """Declare the decorated function as a rule's check, where it is written: for one
    resource of ``resource_types`` (yielding messages), or with ``stack=True`` for the
    whole plan (yielding ``(resource name, message)`` pairs)."""
    def register(check: Any) -> Any:
        _REGISTERED.append(Rule(
            id=id, severity=severity, description=description, references=references,
            resource_types=resource_types, check=None if stack else check,
            stack_check=check if stack else None))
        return check

    return register


@attrs.frozen(kw_only=True)
class Waiver:
    """A deliberate exception to a rule, with its reason, for the configs it applies to."""

    rule_id: str
    reason: str
    #: True for the configs that chose the less strict option this waiver covers.
    applies: Callable[[DeploymentConfig], bool] = attrs.field(eq=False)


@attrs.frozen(kw_only=True)
class Finding:
    """A violation of a rule by a resource; ``waived`` with the waiver's reason when declared.

    >>> from rclaude_infra import plan
    >>> finding = plan().check_policies().waived[0]
    >>> finding.rule_id, finding.waived
    ('lt-no-public-ip', True)
    """

    rule_id: str
    severity: str
    references: tuple[str, ...]
    resource: str
    resource_type: str
    message: str
    mandatory: bool
    waiver: str | None = None

    @property
    def waived(self) -> bool:
        return self.waiver is not None

    def to_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "references": list(self.references), "waived": self.waived}

    def __str__(self) -> str:
        status = f"WAIVED ({self.waiver})" if self.waived else (
            "MANDATORY" if self.mandatory else "advisory")
        return (f"[{status}] {self.rule_id} ({self.severity}; {', '.join(self.references)}) "
                f"{self.resource}: {self.message}")


@attrs.frozen(kw_only=True)
class PolicyReport(Rendered):
    """Every finding of every rule on one plan.

    >>> from rclaude_infra import plan
    >>> report = plan().check_policies()
    >>> report.ok, report.rules_checked, len(report.mandatory_violations)
    (True, 71, 0)
    """

    findings: tuple[Finding, ...]
    rules_checked: int

    @property
    def violations(self) -> list[Finding]:
        """Findings not covered by a waiver."""
        return [f for f in self.findings if not f.waived]

    @property
    def waived(self) -> list[Finding]:
        return [f for f in self.findings if f.waived]

    @property
    def mandatory_violations(self) -> list[Finding]:
        return [f for f in self.violations if f.mandatory]

    @property
    def ok(self) -> bool:
        """No violation beyond the declared waivers."""
        return not self.violations

    def raise_for_mandatory(self) -> None:
        """Raise :class:`~rclaude_infra.errors.PolicyViolationError` naming each mandatory
        violation's rule and resource (what ``up()`` refuses on)."""
        violations = self.mandatory_violations
        if violations:
            raise PolicyViolationError(
                f"{len(violations)} mandatory policy violation(s): "
                + "; ".join(f"{f.rule_id} on {f.resource}: {f.message}" for f in violations),
                findings=violations,
            )

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps({
            "rules_checked": self.rules_checked,
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
        }, indent=indent)

    def __rich__(self) -> Group:
        """Violations first (mandatory, then advisory), then waivers with their reasons, and
        a count of each."""
        from rich.console import Group
        from rich.text import Text

        summary = Text(
            f"{self.rules_checked} rules checked: {len(self.violations)} violations "
            f"({len(self.mandatory_violations)} mandatory), {len(self.waived)} waived",
            style="bold green" if self.ok else "bold red",
        )
        if not self.findings:
            return Group(summary)
        table = titled("Security rules")
        for column in ("status", "rule", "severity", "resource", "finding", "references"):
            table.add_column(column)
        for f in sorted(self.findings, key=lambda f: (f.waived, not f.mandatory, f.rule_id)):
            if f.waived:
                status = Text("waived", style="yellow")
            elif f.mandatory:
                status = Text("MANDATORY", style="bold red")
            else:
                status = Text("advisory", style="magenta")
            message = f.message + (f"\nwaived: {f.waiver}" if f.waiver else "")
            table.add_row(status, f.rule_id, f.severity, f.resource, message,
                          ", ".join(f.references))
        return Group(table, summary)


# -- helpers over engine-shaped properties -----------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, Mapping)):
        return [value]
    return list(value)


def _document(value: Any) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return value if isinstance(value, Mapping) else {}


def _statements(value: Any) -> list[Mapping[str, Any]]:
    return [s for s in _as_list(_document(value).get("Statement")) if isinstance(s, Mapping)]


def _containers(props: Props) -> list[Mapping[str, Any]]:
    raw = props.get("containerDefinitions")
    parsed = json.loads(raw) if isinstance(raw, str) else raw
    return [c for c in _as_list(parsed) if isinstance(c, Mapping)]


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


# -- launch template, subnets, security groups ------------------------------------------


@rule(
    id="lt-imdsv2",
    severity="high",
    resource_types=(LAUNCH_TEMPLATE,),
    description="Launch templates require IMDSv2",
    references=("CKV_AWS_79", "EC2.170"),
)
def _imdsv2(props: Props) -> Iterator[str]:
    options = props.get("metadataOptions") or {}
    if options.get("httpTokens") != "required":
        yield "instance metadata must require IMDSv2 tokens (metadataOptions.httpTokens = required)"


@rule(
    id="lt-metadata-hop-limit",
    severity="medium",
    resource_types=(LAUNCH_TEMPLATE,),
    description="Metadata response hop limit is 1",
    references=("CKV_AWS_341",),
)
def _hop_limit(props: Props) -> Iterator[str]:
    options = props.get("metadataOptions") or {}
    limit = options.get("httpPutResponseHopLimit")
    if limit is None or int(limit) > 1:
        yield (f"metadata hop limit is {limit}; 1 keeps bridge-mode containers away from the "
               "instance's credentials")


@rule(
    id="lt-ebs-encrypted",
    severity="high",
    resource_types=(LAUNCH_TEMPLATE,),
    description="Launch template volumes are encrypted",
    references=("EC2.181", "CKV_AWS_106", "EC2.7"),
)
def _ebs_encrypted(props: Props) -> Iterator[str]:
    mappings = _as_list(props.get("blockDeviceMappings"))
    if not mappings:
        yield "no block device mapping: the root volume's encryption is not set"
    for mapping in mappings:
        ebs = mapping.get("ebs") or {}
        if not _truthy(ebs.get("encrypted")):
            yield f"volume {mapping.get('deviceName')} is not encrypted"


@rule(
    id="lt-no-public-ip",
    severity="medium",
    resource_types=(LAUNCH_TEMPLATE,),
    description="Instances get no public IP address",
    references=("CKV_AWS_88", "EC2.25", "EC2.9"),
)
def _no_public_ip(props: Props) -> Iterator[str]:
    for interface in _as_list(props.get("networkInterfaces")):
        if _truthy(interface.get("associatePublicIpAddress")):
            yield "instances get a public IPv4 address"


@rule(
    id="lt-no-secrets-in-user-data",
    severity="critical",
    resource_types=(LAUNCH_TEMPLATE,),
    description="No credentials in user data",
    references=("CKV_AWS_46",),
)
def _no_secrets_in_user_data(props: Props) -> Iterator[str]:
    data = props.get("userData")
    if not isinstance(data, str):
        return
    try:
        text = base64.b64decode(data, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        text = data
    if _SECRET_VALUE.search(text):
        yield "user data contains what looks like a credential"


@rule(
    id="subnet-no-auto-public-ip",
    severity="low",
    resource_types=(SUBNET,),
    description="Subnets do not assign public IPs on launch",
    references=("CKV_AWS_130", "EC2.15"),
)
def _subnet_no_public_ip(props: Props) -> Iterator[str]:
    if _truthy(props.get("mapPublicIpOnLaunch")):
        yield "the subnet assigns public IPv4 addresses on launch"


_ANYWHERE = ("0.0.0.0/0", "::/0")


def _rules(props: Props, key: str) -> list[Mapping[str, Any]]:
    return [r for r in _as_list(props.get(key)) if isinstance(r, Mapping)]


def _open_to_anywhere(rule: Mapping[str, Any]) -> bool:
    sources = [*_as_list(rule.get("cidrBlocks")), *_as_list(rule.get("ipv6CidrBlocks"))]
    return any(s in _ANYWHERE for s in sources)


@rule(
    id="sg-no-ingress-from-anywhere",
    severity="critical",
    resource_types=(SECURITY_GROUP,),
    description="No inbound traffic from 0.0.0.0/0 or ::/0",
    references=("CKV_AWS_24", "CKV_AWS_25", "CKV_AWS_260", "CKV_AWS_277", "EC2.18", "EC2.19"),
)
def _no_open_ingress(props: Props) -> Iterator[str]:
    balancer = _role(props) == LOAD_BALANCER_ROLE
    for rule in _rules(props, "ingress"):
        if balancer and rule.get("fromPort") == rule.get("toPort") in LOAD_BALANCER_PORTS:
            continue  # the service's front door: rule lb-http-open-for-redirect
        if _open_to_anywhere(rule):
            yield (f"inbound {rule.get('protocol')} {rule.get('fromPort')}-{rule.get('toPort')} "
                   "is open to the internet")


@rule(
    id="sg-no-inbound-rules",
    severity="high",
    resource_types=(SECURITY_GROUP,),
    description="The runner's group (every group but the service's) has no inbound rules",
    references=("EC2.18",),
)
def _no_ingress(props: Props) -> Iterator[str]:
    if _role(props) in (LOAD_BALANCER_ROLE, *SERVICE_ROLES):
        return
    count = len(_rules(props, "ingress"))
    if count:
        yield f"the runner's group has {count} inbound rules; it needs none"


@rule(
    id="sg-service-ingress-from-groups",
    severity="high",
    resource_types=(SECURITY_GROUP,),
    description="The service's tasks and database take inbound traffic only from another "
    "of the stack's groups (the load balancer's, the tasks')",
    references=("EC2.18",),
)
def _service_ingress_from_groups(props: Props) -> Iterator[str]:
    if _role(props) not in SERVICE_ROLES:
        return
    for rule in _rules(props, "ingress"):
        if (rule.get("cidrBlocks") or rule.get("ipv6CidrBlocks") or rule.get("prefixListIds")
                or not rule.get("securityGroups")):
            yield (f"inbound {rule.get('protocol')} {rule.get('fromPort')}-"
                   f"{rule.get('toPort')} comes from addresses, not from a group of the stack")


def _role(props: Props) -> str | None:
    tags = props.get("tags")
    return tags.get(ROLE_TAG) if isinstance(tags, Mapping) else None


@rule(
    id="vpc-default-sg-closed",
    severity="medium",
    description="A VPC the stack creates has its default security group without rules",
    references=("CKV2_AWS_12", "EC2.2"),
    stack=True,
)
def _default_sg_closed(resources: Sequence[tuple[str, str, Props]]) -> Iterator[tuple[str, str]]:
    vpcs = [name for kind, name, _ in resources if kind == VPC]
    managed = [props for kind, _, props in resources if kind == DEFAULT_SECURITY_GROUP]
    if len(managed) < len(vpcs):
        for name in vpcs:
            yield name, "its default security group keeps AWS's default rules (members reach "\
                "each other); manage it with aws.ec2.DefaultSecurityGroup and no rules"
    for props in managed:
        if _as_list(props.get("ingress")) or _as_list(props.get("egress")):
            yield "default security group", "the VPC's default security group has rules"


@rule(
    id="sg-descriptions",
    severity="low",
    resource_types=(SECURITY_GROUP,),
    description="Groups and their rules are described",
    references=("CKV_AWS_23",),
)
def _descriptions(props: Props) -> Iterator[str]:
    if not props.get("description"):
        yield "the group has no description"
    for key in ("ingress", "egress"):
        for rule in _rules(props, key):
            if not rule.get("description"):
                yield f"an {key} rule has no description"


@rule(
    id="sg-narrow-egress",
    severity="medium",
    resource_types=(SECURITY_GROUP,),
    description="Egress is limited to the ports tasks need",
    references=("CKV_AWS_382",),
)
def _narrow_egress(props: Props) -> Iterator[str]:
    for rule in _rules(props, "egress"):
        all_traffic = str(rule.get("protocol")) in ("-1", "all")
        all_ports = rule.get("fromPort") == 0 and rule.get("toPort") in (0, 65535)
        if _open_to_anywhere(rule) and (all_traffic or all_ports):
            yield "outbound traffic is open on every port to the internet"


# -- S3 ------------------------------------------------------------------------------------


@rule(
    id="s3-public-access-block",
    severity="critical",
    resource_types=(PUBLIC_ACCESS_BLOCK,),
    description="All four public access flags are on",
    references=("CKV_AWS_53", "CKV_AWS_54", "CKV_AWS_55", "CKV_AWS_56", "CKV2_AWS_6", "S3.8"),
)
def _public_access_block(props: Props) -> Iterator[str]:
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                 "restrictPublicBuckets"):
        if props.get(flag) is not True:
            yield f"{flag} is not set"


@rule(
    id="s3-default-encryption",
    severity="high",
    resource_types=(ENCRYPTION,),
    description="Buckets encrypt objects at rest",
    references=("CKV_AWS_19",),
)
def _encryption(props: Props) -> Iterator[str]:
    algorithms = [
        (rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm")
        for rule in _as_list(props.get("rules"))
    ]
    if not any(a in ("AES256", "aws:kms", "aws:kms:dsse") for a in algorithms):
        yield "no default encryption"


@rule(
    id="s3-tls-only",
    severity="high",
    resource_types=(BUCKET_POLICY,),
    description="Bucket policy denies requests without TLS",
    references=("CKV_AWS_379", "S3.5"),
)
def _tls_only(props: Props) -> Iterator[str]:
    for statement in _statements(props.get("policy")):
        condition = statement.get("Condition") or {}
        secure = (condition.get("Bool") or {}).get("aws:SecureTransport")
        if statement.get("Effect") == "Deny" and str(secure).lower() == "false":
            return
    yield "the bucket policy does not deny requests without TLS"


@rule(
    id="s3-lifecycle",
    severity="medium",
    resource_types=(LIFECYCLE,),
    description="Objects expire and incomplete uploads are aborted",
    references=("CKV2_AWS_61", "CKV_AWS_300", "S3.13"),
)
def _lifecycle(props: Props) -> Iterator[str]:
    rules = [r for r in _as_list(props.get("rules")) if r.get("status") == "Enabled"]
    if not any((r.get("expiration") or {}).get("days") for r in rules):
        yield "no enabled rule expires objects"
    if not any(r.get("abortIncompleteMultipartUpload") for r in rules):
        yield "incomplete multipart uploads are never aborted"


@rule(
    id="s3-acls-disabled",
    severity="medium",
    resource_types=(OWNERSHIP,),
    description="ACLs are disabled (bucket owner enforced)",
    references=("CKV2_AWS_65", "S3.12"),
)
def _acls_disabled(props: Props) -> Iterator[str]:
    if (props.get("rule") or {}).get("objectOwnership") != "BucketOwnerEnforced":
        yield "ACLs are enabled (object ownership is not BucketOwnerEnforced)"


@rule(
    id="s3-bucket-hardened",
    severity="high",
    description=(
        "Every bucket has its access block, encryption, ownership, lifecycle "
        "and TLS policy"
    ),
    references=("CKV2_AWS_6", "S3.8", "S3.5", "S3.12", "S3.13"),
    stack=True,
)
def _bucket_companions(
    resources: Sequence[tuple[str, str, Props]],
) -> Iterator[tuple[str, str]]:
    yield from _companions(resources, BUCKET, "buckets", {
        PUBLIC_ACCESS_BLOCK: "public access block", ENCRYPTION: "default encryption",
        OWNERSHIP: "ownership controls", LIFECYCLE: "lifecycle rules",
        BUCKET_POLICY: "bucket policy",
    })


def _companions(resources: Sequence[tuple[str, str, Props]], owner: str, owners_word: str,
                needed: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """Each resource of type ``owner`` needs one of each ``needed`` type (their props
    name the owner by an id only known after deployment, so count them)."""
    owners = [name for kind, name, _ in resources if kind == owner]
    for kind, what in needed.items():
        yield from _each_has(owners, owners_word, sum(1 for k, _, _ in resources if k == kind),
                             what)


def _each_has(owners: list[str], owners_word: str, count: int,
              what: str) -> Iterator[tuple[str, str]]:
    """A finding on every owner when fewer than all of them have ``what``."""
    if count < len(owners):
        for name in owners:
            yield name, f"{len(owners)} {owners_word} but {count} with {what}"


# -- ECS -----------------------------------------------------------------------------------


@rule(
    id="ecs-not-privileged",
    severity="critical",
    resource_types=(TASK_DEFINITION,),
    description="Containers are not privileged",
    references=("CKV_AWS_334", "ECS.4"),
)
def _not_privileged(props: Props) -> Iterator[str]:
    for c in _containers(props):
        if c.get("privileged") is True:
            yield f"container {c.get('name')} is privileged"


@rule(
    id="ecs-no-host-pid",
    severity="high",
    resource_types=(TASK_DEFINITION,),
    description="Tasks do not share the host PID namespace",
    references=("CKV_AWS_335", "ECS.3"),
)
def _no_host_pid(props: Props) -> Iterator[str]:
    if props.get("pidMode") == "host":
        yield "the task shares the host's process namespace"


@rule(
    id="ecs-no-host-network",
    severity="high",
    resource_types=(TASK_DEFINITION,),
    description="Tasks do not use host networking",
    references=("ECS.17",),
)
def _no_host_network(props: Props) -> Iterator[str]:
    if props.get("networkMode") == "host":
        yield "the task uses the host's network"


@rule(
    id="ecs-non-root",
    severity="high",
    resource_types=(TASK_DEFINITION,),
    description="Containers run as a non-root user",
    references=("ECS.20",),
)
def _non_root(props: Props) -> Iterator[str]:
    for c in _containers(props):
        user = str(c.get("user") or "")
        if not user or user.split(":", 1)[0] in ("root", "0"):
            yield f"container {c.get('name')} runs as root"


@rule(
    id="ecs-read-only-root",
    severity="medium",
    resource_types=(TASK_DEFINITION,),
    description="Containers have a read-only root file system",
    references=("CKV_AWS_336", "ECS.5"),
)
def _read_only_root(props: Props) -> Iterator[str]:
    for c in _containers(props):
        if c.get("readonlyRootFilesystem") is not True:
            yield f"container {c.get('name')} has a writable root file system"


@rule(
    id="ecs-no-secrets-in-environment",
    severity="critical",
    resource_types=(TASK_DEFINITION,),
    description="No secrets in container environment variables",
    references=("ECS.8",),
)
def _no_secrets_in_environment(props: Props) -> Iterator[str]:
    for c in _containers(props):
        for variable in _as_list(c.get("environment")):
            name, value = str(variable.get("name", "")), str(variable.get("value", ""))
            if _SECRET_NAME.search(name) or _SECRET_VALUE.search(value):
                yield (f"container {c.get('name')} has {name} in its environment; "
                       "pass secrets through `secrets`")


@rule(
    id="ecs-logging",
    severity="medium",
    resource_types=(TASK_DEFINITION,),
    description="Containers send their logs somewhere",
    references=("ECS.9",),
)
def _logging(props: Props) -> Iterator[str]:
    for c in _containers(props):
        if not (c.get("logConfiguration") or {}).get("logDriver"):
            yield f"container {c.get('name')} has no log configuration"


@rule(
    id="ecs-separate-roles",
    severity="medium",
    resource_types=(TASK_DEFINITION,),
    description="Execution role differs from task role",
    references=("CKV_AWS_249",),
)
def _separate_roles(props: Props) -> Iterator[str]:
    execution, task = props.get("executionRoleArn"), props.get("taskRoleArn")
    if execution and execution == task:
        yield "the execution role is also the task role"


@rule(
    id="ecs-termination-protection",
    severity="medium",
    resource_types=(CAPACITY_PROVIDER,),
    description="Capacity provider protects instances with running tasks",
    references=("ECS.19",),
)
def _termination_protection(props: Props) -> Iterator[str]:
    provider = props.get("autoScalingGroupProvider") or {}
    if provider.get("managedTerminationProtection") != "ENABLED":
        yield "managed termination protection is off: scale-in can kill running tasks"


# -- auto scaling --------------------------------------------------------------------------


@rule(
    id="asg-launch-template",
    severity="medium",
    resource_types=(AUTO_SCALING_GROUP,),
    description="The group uses a launch template",
    references=("CKV_AWS_315", "AutoScaling.9"),
)
def _uses_launch_template(props: Props) -> Iterator[str]:
    mixed = (props.get("mixedInstancesPolicy") or {}).get("launchTemplate")
    if props.get("launchConfiguration") or not (props.get("launchTemplate") or mixed):
        yield "the group does not use a launch template"


@rule(
    id="asg-propagate-tags",
    severity="low",
    resource_types=(AUTO_SCALING_GROUP,),
    description="Tags propagate to instances",
    references=("CKV_AWS_153",),
)
def _propagates_tags(props: Props) -> Iterator[str]:
    for tag in _as_list(props.get("tags")):
        if tag.get("propagateAtLaunch") is not True:
            yield f"tag {tag.get('key')} is not propagated to instances"


@rule(
    id="asg-multi-az",
    severity="medium",
    resource_types=(AUTO_SCALING_GROUP,),
    description="The group spans at least two AZs",
    references=("AutoScaling.2",),
)
def _multi_az(props: Props) -> Iterator[str]:
    zones = _as_list(props.get("vpcZoneIdentifiers")) or _as_list(props.get("availabilityZones"))
    if len(zones) < 2:
        yield f"the group spans {len(zones)} subnet(s); use at least two AZs"


@rule(
    id="asg-multi-type-spot",
    severity="low",
    resource_types=(AUTO_SCALING_GROUP,),
    description="Spot groups use several instance types",
    references=("AutoScaling.6",),
)
def _multi_type_with_spot(props: Props) -> Iterator[str]:
    policy = props.get("mixedInstancesPolicy") or {}
    distribution = policy.get("instancesDistribution") or {}
    spot = int(distribution.get("onDemandPercentageAboveBaseCapacity", 100)) < 100
    types = _as_list((policy.get("launchTemplate") or {}).get("overrides"))
    if spot and len(types) < 2:
        yield "spot with one instance type: an interruption of that pool stops everything"


# -- what security_profile="strict" adds ---------------------------------------------------


@rule(
    id="s3-versioning",
    severity="low",
    description="Buckets keep earlier versions of what is overwritten or deleted",
    references=("CKV_AWS_21", "S3.14"),
    stack=True,
)
def _versioning(resources: Sequence[tuple[str, str, Props]]) -> Iterator[tuple[str, str]]:
    buckets = [name for kind, name, _ in resources if kind == BUCKET]
    enabled = sum(1 for kind, _, props in resources if kind == VERSIONING
                  and (props.get("versioningConfiguration") or {}).get("status") == "Enabled")
    yield from _each_has(buckets, "buckets", enabled, "versioning enabled")


@rule(
    id="s3-access-logging",
    severity="low",
    description="Access to the results is logged (S3 server access logging to a log bucket)",
    references=("CKV_AWS_18", "S3.9"),
    stack=True,
)
def _access_logging(resources: Sequence[tuple[str, str, Props]]) -> Iterator[tuple[str, str]]:
    buckets = [name for kind, name, _ in resources if kind == BUCKET]
    logged = sum(1 for kind, _, _ in resources if kind == BUCKET_LOGGING)
    # Every bucket but the one the logs go to.
    if not logged or logged < len(buckets) - 1:
        for name in buckets:
            yield name, f"{len(buckets)} buckets but {logged} log their access"


@rule(
    id="s3-event-notifications",
    severity="low",
    description="Changes to every bucket are published as events (S3 event notifications)",
    references=("CKV2_AWS_62", "S3.11"),
    stack=True,
)
def _event_notifications(resources: Sequence[tuple[str, str, Props]]
                         ) -> Iterator[tuple[str, str]]:
    yield from _companions(resources, BUCKET, "buckets", {BUCKET_NOTIFICATION: "notifications"})


@rule(
    id="s3-cross-region-replication",
    severity="low",
    description="Every bucket is replicated to another region",
    references=("CKV_AWS_144", "S3.7"),
    stack=True,
)
def _replication(resources: Sequence[tuple[str, str, Props]]) -> Iterator[tuple[str, str]]:
    yield from _companions(resources, BUCKET, "buckets", {BUCKET_REPLICATION: "replication"})


@rule(
    id="vpc-flow-logs",
    severity="low",
    description="A VPC the stack creates logs its flows",
    references=("CKV2_AWS_11", "EC2.6"),
    stack=True,
)
def _flow_logs(resources: Sequence[tuple[str, str, Props]]) -> Iterator[tuple[str, str]]:
    yield from _companions(resources, VPC, "VPCs", {FLOW_LOG: "flow logs"})


@rule(
    id="ecs-container-insights",
    severity="low",
    resource_types=(CLUSTER,),
    description="ECS clusters have Container Insights",
    references=("CKV_AWS_65", "ECS.12"),
)
def _container_insights(props: Props) -> Iterator[str]:
    settings = {s.get("name"): s.get("value") for s in _as_list(props.get("settings"))}
    if settings.get("containerInsights") not in ("enabled", "enhanced"):
        yield "Container Insights is off"


@rule(
    id="logs-customer-key",
    severity="low",
    resource_types=(LOG_GROUP,),
    description="Log groups are encrypted with a customer-managed KMS key",
    references=("CKV_AWS_158",),
)
def _logs_key(props: Props) -> Iterator[str]:
    if not props.get("kmsKeyId"):
        yield "encrypted with CloudWatch's own key, not a customer-managed one"


@rule(
    id="secret-customer-key",
    severity="low",
    resource_types=(SECRET,),
    description="Secrets are encrypted with a customer-managed KMS key",
    references=("CKV_AWS_149",),
)
def _secret_key(props: Props) -> Iterator[str]:
    if not props.get("kmsKeyId"):
        yield "encrypted with the AWS-managed aws/secretsmanager key"


@rule(
    id="s3-customer-key",
    severity="low",
    description="Buckets (but an access-log target, which takes SSE-S3 only) are encrypted "
    "with a customer-managed KMS key",
    references=("CKV_AWS_145",),
    stack=True,
)
def _s3_key(resources: Sequence[tuple[str, str, Props]]) -> Iterator[tuple[str, str]]:
    wanted = [name for kind, name, props in resources if kind == BUCKET
              and (props.get("tags") or {}).get(PURPOSE_TAG) != "access-logs"]
    keyed = sum(1 for kind, _, props in resources if kind == ENCRYPTION and any(
        (r.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm") == "aws:kms"
        for r in _as_list(props.get("rules"))))
    yield from _each_has(wanted, "buckets", keyed, "a customer-managed key")


@rule(
    id="s3-log-target-customer-key",
    severity="low",
    resource_types=(BUCKET,),
    description="An access-log target bucket is encrypted with a customer-managed KMS key",
    references=("CKV_AWS_145",),
)
def _log_target_key(props: Props) -> Iterator[str]:
    if (props.get("tags") or {}).get(PURPOSE_TAG) == "access-logs":
        yield "the access-log bucket uses SSE-S3, the only encryption S3 delivers logs to"


@rule(
    id="secret-rotation",
    severity="low",
    description="Secrets rotate automatically",
    references=("CKV2_AWS_57", "SecretsManager.1"),
    stack=True,
)
def _secret_rotation(resources: Sequence[tuple[str, str, Props]]) -> Iterator[tuple[str, str]]:
    yield from _companions(resources, SECRET, "secrets", {SECRET_ROTATION: "rotation"})


@rule(
    id="kms-key-rotation",
    severity="medium",
    resource_types=(KMS_KEY,),
    description="Customer-managed keys rotate",
    references=("CKV_AWS_7", "KMS.4"),
)
def _key_rotation(props: Props) -> Iterator[str]:
    if not _truthy(props.get("enableKeyRotation")):
        yield "the key never rotates"


# -- the runner image: its repository and its build ----------------------------------------


@rule(
    id="ecr-scan-on-push",
    severity="medium",
    resource_types=(ECR_REPOSITORY,),
    description="Images are scanned for vulnerabilities when pushed",
    references=("CKV_AWS_163", "ECR.1"),
)
def _scan_on_push(props: Props) -> Iterator[str]:
    if not _truthy((props.get("imageScanningConfiguration") or {}).get("scanOnPush")):
        yield "images are not scanned on push"


@rule(
    id="ecr-immutable-tags",
    severity="medium",
    resource_types=(ECR_REPOSITORY,),
    description="Image tags are immutable",
    references=("CKV_AWS_51", "ECR.2"),
)
def _immutable_tags(props: Props) -> Iterator[str]:
    if props.get("imageTagMutability") != "IMMUTABLE":
        yield "a tag can be moved to another image"


@rule(
    id="ecr-customer-key",
    severity="low",
    resource_types=(ECR_REPOSITORY,),
    description="Images are encrypted with a customer-managed KMS key",
    references=("CKV_AWS_136",),
)
def _ecr_customer_key(props: Props) -> Iterator[str]:
    configs = _as_list(props.get("encryptionConfigurations"))
    if not configs or configs[0].get("encryptionType") != "KMS" or not configs[0].get("kmsKey"):
        yield "images are encrypted with an AWS-managed key"


@rule(
    id="ecr-lifecycle-policy",
    severity="low",
    description="Every repository has a lifecycle policy (old images expire)",
    references=("ECR.3",),
    stack=True,
)
def _ecr_lifecycle(resources: Sequence[tuple[str, str, Props]]) -> Iterator[tuple[str, str]]:
    yield from _companions(resources, ECR_REPOSITORY, "repositories",
                           {ECR_LIFECYCLE: "a lifecycle policy"})


@rule(
    id="codebuild-privileged-image-builds-only",
    severity="high",
    resource_types=(CODEBUILD_PROJECT,),
    description="Privileged mode (Docker in the build) only for the runner image's build",
    # Narrower than CKV_AWS_316, which refuses privileged mode outright: see
    # codebuild-not-privileged.
    references=(),
)
def _privileged_only_for_images(props: Props) -> Iterator[str]:
    environment = props.get("environment") or {}
    buildspec = (props.get("source") or {}).get("buildspec")
    if _truthy(environment.get("privilegedMode")) and buildspec != BUILDSPEC:
        yield (f"privileged mode for buildspec {buildspec!r}: only the runner image's build "
               f"({BUILDSPEC}) needs Docker")


@rule(
    id="codebuild-not-privileged",
    severity="low",
    resource_types=(CODEBUILD_PROJECT,),
    description="Build projects do not run privileged",
    references=("CKV_AWS_316",),
)
def _build_not_privileged(props: Props) -> Iterator[str]:
    if _truthy((props.get("environment") or {}).get("privilegedMode")):
        yield "the build runs privileged"


@rule(
    id="codebuild-logs-retained",
    severity="medium",
    description="Builds log to one of the stack's log groups, which has a retention",
    references=("CKV_AWS_314",),
    stack=True,
)
def _build_logs(resources: Sequence[tuple[str, str, Props]]) -> Iterator[tuple[str, str]]:
    retained = {props.get("name") for kind, _, props in resources
                if kind == LOG_GROUP and props.get("retentionInDays")}
    for kind, name, props in resources:
        if kind != CODEBUILD_PROJECT:
            continue
        logs = (props.get("logsConfig") or {}).get("cloudwatchLogs") or {}
        if logs.get("status") != "ENABLED" or logs.get("groupName") not in retained:
            yield name, ("builds do not log to a log group of the stack with a retention "
                         f"(cloudwatchLogs: {dict(logs)})")


# -- IAM -----------------------------------------------------------------------------------


def _allows(props: Props) -> list[Mapping[str, Any]]:
    return [s for s in _statements(props.get("policy")) if s.get("Effect") == "Allow"]


@rule(
    id="iam-no-wildcard-action",
    severity="critical",
    resource_types=(ROLE_POLICY, IAM_POLICY),
    description="No '*' or 'service:*' actions",
    references=("CKV_AWS_62", "CKV_AWS_63", "CKV_AWS_1", "CKV_AWS_49", "IAM.1", "IAM.21"),
)
def _no_wildcard_action(props: Props) -> Iterator[str]:
    for statement in _allows(props):
        for action in _as_list(statement.get("Action")):
            if action == "*" or str(action).endswith(":*"):
                yield f"statement {statement.get('Sid', '')} allows {action}"
        if statement.get("NotAction"):
            yield f"statement {statement.get('Sid', '')} allows everything but some actions"


@rule(
    id="iam-scoped-resources",
    severity="high",
    resource_types=(ROLE_POLICY, IAM_POLICY),
    description="'*' resources only for actions AWS cannot scope",
    references=("CKV_AWS_355", "CKV_AWS_356"),
)
def _scoped_resources(props: Props) -> Iterator[str]:
    for statement in _allows(props):
        if "*" not in _as_list(statement.get("Resource")):
            continue
        loose = [a for a in _as_list(statement.get("Action")) if a not in UNSCOPABLE_ACTIONS]
        if loose:
            yield (f"statement {statement.get('Sid', '')} allows {', '.join(map(str, loose))} on "
                   "every resource; scope it to this stack's ARNs")


@rule(
    id="iam-passrole-scoped",
    severity="critical",
    resource_types=(ROLE_POLICY, IAM_POLICY),
    description="iam:PassRole is scoped",
    references=(
        "CKV_AWS_286", "CKV_AWS_287", "CKV_AWS_288", "CKV_AWS_289", "CKV_AWS_290", "CKV_AWS_107",
        "CKV_AWS_108", "CKV_AWS_109", "CKV_AWS_110", "CKV_AWS_111",
    ),
)
def _passrole_scoped(props: Props) -> Iterator[str]:
    for statement in _allows(props):
        actions = _as_list(statement.get("Action"))
        if any(a in ("iam:PassRole", "iam:*", "*") for a in actions) and "*" in _as_list(
                statement.get("Resource")):
            yield "iam:PassRole on every role allows privilege escalation"


@rule(
    id="iam-trust-services-only",
    severity="high",
    resource_types=(ROLE,),
    description="Roles trust specific AWS service principals",
    references=("CKV_AWS_60", "CKV_AWS_61"),
)
def _trust_specific(props: Props) -> Iterator[str]:
    for statement in _statements(props.get("assumeRolePolicy")):
        principal = statement.get("Principal")
        if statement.get("Effect") != "Allow":
            continue
        if principal == "*" or not isinstance(principal, Mapping):
            yield "the trust policy allows any principal"
            continue
        for kind, values in principal.items():
            if kind != "Service" or any(v == "*" for v in _as_list(values)):
                yield f"the trust policy allows {kind} {values}; only AWS services should assume it"


@rule(
    id="iam-no-admin-policy",
    severity="critical",
    resource_types=(POLICY_ATTACHMENT,),
    description="No administrative managed policies",
    references=("IAM.1", "CKV_AWS_274"),
)
def _no_admin_policy(props: Props) -> Iterator[str]:
    arn = str(props.get("policyArn", ""))
    if arn.rsplit("/", 1)[-1] in _ADMIN_POLICIES:
        yield f"{arn} grants administrative access"


# -- logs and tags -------------------------------------------------------------------------


@rule(
    id="logs-retention-set",
    severity="medium",
    resource_types=(LOG_GROUP,),
    description="Log groups have a retention period",
    references=("CKV_AWS_66",),
)
def _retention_set(props: Props) -> Iterator[str]:
    if not props.get("retentionInDays"):
        yield "log events are kept forever"


@rule(
    id="logs-retention-one-year",
    severity="low",
    resource_types=(LOG_GROUP,),
    description="Logs are kept at least a year",
    references=("CKV_AWS_338", "CloudWatch.16"),
)
def _retention_year(props: Props) -> Iterator[str]:
    days = props.get("retentionInDays") or 0
    if 0 < int(days) < 365:
        yield f"log events are kept {days} days, under a year"


@rule(
    id="tagged-for-sweep",
    severity="low",
    resource_types=TAGGABLE,
    description=f"Resources carry the {DEPLOYMENT_TAG} tag",
    references=(),
)
def _tagged(props: Props) -> Iterator[str]:
    tags = props.get("tags") or {}
    if not isinstance(tags, Mapping) or not tags.get(DEPLOYMENT_TAG):
        yield f"not tagged {DEPLOYMENT_TAG}: a leak sweep could not find it"


# -- the hosted service (mode="service") ---------------------------------------------


@rule(
    id="lb-http-open-for-redirect",
    severity="low",
    resource_types=(SECURITY_GROUP,),
    description="The service's load balancer opens port 80 to the internet only to send "
    "people to HTTPS",
    references=("CKV_AWS_260",),
)
def _lb_port_80(props: Props) -> Iterator[str]:
    if _role(props) != LOAD_BALANCER_ROLE:
        return
    for rule in _rules(props, "ingress"):
        if rule.get("fromPort") == 80 and _open_to_anywhere(rule):
            yield "port 80 is open to the internet"


@rule(
    id="lb-listener-https",
    severity="high",
    resource_types=(LISTENER,),
    description="The service's listeners answer HTTPS with TLS 1.2 or later; HTTP only "
    "redirects",
    references=("CKV_AWS_2", "CKV_AWS_103"),
)
def _listener_https(props: Props) -> Iterator[str]:
    actions = [a for a in _as_list(props.get("defaultActions")) if isinstance(a, Mapping)]
    if props.get("protocol") == "HTTP" and not all(a.get("type") == "redirect"
                                                   for a in actions):
        yield "the listener serves plain HTTP (sign-in links and tokens in the clear)"
    if props.get("protocol") == "HTTPS" and "TLS13" not in str(props.get("sslPolicy", "")):
        yield f"the listener's TLS policy {props.get('sslPolicy')!r} allows old versions"


@rule(
    id="lb-redirects-http",
    severity="high",
    description="The service's load balancer sends HTTP to HTTPS, and forwards nothing "
    "in plain HTTP",
    references=("CKV2_AWS_20", "CKV_AWS_378"),
    stack=True,
)
def _redirects_http(resources: Sequence[tuple[str, str, Props]]) -> Iterator[tuple[str, str]]:
    balancers = [name for kind, name, _ in resources if kind == LOAD_BALANCER]
    https = any(kind == LISTENER and props.get("protocol") == "HTTPS"
                for kind, _, props in resources)
    for name in balancers if not https else []:
        yield name, "no HTTPS listener: the service is served in plain HTTP"


@rule(
    id="lb-hardened",
    severity="medium",
    resource_types=(LOAD_BALANCER,),
    description="The load balancer drops invalid headers",
    references=("CKV_AWS_131",),
)
def _lb_hardened(props: Props) -> Iterator[str]:
    if not _truthy(props.get("dropInvalidHeaderFields")):
        yield "invalid HTTP headers are passed on (request smuggling)"


@rule(
    id="lb-deletion-protection",
    severity="low",
    resource_types=(LOAD_BALANCER,),
    description="The load balancer is protected from deletion",
    references=("CKV_AWS_150",),
)
def _lb_deletion_protection(props: Props) -> Iterator[str]:
    if not _truthy(props.get("enableDeletionProtection")):
        yield "deletion protection is off"


@rule(
    id="lb-access-logs",
    severity="low",
    resource_types=(LOAD_BALANCER,),
    description="The load balancer logs its requests to S3",
    references=("CKV_AWS_91",),
)
def _lb_access_logs(props: Props) -> Iterator[str]:
    logs = props.get("accessLogs")
    if not isinstance(logs, Mapping) or not _truthy(logs.get("enabled")):
        yield "no access logs"


@rule(
    id="lb-waf",
    severity="low",
    description="A public load balancer is behind a WAF web ACL",
    references=("CKV2_AWS_28",),
    stack=True,
)
def _lb_waf(resources: Sequence[tuple[str, str, Props]]) -> Iterator[tuple[str, str]]:
    yield from _companions(resources, LOAD_BALANCER, "load balancers",
                           {"aws:wafv2/webAclAssociation:WebAclAssociation": "web ACL"})


@rule(
    id="rds-encrypted-private",
    severity="critical",
    resource_types=(DB_INSTANCE,),
    description="The database is encrypted, not public, and keeps automated backups",
    references=("CKV_AWS_16", "CKV_AWS_17", "CKV_AWS_133", "RDS.2", "RDS.3"),
)
def _rds_encrypted_private(props: Props) -> Iterator[str]:
    if not _truthy(props.get("storageEncrypted")):
        yield "storage is not encrypted"
    if _truthy(props.get("publiclyAccessible")):
        yield "the database is publicly accessible"
    if not props.get("backupRetentionPeriod"):
        yield "no automated backups"
    if props.get("password") or not _truthy(props.get("manageMasterUserPassword")):
        yield "the master password is not kept (and rotated) by RDS in Secrets Manager"


@rule(
    id="rds-multi-az",
    severity="low",
    resource_types=(DB_INSTANCE,),
    description="The database has a standby in a second zone",
    references=("CKV_AWS_157",),
)
def _rds_multi_az(props: Props) -> Iterator[str]:
    if not _truthy(props.get("multiAz")):
        yield "a single zone: an outage of it stops the service"


@rule(
    id="rds-deletion-protection",
    severity="low",
    resource_types=(DB_INSTANCE,),
    description="The database is protected from deletion",
    references=("CKV_AWS_293",),
)
def _rds_deletion_protection(props: Props) -> Iterator[str]:
    if not _truthy(props.get("deletionProtection")):
        yield "deletion protection is off"


@rule(
    id="rds-enhanced-monitoring",
    severity="low",
    resource_types=(DB_INSTANCE,),
    description="The database reports OS metrics (enhanced monitoring)",
    references=("CKV_AWS_118",),
)
def _rds_monitoring(props: Props) -> Iterator[str]:
    if not props.get("monitoringInterval"):
        yield "enhanced monitoring is off"


@rule(
    id="rds-customer-key",
    severity="low",
    resource_types=(DB_INSTANCE,),
    description="Performance Insights' data is encrypted with the stack's key",
    references=("CKV_AWS_354",),
)
def _rds_key(props: Props) -> Iterator[str]:
    if _truthy(props.get("performanceInsightsEnabled")) and not props.get(
            "performanceInsightsKmsKeyId"):
        yield "Performance Insights uses the AWS-managed key"


@rule(
    id="ecs-service-no-public-ip",
    severity="medium",
    resource_types=(ECS_SERVICE,),
    description="The service's tasks have no public address",
    references=("CKV_AWS_333",),
)
def _service_no_public_ip(props: Props) -> Iterator[str]:
    network = props.get("networkConfiguration")
    if isinstance(network, Mapping) and _truthy(network.get("assignPublicIp")):
        yield "its tasks get public addresses"


#: Every rule, in the order declared above (each beside the check it names).
RULES: tuple[Rule, ...] = tuple(_REGISTERED)

def _service(config: DeploymentConfig) -> bool:
    return config.mode == "service"


def _http_only(config: DeploymentConfig) -> bool:
    return config.service is not None and config.service.http_only


def _db_multi_az(config: DeploymentConfig) -> bool:
    return config.service is not None and config.service.db_multi_az


def _baseline(config: DeploymentConfig) -> bool:
    """The rules security_profile="strict" satisfies are waived for "baseline", with why."""
    return config.security_profile == "baseline"


#: The deliberate exceptions, in one place. Each applies only while the config keeps
#: the cheaper choice; choosing the stricter option makes the finding, and the waiver, go.

WAIVERS: tuple[Waiver, ...] = (
    Waiver(
        rule_id="s3-versioning",
        reason="results expire after results_expire_days and a task never overwrites "
        "another's records; versions would double what is kept. security_profile='strict' "
        "turns versioning on.",
        applies=_baseline,
    ),
    Waiver(
        rule_id="s3-access-logging",
        reason="CloudTrail data events or the task records say who ran what; a log bucket "
        "is one more bucket to keep. security_profile='strict' adds one and logs to it.",
        applies=_baseline,
    ),
    Waiver(
        rule_id="vpc-flow-logs",
        reason="no port is open to the instances and egress is limited to egress_ports; "
        "flow logs cost ingestion per flow. security_profile='strict' turns them on.",
        applies=lambda config: _baseline(config) and config.vpc_id is None,
    ),
    *(Waiver(
        rule_id=rule_id,
        reason="AWS-managed keys encrypt it at no charge; a customer-managed key costs "
        "$1.00/month and its requests. security_profile='strict' adds one for the bucket, "
        "the logs and the secret.",
        applies=_baseline,
    ) for rule_id in ("logs-customer-key", "secret-customer-key", "s3-customer-key")),
    Waiver(
        rule_id="ecr-customer-key",
        reason="ECR's AES256 encryption is free; security_profile='strict' encrypts the "
        "images with the stack's key.",
        applies=_baseline,
    ),
    Waiver(
        rule_id="s3-event-notifications",
        reason="nothing in the stack consumes bucket events. security_profile='strict' "
        "sends them to the default EventBridge bus.",
        applies=_baseline,
    ),
    Waiver(
        rule_id="s3-cross-region-replication",
        reason="task records are working data that expire after results_expire_days; a "
        "replica would double their storage and need a bucket, key and role in a second "
        "region. No option turns it on.",
        applies=lambda config: True,
    ),
    Waiver(
        rule_id="s3-log-target-customer-key",
        reason="S3 server access logging delivers only to buckets encrypted with SSE-S3, so "
        "the log bucket of security_profile='strict' cannot use the stack's key.",
        applies=lambda config: True,
    ),
    Waiver(
        rule_id="secret-rotation",
        reason="an Anthropic API key cannot be minted by a rotation function (Anthropic's "
        "Admin API lists, renames and disables keys but does not create them); rotate it "
        "by deploying with a new key. Bedrock (auth='bedrock') has no secret at all. The "
        "service's settings (mode='service') are the same: OAuth client secrets and Stripe "
        "keys are made in their providers' consoles; rotate by up with new values. (The "
        "database's password is RDS's, which rotates it.)",
        applies=lambda config: True,
    ),
    Waiver(
        rule_id="lb-http-open-for-redirect",
        reason="port 80 answers only with a redirect to HTTPS, so a typed http:// address "
        "still arrives; with service.http_only it serves (rule lb-listener-https).",
        applies=_service,
    ),
    Waiver(
        rule_id="lb-listener-https",
        reason="service.http_only=true: plain HTTP on request, for a trial; sign-in links, "
        "tokens and cookies cross the network in the clear. Give service.domain with "
        "zone_id or certificate_arn for TLS.",
        applies=lambda config: _service(config) and _http_only(config),
    ),
    Waiver(
        rule_id="lb-redirects-http",
        reason="service.http_only=true (see lb-listener-https).",
        applies=lambda config: _service(config) and _http_only(config),
    ),
    Waiver(
        rule_id="lb-deletion-protection",
        reason="destroy() removes the whole stack, the load balancer with it; it holds no "
        "data. No option turns protection on.",
        applies=_service,
    ),
    Waiver(
        rule_id="rds-deletion-protection",
        reason="destroy() removes the whole stack; the database's automated backups are "
        "kept after it for service.db_backup_days (delete_automated_backups=false), to "
        "restore from. No option turns protection on.",
        applies=_service,
    ),
    Waiver(
        rule_id="lb-access-logs",
        reason="not built yet: an ALB delivers access logs to an SSE-S3 bucket whose policy "
        "names the region's Elastic Load Balancing account, a table per region. The "
        "service's own log has each task's start and end.",
        applies=_service,
    ),
    Waiver(
        rule_id="lb-waf",
        reason="a WAF web ACL costs $5/month and $1 per rule before requests; the service "
        "limits each user's requests itself (requests_per_minute) and answers nothing "
        "without a token or session. No option adds one yet.",
        applies=_service,
    ),
    Waiver(
        rule_id="rds-multi-az",
        reason="a standby doubles the database's price; an outage of its zone stops the "
        "service until RDS restores it. service.db_multi_az=true adds the standby.",
        applies=lambda config: _service(config) and not _db_multi_az(config),
    ),
    Waiver(
        rule_id="rds-enhanced-monitoring",
        reason="its OS metrics are billed as CloudWatch Logs ingestion; CloudWatch's free "
        "RDS metrics remain. security_profile='strict' turns it on.",
        applies=lambda config: _service(config) and _baseline(config),
    ),
    Waiver(
        rule_id="rds-customer-key",
        reason="AWS-managed keys encrypt Performance Insights at no charge. "
        "security_profile='strict' uses the stack's key.",
        applies=lambda config: _service(config) and _baseline(config),
    ),
    Waiver(
        rule_id="ecs-service-no-public-ip",
        reason="with nat='none' the service's tasks reach the internet (sign-in providers, "
        "Stripe, AWS) through their own address; only the load balancer's group reaches "
        "them. Choose nat='single' or 'per-az' for private tasks.",
        applies=lambda config: _service(config) and config.nat == "none",
    ),
    Waiver(
        rule_id="codebuild-not-privileged",
        reason="CodeBuild runs Docker only in privileged mode, and build_image='remote' "
        "builds the runner image with Docker; the project runs only the packaged buildspec "
        "(rule codebuild-privileged-image-builds-only). build_image=True (local Docker) or "
        "image= needs no project.",
        applies=lambda config: config.image_mode == "remote",
    ),
    Waiver(
        rule_id="ecs-container-insights",
        reason="its metrics are billed as custom metrics while the cluster idles at zero "
        "instances for most of the day. security_profile='strict' turns it on.",
        applies=_baseline,
    ),
    Waiver(
        rule_id="lt-no-public-ip",
        reason="nat='none' (the default) saves the NAT gateway's $32.85/month: instances in "
        "public subnets reach the internet through their own address; no port is open to "
        "them. Choose nat='single' or 'per-az' for private instances.",
        applies=lambda config: config.nat == "none" and config.vpc_id is None,
    ),
    Waiver(
        rule_id="subnet-no-auto-public-ip",
        reason="with nat='none' the stack's public subnets give instances the address they "
        "reach the internet with. Choose nat='single' or 'per-az' for private subnets.",
        applies=lambda config: config.nat == "none" and config.vpc_id is None,
    ),
    Waiver(
        rule_id="ecs-read-only-root",
        reason="interactive_tasks=True adds the task definition interactive tasks run from: "
        "ECS Exec's agent is not supported with a read-only root file system (AWS's ECS "
        "Exec documentation). Other tasks keep a read-only root; interactive_tasks=False "
        "(the default) has no such definition.",
        applies=lambda config: config.interactive_tasks,
    ),
    Waiver(
        rule_id="logs-retention-one-year",
        reason="task logs are kept log_retention_days (30 by default) to keep storage cheap; "
        "set log_retention_days=365 or more where a year is required.",
        applies=lambda config: config.log_retention_days < 365,
    ),
)


def rules_by_id() -> dict[str, Rule]:
    return {rule.id: rule for rule in RULES}


def waiver_for(rule_id: str, config: DeploymentConfig | None) -> Waiver | None:
    """The waiver covering ``rule_id`` for ``config``; with no config known (the policy
    pack without one), a declared waiver applies whenever its rule is violated."""
    for waiver in WAIVERS:
        if waiver.rule_id == rule_id and (config is None or waiver.applies(config)):
            return waiver
    return None


def rule_hits(rule: Rule, resources: Sequence[tuple[str, str, Props]]
              ) -> Iterator[tuple[str, str]]:
    """``(resource name, message)`` for each violation of ``rule`` among ``resources``."""
    if rule.check is not None:
        for kind, name, props in resources:
            if kind in rule.resource_types:
                for message in rule.check(props):
                    yield name, message
    if rule.stack_check is not None:
        yield from rule.stack_check(resources)


def evaluate(
    resources: Sequence[tuple[str, str, Props]],
    config: DeploymentConfig | None,
    rules: Iterable[Rule] = RULES,
) -> list[Finding]:
    """Run ``rules`` on ``(type, name, props)`` triples; the core of both evaluators."""
    kinds = {name: kind for kind, name, _ in resources}
    findings: list[Finding] = []
    for rule in rules:
        hits = list(rule_hits(rule, resources))
        waiver = waiver_for(rule.id, config) if hits else None
        findings += [
            Finding(rule_id=rule.id, severity=rule.severity, references=rule.references,
                    resource=name, resource_type=kinds.get(name, ""), message=message,
                    mandatory=rule.mandatory, waiver=waiver.reason if waiver else None)
            for name, message in hits
        ]
    return findings


class ResourceLike(Protocol):
    """What the rules read of a resource: its type token, name and inputs."""

    @property
    def type(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def inputs(self) -> Mapping[str, Any]: ...


class PlanLike(Protocol):
    """What the rules read of a plan (the rules never import ``Plan``: they sit below it)."""

    @property
    def resources(self) -> Sequence[ResourceLike]: ...

    @property
    def config(self) -> DeploymentConfig: ...


def check_policies(plan: PlanLike) -> PolicyReport:
    """Every rule on every resource of ``plan``, with the declared waivers applied.

    >>> from rclaude_infra import DeploymentConfig, plan
    >>> report = check_policies(plan(DeploymentConfig(
    ...     nat="single", log_retention_days=365, security_profile="strict")))
    >>> report.ok, sorted({finding.rule_id for finding in report.waived})
    (True, ['s3-cross-region-replication', 's3-log-target-customer-key', 'secret-rotation'])
    """
    resources = [(r.type, r.name, r.inputs) for r in plan.resources]
    return PolicyReport(findings=tuple(evaluate(resources, plan.config)),
                        rules_checked=len(RULES))
