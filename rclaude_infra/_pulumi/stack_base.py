"""What the parts of the stack's component share: the attributes its constructor sets
and the resources one part makes and another reads (declared here, so each part is
checked on its own)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from ..config import DeploymentConfig
from .documents import trust_policy
from .image_build import RemoteImage


class StackBase(pulumi.ComponentResource):
    _name: str
    _config: DeploymentConfig
    _prefix: str
    _child: pulumi.ResourceOptions
    tags: dict[str, str]
    _account_id: pulumi.Output[str]
    _partition: pulumi.Output[str]
    # storage and secrets
    key: aws.kms.Key | None
    log_group: aws.cloudwatch.LogGroup
    bucket: aws.s3.Bucket
    access_logs: aws.s3.Bucket | None
    secret: aws.secretsmanager.Secret | None
    # network and compute
    task_subnet_ids: Any
    #: The stack's own VPC's public subnets (the service's load balancer); none in a
    #: given VPC.
    public_subnet_ids: list[pulumi.Output[str]]
    #: The region's available zones, in the order the subnets use them.
    _zones: pulumi.Output[list[str]]
    security_group: aws.ec2.SecurityGroup
    cluster: aws.ecs.Cluster
    instance_role: aws.iam.Role
    launch_template: aws.ec2.LaunchTemplate
    auto_scaling_group: aws.autoscaling.Group
    capacity_provider: aws.ecs.CapacityProvider
    # what tasks run as and in
    image_build: RemoteImage | None
    repository: aws.ecr.Repository
    execution_role: aws.iam.Role
    task_role: aws.iam.Role
    task_definition: aws.ecs.TaskDefinition
    #: With ``interactive_tasks``: the definition interactive (ECS Exec) tasks run from.
    interactive_task_definition: aws.ecs.TaskDefinition | None
    #: With ``mode="service"``: the service's image (built beside the runner's).
    service_image_uri: pulumi.Input[str] | None
    # events
    task_events_queue: aws.sqs.Queue | None
    task_events_dead_letters: aws.sqs.Queue | None

    def _service_role(self, part: str, description: str, service: str,
                      policy: pulumi.Input[str]) -> aws.iam.Role:
        """A role only ``service`` of this account may assume, with its one inline
        ``policy``; both named ``rclaude-<name>-<part>``."""
        role = aws.iam.Role(
            f"{self._prefix}-{part}",
            description=f"rclaude-infra {self._name}: {description}",
            assume_role_policy=self._account_id.apply(
                lambda account: trust_policy(service, account)),
            tags=self.tags,
            opts=self._child,
        )
        aws.iam.RolePolicy(f"{self._prefix}-{part}", role=role.id, policy=policy,
                           opts=self._child)
        return role

    def _key_arn(self) -> pulumi.Input[str] | None:
        """The stack key's ARN (``security_profile="strict"``), for what it encrypts."""
        return self.key.arn if self.key is not None else None

    def _subnet(self, part: str, vpc_id: pulumi.Input[str], cidr: str, zone: pulumi.Input[str],
                route_table_id: pulumi.Input[str], *, public_ips: bool) -> aws.ec2.Subnet:
        """A subnet and its route table association, both ``rclaude-<name>-<part>``."""
        subnet = aws.ec2.Subnet(
            f"{self._prefix}-{part}",
            vpc_id=vpc_id,
            cidr_block=cidr,
            availability_zone=zone,
            map_public_ip_on_launch=public_ips,
            tags={**self.tags, "Name": f"{self._prefix}-{part}"},
            opts=self._child,
        )
        aws.ec2.RouteTableAssociation(f"{self._prefix}-{part}", subnet_id=subnet.id,
                                      route_table_id=route_table_id, opts=self._child)
        return subnet

    def _secret(self, part: str, description: str,
                value: pulumi.Input[str] | None) -> aws.secretsmanager.Secret:
        """A secret named ``rclaude/<name>/<part>-...`` (deleted at once on destroy, so a
        stack of the same name can be made again), with ``value`` when given."""
        secret = aws.secretsmanager.Secret(
            f"{self._prefix}-{part}",
            name_prefix=f"rclaude/{self._name}/{part}-",
            description=f"{description} for rclaude-infra deployment {self._name}",
            recovery_window_in_days=0,
            kms_key_id=self._key_arn(),
            tags=self.tags,
            opts=self._child,
        )
        if value is not None:
            aws.secretsmanager.SecretVersion(
                f"{self._prefix}-{part}-value",
                secret_id=secret.id,
                secret_string=pulumi.Output.secret(value),
                opts=self._child,
            )
        return secret
