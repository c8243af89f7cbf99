"""The stack's instances: their role and profile, the launch template, the auto scaling
group and the ECS capacity provider on it.

A part of :class:`~rclaude_infra._pulumi.program.RclaudeStack`: its methods run in the
component's constructor, so each resource keeps its name and parent (and its URN).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from .documents import (
    runner_families,
    trust_policy,
    user_data,
)
from .stack_base import StackBase

_AMI_PARAMETERS = {
    "x86_64": "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
    "arm64": "/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id",
}


def ami_parameter(arch: str) -> str:
    """The public SSM parameter holding the current ECS-optimized AL2023 AMI for ``arch``."""
    return _AMI_PARAMETERS[arch]


class ComputePart(StackBase):
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
                lambda cluster: user_data(cluster, runner_families(self._prefix, cfg),
                                          cfg.spot)),
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
