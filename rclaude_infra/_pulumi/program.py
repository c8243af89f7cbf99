"""The Pulumi program: the whole ECS-on-EC2 stack as one function of the config.

It serves three callers: the Automation API's inline program, ``pulumi up`` from the
repository root (``programs/ecs_ec2``), and the offline plan, which runs it under the
Pulumi runtime's mocks. Everything is a plain ``pulumi_aws`` resource inside one
:class:`RclaudeStack` component, so a plan shows each one and cost and policy can read it.
The component's parts are modules by concern: storage and secrets (``stack_storage``),
network (``stack_network``), instances (``stack_compute``) and what tasks run as and in
(``stack_tasks``); the IAM and container documents are pure functions (``documents``).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from ..config import DEPLOYMENT_TAG, DeploymentConfig
from .documents import (
    RUNNER_CONTAINER,
)
from .image_build import RemoteImage
from .stack_compute import ComputePart, ami_parameter
from .stack_events import EventsPart
from .stack_network import VPC_CIDR, NetworkPart
from .stack_service import ServicePart
from .stack_storage import StoragePart
from .stack_tasks import IMAGE_CONTEXT, RUNNER_DOCKERFILE, TaskPart

__all__ = ["COMPONENT_TYPE", "IMAGE_CONTEXT", "RUNNER_DOCKERFILE", "VPC_CIDR", "RclaudeStack",
           "ami_parameter", "define_stack", "program_from_stack_config"]

COMPONENT_TYPE = "rclaude:infra:Stack"
MANAGED_BY_TAG = "rclaude:managed-by"


class RclaudeStack(StoragePart, NetworkPart, ComputePart, TaskPart, EventsPart, ServicePart):
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
        service_settings: pulumi.Input[str] | None = None,
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
        self._task_events()

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
        if self.interactive_task_definition is not None:
            self.outputs["interactive_task_definition_arn"] = (
                self.interactive_task_definition.arn)
        if self.task_events_queue is not None and self.task_events_dead_letters is not None:
            self.outputs["task_events_queue_url"] = self.task_events_queue.url
            self.outputs["task_events_dead_letter_url"] = self.task_events_dead_letters.url
        if self.image_build is not None:
            self.outputs["image_build_project"] = self.image_build.project
            self.outputs["image_source_key"] = self.image_build.source_key
        # The service reaches the stack through these (RCLAUDE_STACK_OUTPUTS), so they are
        # complete before it is declared.
        self._service(vpc_id, dict(self.outputs), service_settings)
        if self.service_url is not None and self.database is not None:
            self.outputs["service_url"] = self.service_url
            self.outputs["service_image"] = self.service_image_uri
            self.outputs["service_database"] = self.database.address
        self.register_outputs(self.outputs)


def define_stack(
    name: str, config: DeploymentConfig, *, credential: pulumi.Input[str] | None = None,
    service_settings: pulumi.Input[str] | None = None,
) -> RclaudeStack:
    """Declare the whole stack and export its outputs. The body of every Pulumi program.

    The AWS provider is explicit so the stack's region is the config's, whatever
    ``aws:region`` the Pulumi stack or the environment says.
    """
    provider = aws.Provider(f"rclaude-{name}-aws", region=config.region)
    stack = RclaudeStack(
        name, config, credential=credential, service_settings=service_settings,
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

    from ..config import CREDENTIAL_CONFIG, SERVICE_SETTINGS_CONFIG, validate_name

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
    service_settings = None
    if config.mode == "service":
        service_settings = settings.get_secret(SERVICE_SETTINGS_CONFIG)
        if service_settings is None and not pulumi.runtime.is_dry_run():
            raise pulumi.RunError(
                f"mode='service' needs the secret rclaude:{SERVICE_SETTINGS_CONFIG} (the "
                "service's settings: rclaude-infra up sets it from RCLAUDE_SECRETS_KEY and "
                "the sign-in and Stripe variables of its environment)")
    return define_stack(validate_name(pulumi.get_stack()), config, credential=credential,
                        service_settings=service_settings)
