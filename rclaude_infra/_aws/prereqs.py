"""The AWS half of ``Deployment.check()``: credentials, region, service-linked role, quota."""

from __future__ import annotations

import math
from typing import Any

from ..checks import OK, PROBLEM, WARNING, CheckItem
from ..config import DeploymentConfig

#: EC2 vCPU quotas (Service Quotas codes): all standard spot requests, and running
#: on-demand standard (A, C, D, H, I, M, R, T, Z) instances.
SPOT_VCPU_QUOTA = "L-34B43A08"
ON_DEMAND_VCPU_QUOTA = "L-1216C47A"


def aws_checks(session: Any, config: DeploymentConfig) -> list[CheckItem]:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    region = config.region
    items: list[CheckItem] = []
    try:
        identity = session.client("sts", region_name=region).get_caller_identity()
    except (NoCredentialsError, ClientError, BotoCoreError) as exc:
        items.append(CheckItem(
            name="AWS credentials", status=PROBLEM, detail=str(exc),
            fix="configure credentials: `aws configure`, `aws sso login`, or AWS_PROFILE",
        ))
        return items  # nothing else can be asked without them
    items.append(CheckItem(name="AWS credentials", status=OK,
                           detail=f"account {identity['Account']} as {identity['Arn']}"))

    try:
        regions = session.client("ec2", region_name=region).describe_regions(
            RegionNames=[region], AllRegions=True)["Regions"]
        status = regions[0].get("OptInStatus", "opt-in-not-required") if regions else "unknown"
        enabled = status in ("opt-in-not-required", "opted-in")
        items.append(CheckItem(
            name="region enabled", status=OK if enabled else PROBLEM,
            detail=f"{region}: {status}",
            fix="" if enabled else f"enable {region} in the console (Account > AWS Regions)",
        ))
    except (ClientError, BotoCoreError) as exc:
        items.append(CheckItem(name="region enabled", status=WARNING, detail=str(exc),
                               fix="allow ec2:DescribeRegions to check"))

    iam = session.client("iam")
    try:
        iam.get_role(RoleName="AWSServiceRoleForECS")
        items.append(CheckItem(name="ECS service-linked role", status=OK,
                               detail="AWSServiceRoleForECS exists"))
    except ClientError as exc:
        missing = exc.response.get("Error", {}).get("Code") == "NoSuchEntity"
        items.append(CheckItem(
            name="ECS service-linked role", status=WARNING,
            detail="AWSServiceRoleForECS does not exist yet" if missing else str(exc),
            fix="ECS creates it with the first cluster, if you may create it; or run "
            "`aws iam create-service-linked-role --aws-service-name ecs.amazonaws.com`",
        ))

    needed = config.max_instances * max(t.vcpu for t in config.instance_specs)
    code, what = (SPOT_VCPU_QUOTA, "spot") if config.spot else (ON_DEMAND_VCPU_QUOTA,
                                                                "on-demand")
    try:
        quota = session.client("service-quotas", region_name=region).get_service_quota(
            ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]
        enough = quota >= needed
        items.append(CheckItem(
            name=f"{what} vCPU quota", status=OK if enough else PROBLEM,
            detail=f"{math.floor(quota)} vCPUs; max_instances needs up to {needed}",
            fix="" if enough else f"request an increase of quota {code} in Service Quotas, "
            "or lower max_instances",
        ))
    except (ClientError, BotoCoreError) as exc:
        items.append(CheckItem(name=f"{what} vCPU quota", status=WARNING, detail=str(exc),
                               fix="allow servicequotas:GetServiceQuota to check"))
    return items
