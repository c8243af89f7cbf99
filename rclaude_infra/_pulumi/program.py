"""The Pulumi program: the whole ECS-on-EC2 stack as one function of the config.

It serves three callers: the Automation API's inline program, ``pulumi up`` from the
repository root (``programs/ecs_ec2``), and the offline plan, which runs it under the
Pulumi runtime's mocks. Everything is a plain ``pulumi_aws`` resource inside one
:class:`RclaudeStack` component, so a plan shows each one and cost and policy can read it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from ..config import DEPLOYMENT_TAG, PURPOSE_TAG, DeploymentConfig
from ..image_source import image_source
from ..tasks.agent import CLAUDE_CODE_VERSION
from .documents import (
    HOST_NOTICE_DIR,
    RUNNER_CONTAINER,
    WRITABLE_VOLUMES,
    container_definitions,
    execution_policy,
    flow_logs_policy,
    key_policy,
    policy_document,
    task_policy,
    trust_policy,
    user_data,
)
from .image_build import RemoteImage, remote_image, runner_repository

COMPONENT_TYPE = "rclaude:infra:Stack"
MANAGED_BY_TAG = "rclaude:managed-by"
VPC_CIDR = "10.0.0.0/16"
_AMI_PARAMETERS = {
    "x86_64": "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
    "arm64": "/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id",
}
_ECR_IMAGE_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repo>[^:@]+)"
)
#: The runner image's build context: the installed package directory itself (a wheel's as
#: much as a checkout's), with its Dockerfile inside.
IMAGE_CONTEXT = Path(__file__).resolve().parents[1]
RUNNER_DOCKERFILE = Path(__file__).resolve().parent / "runner" / "Dockerfile"


def ami_parameter(arch: str) -> str:
    """The public SSM parameter holding the current ECS-optimized AL2023 AMI for ``arch``."""
    return _AMI_PARAMETERS[arch]


#: Per sign-in mode that keeps a credential: the Pulumi resource name's part, the secret's
#: name prefix part and what it holds.
_CREDENTIAL_SECRETS = {
    "api-key": ("anthropic-api-key", "Anthropic API key"),
    "oauth-token": ("claude-oauth-token", "Claude OAuth token (claude setup-token)"),
}


class RclaudeStack(pulumi.ComponentResource):
    """Every resource of one deployment, grouped under one parent.

    Attributes hold the resources other code reads (cluster, bucket, roles, ...);
    :attr:`outputs` is what the stack exports.
    """

    def __init__(
        self,
        name: str,
        config: DeploymentConfig,
        *,
        credential: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        self._name = name
        self._config = config
        self._prefix = f"rclaude-{name}"
        self._child = pulumi.ResourceOptions(parent=self)
        self.tags = {
            **config.tags,
            DEPLOYMENT_TAG: name,
            MANAGED_BY_TAG: "rclaude-infra",
        }
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self._account_id = aws.get_caller_identity_output(opts=invoke).account_id
        self._partition = aws.get_partition_output(opts=invoke).partition

        self.key = self._stack_key() if config.security_profile == "strict" else None
        self.log_group = aws.cloudwatch.LogGroup(
            f"{self._prefix}-logs",
            name=f"/rclaude/{name}",
            retention_in_days=config.log_retention_days,
            kms_key_id=self._key_arn(),
            tags=self.tags,
            opts=self._child,
        )
        self._results_bucket()
        self._credential_secret(credential)
        vpc_id, instance_subnets, self.task_subnet_ids = self._network()
        self.security_group = self._security_group(vpc_id)
        self.cluster = aws.ecs.Cluster(
            f"{self._prefix}-cluster",
            settings=[{"name": "containerInsights", "value": (
                "enabled" if config.security_profile == "strict" else "disabled")}],
            tags=self.tags,
            opts=self._child,
        )
        self._instances(instance_subnets)
        self._capacity()
        self.image_build: RemoteImage | None = None
        image_uri, ecr_repository_arn = self._image()
        self._roles(ecr_repository_arn)
        self._task_definition(image_uri)

        self.outputs: dict[str, pulumi.Input[Any]] = {
            "deployment": name,
            "region": config.region,
            "cluster_name": self.cluster.name,
            "cluster_arn": self.cluster.arn,
            "capacity_provider": self.capacity_provider.name,
            "task_definition_family": self.task_definition.family,
            "task_definition_arn": self.task_definition.arn,
            "container_name": RUNNER_CONTAINER,
            "bucket": self.bucket.bucket,
            "log_group": self.log_group.name,
            "subnet_ids": self.task_subnet_ids,
            "security_group_id": self.security_group.id,
            "task_role_arn": self.task_role.arn,
            # The first half of each run's aws:userid (see tasks.layout.RUNS_DIR).
            "task_role_id": self.task_role.unique_id,
            "execution_role_arn": self.execution_role.arn,
            "secret_arn": self.secret.arn if self.secret is not None else None,
            "image": image_uri,
        }
        if self.image_build is not None:
            self.outputs["image_build_project"] = self.image_build.project
            self.outputs["image_source_key"] = self.image_build.source_key
        self.register_outputs(self.outputs)

    # -- storage and secrets -------------------------------------------------

    def _stack_key(self) -> aws.kms.Key:
        """The customer-managed key of a strict stack: the bucket, the logs and the secret
        are encrypted with it; rotated yearly; usable by this deployment's roles only."""
        key = aws.kms.Key(
            f"{self._prefix}-key",
            description=f"rclaude-infra {self._name}: results, logs and the credential",
            enable_key_rotation=True,
            deletion_window_in_days=7,
            policy=pulumi.Output.all(self._account_id, self._partition).apply(
                lambda args: key_policy(args[0], args[1], self._config.region, self._name)),
            tags=self.tags,
            opts=self._child,
        )
        aws.kms.Alias(f"{self._prefix}-key", name=f"alias/rclaude-{self._name}",
                      target_key_id=key.key_id, opts=self._child)
        return key

    def _key_arn(self) -> pulumi.Input[str] | None:
        return self.key.arn if self.key is not None else None

    def _results_bucket(self) -> None:
        cfg = self._config
        strict = cfg.security_profile == "strict"
        self.access_logs: aws.s3.Bucket | None = None
        if strict:
            # Where S3 writes who read and wrote the results (server access logging).
            self.access_logs = self._hardened_bucket(
                "access-logs", expire_days=cfg.log_retention_days, versioned=True,
                writer=("logging.s3.amazonaws.com", "s3:PutObject"))
        self.bucket = self._hardened_bucket(
            "results", expire_days=cfg.results_expire_days, prefix="tasks/",
            retain=cfg.retain_results, versioned=strict)
        if self.access_logs is not None:
            aws.s3.BucketLogging(
                f"{self._prefix}-results-logging",
                bucket=self.bucket.id,
                target_bucket=self.access_logs.id,
                target_prefix="results/",
                opts=self._child,
            )

    def _hardened_bucket(self, part: str, *, expire_days: int, prefix: str = "",
                         retain: bool = False, versioned: bool = False,
                         writer: tuple[str, str] | None = None) -> aws.s3.Bucket:
        """A bucket with its public access block, ownership, encryption, lifecycle and a
        TLS-only policy (and, when given, the one AWS service ``writer`` may write to it);
        with ``versioned``, versioning, old versions expiring like current ones."""
        name = f"{self._prefix}-{part}"
        bucket = aws.s3.Bucket(
            name,
            force_destroy=not retain,
            tags={**self.tags, PURPOSE_TAG: part},
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=retain),
        )
        access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self._child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=self._child,
        )
        # The stack key, but for a log target: S3 delivers access logs only to SSE-S3.
        key = self._key_arn() if writer is None else None
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[{
                "apply_server_side_encryption_by_default": (
                    {"sse_algorithm": "AES256"} if key is None
                    else {"sse_algorithm": "aws:kms", "kms_master_key_id": key}),
                "bucket_key_enabled": True,
            }],
            opts=self._child,
        )
        expire: Any = {
            "id": "expire-task-results" if part == "results" else f"expire-{part}",
            "status": "Enabled",
            "filter": {"prefix": prefix},
            "expiration": {"days": expire_days},
        }
        if versioned:
            aws.s3.BucketVersioning(
                f"{name}-versioning",
                bucket=bucket.id,
                versioning_configuration={"status": "Enabled"},
                opts=self._child,
            )
            expire["noncurrent_version_expiration"] = {"noncurrent_days": expire_days}
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                expire,
                {
                    "id": "abort-incomplete-uploads",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
                },
            ],
            opts=self._child,
        )

        def policy(args: list[str]) -> str:
            arn, account = args
            statements: list[dict[str, Any]] = [{
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }]
            if writer is not None:
                service, action = writer
                statements.append({
                    "Sid": "ServiceWrites",
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": action,
                    "Resource": f"{arn}/*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account}},
                })
            return policy_document(*statements)

        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, self._account_id).apply(policy),
            # S3 refuses a bucket policy while the public access block is being applied.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[access_block]),
        )
        if self._config.security_profile == "strict":
            # Every change to the bucket becomes an event on the account's default
            # EventBridge bus (free for AWS service events), for whatever watches it.
            aws.s3.BucketNotification(f"{name}-events", bucket=bucket.id, eventbridge=True,
                                      opts=self._child)
        return bucket

    def _credential_secret(self, credential: pulumi.Input[str] | None) -> None:
        """The secret holding the tasks' Claude credential (none with Bedrock: the task
        role signs its requests)."""
        self.secret: aws.secretsmanager.Secret | None = None
        if self._config.auth not in _CREDENTIAL_SECRETS:
            return
        part, what = _CREDENTIAL_SECRETS[self._config.auth]
        self.secret = aws.secretsmanager.Secret(
            f"{self._prefix}-{part}",
            name_prefix=f"rclaude/{self._name}/{part}-",
            description=f"{what} for rclaude-infra deployment {self._name}",
            # Deleted at once on destroy, so a stack of the same name can be made again.
            recovery_window_in_days=0,
            kms_key_id=self._key_arn(),
            tags=self.tags,
            opts=self._child,
        )
        if credential is not None:
            aws.secretsmanager.SecretVersion(
                f"{self._prefix}-{part}-value",
                secret_id=self.secret.id,
                secret_string=pulumi.Output.secret(credential),
                opts=self._child,
            )

    # -- network ---------------------------------------------------------------

    def _network(
        self,
    ) -> tuple[pulumi.Input[str], list[pulumi.Output[str]] | list[str], Any]:
        """VPC, subnets and routes; returns (vpc id, instance subnets, task subnets)."""
        cfg = self._config
        if cfg.vpc_id is not None:
            subnets = list(cfg.subnet_ids)
            return cfg.vpc_id, subnets, subnets

        zones = aws.get_availability_zones_output(
            state="available", opts=pulumi.InvokeOutputOptions(parent=self)
        ).names
        vpc = aws.ec2.Vpc(
            f"{self._prefix}-vpc",
            cidr_block=VPC_CIDR,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**self.tags, "Name": f"{self._prefix}-vpc"},
            opts=self._child,
        )
        # The VPC's default security group, taken over with no rules: AWS's default lets
        # every member reach every other (Checkov CKV2_AWS_12, Security Hub EC2.2).
        aws.ec2.DefaultSecurityGroup(
            f"{self._prefix}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags={**self.tags, "Name": f"{self._prefix}-default (no rules)"},
            opts=self._child,
        )
        if cfg.security_profile == "strict":
            self._flow_logs(vpc)
        gateway = aws.ec2.InternetGateway(
            f"{self._prefix}-igw",
            vpc_id=vpc.id,
            tags={**self.tags, "Name": f"{self._prefix}-igw"},
            opts=self._child,
        )
        public_routes = aws.ec2.RouteTable(
            f"{self._prefix}-public",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
            tags={**self.tags, "Name": f"{self._prefix}-public"},
            opts=self._child,
        )
        public: list[aws.ec2.Subnet] = []
        for i in range(cfg.az_count):
            subnet = aws.ec2.Subnet(
                f"{self._prefix}-public-{i}",
                vpc_id=vpc.id,
                cidr_block=f"10.0.{i * 16}.0/20",
                availability_zone=zones[i],
                # Without NAT the instances reach the internet through their own address.
                map_public_ip_on_launch=cfg.nat == "none",
                tags={**self.tags, "Name": f"{self._prefix}-public-{i}"},
                opts=self._child,
            )
            aws.ec2.RouteTableAssociation(
                f"{self._prefix}-public-{i}",
                subnet_id=subnet.id,
                route_table_id=public_routes.id,
                opts=self._child,
            )
            public.append(subnet)
        if cfg.nat == "none":
            ids = [s.id for s in public]
            return vpc.id, ids, ids

        nat_count = 1 if cfg.nat == "single" else cfg.az_count
        nat_ids = []
        for i in range(nat_count):
            address = aws.ec2.Eip(
                f"{self._prefix}-nat-{i}",
                domain="vpc",
                tags={**self.tags, "Name": f"{self._prefix}-nat-{i}"},
                opts=self._child,
            )
            nat = aws.ec2.NatGateway(
                f"{self._prefix}-nat-{i}",
                allocation_id=address.id,
                subnet_id=public[i].id,
                tags={**self.tags, "Name": f"{self._prefix}-nat-{i}"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
            )
            nat_ids.append(nat.id)
        private_ids = []
        for i in range(cfg.az_count):
            subnet = aws.ec2.Subnet(
                f"{self._prefix}-private-{i}",
                vpc_id=vpc.id,
                cidr_block=f"10.0.{128 + i * 16}.0/20",
                availability_zone=zones[i],
                map_public_ip_on_launch=False,
                tags={**self.tags, "Name": f"{self._prefix}-private-{i}"},
                opts=self._child,
            )
            routes = aws.ec2.RouteTable(
                f"{self._prefix}-private-{i}",
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat_ids[i % nat_count]}],
                tags={**self.tags, "Name": f"{self._prefix}-private-{i}"},
                opts=self._child,
            )
            aws.ec2.RouteTableAssociation(
                f"{self._prefix}-private-{i}",
                subnet_id=subnet.id,
                route_table_id=routes.id,
                opts=self._child,
            )
            private_ids.append(subnet.id)
        return vpc.id, private_ids, private_ids

    def _flow_logs(self, vpc: aws.ec2.Vpc) -> None:
        """Every flow of the VPC, accepted and rejected, to a log group of the stack."""
        logs = aws.cloudwatch.LogGroup(
            f"{self._prefix}-flow-logs",
            name=f"/rclaude/{self._name}/flow-logs",
            retention_in_days=self._config.log_retention_days,
            kms_key_id=self._key_arn(),
            tags=self.tags,
            opts=self._child,
        )
        role = aws.iam.Role(
            f"{self._prefix}-flow-logs",
            description=f"rclaude-infra {self._name}: VPC flow logs write their log group",
            assume_role_policy=self._account_id.apply(
                lambda account: trust_policy("vpc-flow-logs.amazonaws.com", account)),
            tags=self.tags,
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{self._prefix}-flow-logs",
            role=role.id,
            policy=logs.arn.apply(flow_logs_policy),
            opts=self._child,
        )
        aws.ec2.FlowLog(
            f"{self._prefix}-flow-logs",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=logs.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=600,
            tags=self.tags,
            opts=self._child,
        )

    def _security_group(self, vpc_id: pulumi.Input[str]) -> aws.ec2.SecurityGroup:
        # No ingress at all: tasks only call out (git, the model API, AWS APIs);
        # operators reach instances and tasks through SSM and ECS Exec, not through ports.
        return aws.ec2.SecurityGroup(
            f"{self._prefix}-runner",
            description=f"rclaude-infra {self._name}: runner instances and tasks, no inbound",
            vpc_id=vpc_id,
            ingress=[],
            egress=[
                {
                    "description": f"outbound TCP {port} to the internet",
                    "protocol": "tcp",
                    "from_port": port,
                    "to_port": port,
                    "cidr_blocks": ["0.0.0.0/0"],
                }
                for port in self._config.egress_ports
            ],
            revoke_rules_on_delete=True,
            tags={**self.tags, "Name": f"{self._prefix}-runner"},
            opts=self._child,
        )

    # -- compute ---------------------------------------------------------------

    def _instances(self, subnet_ids: Any) -> None:
        cfg = self._config
        self.instance_role = aws.iam.Role(
            f"{self._prefix}-instance",
            description=f"rclaude-infra {self._name}: ECS container instances",
            assume_role_policy=trust_policy("ec2.amazonaws.com"),
            tags=self.tags,
            opts=self._child,
        )
        for policy in (
            "service-role/AmazonEC2ContainerServiceforEC2Role",
            "AmazonSSMManagedInstanceCore",
        ):
            aws.iam.RolePolicyAttachment(
                f"{self._prefix}-instance-{policy.rsplit('/', 1)[-1]}",
                role=self.instance_role.name,
                policy_arn=pulumi.Output.concat(
                    "arn:", self._partition, ":iam::aws:policy/", policy
                ),
                opts=self._child,
            )
        profile = aws.iam.InstanceProfile(
            f"{self._prefix}-instance",
            role=self.instance_role.name,
            tags=self.tags,
            opts=self._child,
        )
        public_ip = cfg.nat == "none" and cfg.vpc_id is None
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{self._prefix}-lt",
            description=f"rclaude-infra {self._name}: ECS-optimized AL2023 ({cfg.arch})",
            image_id=f"resolve:ssm:{ami_parameter(cfg.arch)}",
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                # 1 hop: containers on the docker bridge cannot reach instance credentials.
                http_put_response_hop_limit=1,
            ),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda",
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=cfg.root_volume_gb,
                    volume_type="gp3",
                    encrypted="true",
                    delete_on_termination="true",
                ),
            )],
            # Without NAT, instances in the stack's public subnets need their own address;
            # otherwise (private subnets, or a VPC we did not make) the subnet decides.
            network_interfaces=[aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                associate_public_ip_address="true",
                delete_on_termination="true",
                security_groups=[self.security_group.id],
            )] if public_ip else None,
            vpc_security_group_ids=None if public_ip else [self.security_group.id],
            user_data=self.cluster.name.apply(
                lambda cluster: user_data(cluster, f"{self._prefix}-runner", cfg.spot)),
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=self.tags)
                for kind in ("instance", "volume", "network-interface")
            ],
            update_default_version=True,
            tags=self.tags,
            opts=self._child,
        )
        self.auto_scaling_group = aws.autoscaling.Group(
            f"{self._prefix}-asg",
            min_size=cfg.min_instances,
            max_size=cfg.max_instances,
            vpc_zone_identifiers=subnet_ids,
            # Managed termination protection: ECS decides which instances may go.
            protect_from_scale_in=True,
            # destroy must not wait on scale-in-protected instances.
            force_delete=True,
            capacity_rebalance=cfg.spot,
            health_check_type="EC2",
            mixed_instances_policy=aws.autoscaling.GroupMixedInstancesPolicyArgs(
                instances_distribution=(
                    aws.autoscaling.GroupMixedInstancesPolicyInstancesDistributionArgs(
                        on_demand_base_capacity=cfg.on_demand_base,
                        on_demand_percentage_above_base_capacity=0 if cfg.spot else 100,
                        spot_allocation_strategy=(
                            "price-capacity-optimized" if cfg.spot else None
                        ),
                    )
                ),
                launch_template=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateArgs(
                    launch_template_specification=(
                        aws.autoscaling
                        .GroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecificationArgs(
                            launch_template_id=self.launch_template.id,
                            version=self.launch_template.latest_version.apply(str),
                        )
                    ),
                    overrides=[
                        aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArgs(
                            instance_type=t
                        )
                        for t in cfg.instance_types
                    ],
                ),
            ),
            tags=[
                aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=True)
                for key, value in {**self.tags, "AmazonECSManaged": "true"}.items()
            ],
            # The capacity provider owns the desired capacity once the group exists.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCapacity"]),
        )

    def _capacity(self) -> None:
        self.capacity_provider = aws.ecs.CapacityProvider(
            f"{self._prefix}-cp",
            auto_scaling_group_provider={
                "auto_scaling_group_arn": self.auto_scaling_group.arn,
                "managed_termination_protection": "ENABLED",
                "managed_draining": "ENABLED",
                "managed_scaling": {
                    "status": "ENABLED",
                    "target_capacity": 100,
                    "minimum_scaling_step_size": 1,
                    "maximum_scaling_step_size": min(self._config.max_instances, 10),
                    "instance_warmup_period": 60,
                },
            },
            tags=self.tags,
            opts=self._child,
        )
        aws.ecs.ClusterCapacityProviders(
            f"{self._prefix}-cluster-capacity",
            cluster_name=self.cluster.name,
            capacity_providers=[self.capacity_provider.name],
            default_capacity_provider_strategies=[
                {"capacity_provider": self.capacity_provider.name, "weight": 1, "base": 0}
            ],
            opts=self._child,
        )

    # -- image, roles, task definition -----------------------------------------

    def _image(self) -> tuple[pulumi.Input[str], pulumi.Input[str] | None]:
        """The runner image URI and, when it lives in ECR, its repository ARN."""
        cfg = self._config
        if cfg.image_mode == "remote":
            remote = remote_image(name=self._name, config=cfg, tags=self.tags,
                                  bucket=self.bucket, account_id=self._account_id,
                                  key_arn=self._key_arn(), opts=self._child)
            self.image_build = remote
            return remote.uri, remote.repository_arn
        if cfg.image_mode == "given":
            assert cfg.image is not None
            match = _ECR_IMAGE_RE.match(cfg.image)
            if match is None:
                return cfg.image, None
            arn = self._partition.apply(
                lambda partition: (
                    f"arn:{partition}:ecr:{match['region']}:{match['account']}:"
                    f"repository/{match['repo']}"
                )
            )
            return cfg.image, arn

        import pulumi_awsx as awsx

        # Before 0.2 the repository was an awsx component's child: the alias keeps it.
        earlier = pulumi.Alias(parent=pulumi.create_urn(f"{self._prefix}-runner",
                                                        "awsx:ecr:Repository", parent=self))
        self.repository = runner_repository(name=self._name, tags=self.tags, opts=self._child,
                                            key_arn=self._key_arn(),
                                            aliases=[earlier])
        image = awsx.ecr.Image(
            f"{self._prefix}-runner",
            repository_url=self.repository.repository_url,
            image_tag=image_source().tag(cfg.arch),
            context=str(IMAGE_CONTEXT),
            dockerfile=str(RUNNER_DOCKERFILE),
            args={"CLAUDE_CODE_VERSION": CLAUDE_CODE_VERSION},
            platform="linux/arm64" if cfg.arch == "arm64" else "linux/amd64",
            opts=self._child,
        )
        return image.image_uri, self.repository.arn

    def _roles(self, ecr_repository_arn: pulumi.Input[str] | None) -> None:
        trust = self._account_id.apply(lambda account: trust_policy("ecs-tasks.amazonaws.com",
                                                                    account))
        self.execution_role = aws.iam.Role(
            f"{self._prefix}-execution",
            description=f"rclaude-infra {self._name}: ECS agent pulls the image, writes logs",
            assume_role_policy=trust,
            tags=self.tags,
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{self._prefix}-execution",
            role=self.execution_role.id,
            policy=pulumi.Output.all(
                self.log_group.arn, self._secret_arn(), ecr_repository_arn, self._key_arn()
            ).apply(lambda args: execution_policy(*args)),
            opts=self._child,
        )

        self.task_role = aws.iam.Role(
            f"{self._prefix}-task",
            description=f"rclaude-infra {self._name}: the runner reads its spec, writes results",
            assume_role_policy=trust,
            tags=self.tags,
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{self._prefix}-task",
            role=self.task_role.id,
            policy=pulumi.Output.all(self.bucket.arn, self._partition, self._account_id,
                                     self._key_arn()).apply(
                lambda args: task_policy(self._config, self._name, *args)),
            opts=self._child,
        )

    def _secret_arn(self) -> pulumi.Input[str] | None:
        return self.secret.arn if self.secret is not None else None

    def _task_definition(self, image_uri: pulumi.Input[str]) -> None:
        cfg = self._config

        self.task_definition = aws.ecs.TaskDefinition(
            f"{self._prefix}-runner",
            family=f"{self._prefix}-runner",
            requires_compatibilities=["EC2"],
            # bridge: with metadata hop limit 1 the containers cannot reach IMDS.
            network_mode="bridge",
            cpu=str(cfg.task_cpu),
            memory=str(cfg.task_memory),
            execution_role_arn=self.execution_role.arn,
            task_role_arn=self.task_role.arn,
            runtime_platform={
                "operating_system_family": "LINUX",
                "cpu_architecture": "ARM64" if cfg.arch == "arm64" else "X86_64",
            },
            # Writable scratch space: the root file system is read-only.
            volumes=[
                aws.ecs.TaskDefinitionVolumeArgs(
                    name=volume,
                    docker_volume_configuration=(
                        aws.ecs.TaskDefinitionVolumeDockerVolumeConfigurationArgs(
                            scope="task", driver="local"
                        )
                    ),
                )
                for volume in WRITABLE_VOLUMES
            ] + [aws.ecs.TaskDefinitionVolumeArgs(name="spot-notice",
                                                  host_path=HOST_NOTICE_DIR)],
            container_definitions=pulumi.Output.all(
                image_uri, self.bucket.bucket, self.log_group.name, self._secret_arn()
            ).apply(lambda args: container_definitions(cfg, self._name, *args)),
            tags=self.tags,
            opts=self._child,
        )


def define_stack(
    name: str, config: DeploymentConfig, *, credential: pulumi.Input[str] | None = None
) -> RclaudeStack:
    """Declare the whole stack and export its outputs. The body of every Pulumi program.

    The AWS provider is explicit so the stack's region is the config's, whatever
    ``aws:region`` the Pulumi stack or the environment says.
    """
    provider = aws.Provider(f"rclaude-{name}-aws", region=config.region)
    stack = RclaudeStack(
        name, config, credential=credential,
        opts=pulumi.ResourceOptions(providers={"aws": provider}),
    )
    for key, value in stack.outputs.items():
        pulumi.export(key, value)
    return stack


def program_from_stack_config() -> RclaudeStack:
    """The Pulumi program reading its config from the stack: ``rclaude:<field>`` values
    (``aws:region`` as a fallback), the stack name as the deployment name, and the Claude
    credential of the ``auth`` mode from its secret (``rclaude:anthropic_api_key`` or
    ``rclaude:claude_oauth_token``). Used by the Automation API and by ``pulumi up`` from
    the repository root alike. An update without the credential fails before anything is
    created: every task of such a stack would fail at start."""
    import attrs

    from ..config import CREDENTIAL_CONFIG, validate_name

    settings = pulumi.Config("rclaude")
    values = {
        field.name: raw
        for field in attrs.fields(DeploymentConfig)
        if (raw := settings.get(field.name)) is not None
    }
    if "region" not in values and (region := pulumi.Config("aws").get("region")):
        values["region"] = region
    config = DeploymentConfig.from_stack_config(values)
    key = CREDENTIAL_CONFIG.get(config.auth)
    credential = settings.get_secret(key) if key is not None else None
    if key is not None and credential is None and not pulumi.runtime.is_dry_run():
        raise pulumi.RunError(
            f"auth={config.auth!r} needs the secret rclaude:{key}: pulumi config set --secret "
            f"rclaude:{key} <{config.credential_env}> (or choose auth='bedrock')")
    return define_stack(validate_name(pulumi.get_stack()), config, credential=credential)
