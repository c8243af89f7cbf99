"""The stack's network: its VPC, subnets, routes and NAT, flow logs (strict), the
runner's security group; or the subnets of an existing VPC.

A part of :class:`~rclaude_infra._pulumi.program.RclaudeStack`: its methods run in the
component's constructor, so each resource keeps its name and parent (and its URN).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from .documents import (
    flow_logs_policy,
)
from .stack_base import StackBase

VPC_CIDR = "10.0.0.0/16"


class NetworkPart(StackBase):
    def _network(
        self,
    ) -> tuple[pulumi.Input[str], list[pulumi.Output[str]] | list[str], Any]:
        """VPC, subnets and routes; returns (vpc id, instance subnets, task subnets)."""
        cfg = self._config
        if cfg.vpc_id is not None:
            subnets = list(cfg.subnet_ids)
            self.public_subnet_ids = []
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
            # Without NAT the instances reach the internet through their own address.
            public.append(self._subnet(f"public-{i}", vpc.id, f"10.0.{i * 16}.0/20", zones[i],
                                       public_routes.id, public_ips=cfg.nat == "none"))
        self.public_subnet_ids = [s.id for s in public]
        self._zones = zones
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
            routes = aws.ec2.RouteTable(
                f"{self._prefix}-private-{i}",
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat_ids[i % nat_count]}],
                tags={**self.tags, "Name": f"{self._prefix}-private-{i}"},
                opts=self._child,
            )
            private_ids.append(self._subnet(
                f"private-{i}", vpc.id, f"10.0.{128 + i * 16}.0/20", zones[i], routes.id,
                public_ips=False).id)
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
        role = self._service_role("flow-logs", "VPC flow logs write their log group",
                                  "vpc-flow-logs.amazonaws.com", logs.arn.apply(flow_logs_policy))
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
