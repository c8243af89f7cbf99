"""The AWS half of ``Deployment.check()``: credentials, region, service-linked role,
quotas, and CodeBuild when the runner image is built in the account."""

from __future__ import annotations

import math
from typing import Any

from ..checks import OK, PROBLEM, WARNING, CheckItem
from ..config import DeploymentConfig
from . import error_code

#: EC2 vCPU quotas (Service Quotas codes): all standard spot requests, and running
#: on-demand standard (A, C, D, H, I, M, R, T, Z) instances.
SPOT_VCPU_QUOTA = "L-34B43A08"
ON_DEMAND_VCPU_QUOTA = "L-1216C47A"
#: The CodeBuild quota the image build runs under, by config ``arch``: its name in
#: Service Quotas (the codes are not documented; the names are, in the CodeBuild quotas).
CODEBUILD_QUOTAS = {
    "x86_64": "Concurrently running builds for Linux/Small environment",
    "arm64": "Concurrently running builds for ARM/Small environment",
}


#: The role ECS acts through for a cluster's capacity providers: AWS creates it with an
#: account's first cluster only when the caller may, and a cluster with capacity providers
#: fails to create without it ("Unable to assume the service linked role",
#: hashicorp/terraform-provider-aws#11417; shared/reference/ecs-runtime-facts.md).
ECS_SERVICE_LINKED_ROLE = "AWSServiceRoleForECS"
ECS_SERVICE = "ecs.amazonaws.com"
CREATE_ECS_ROLE = f"aws iam create-service-linked-role --aws-service-name {ECS_SERVICE}"


def ensure_ecs_service_linked_role(session: Any) -> str:
    """Make sure the account has ECS's service-linked role before the engine runs:
    ``"present"``, or ``"created"`` when these credentials created it. Raises
    :class:`~rclaude_infra.errors.ServiceLinkedRoleError` naming the one command that
    creates it when they may not, and
    :class:`~rclaude_infra.errors.CredentialsError` without credentials.

    It is the account's, not the stack's: ``destroy`` leaves it, as it leaves it for every
    other ECS cluster of the account."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from ..errors import CredentialsError, EngineError, ServiceLinkedRoleError

    iam = session.client("iam")
    try:
        iam.get_role(RoleName=ECS_SERVICE_LINKED_ROLE)
        return "present"
    except NoCredentialsError as exc:
        raise CredentialsError(f"no AWS credentials: {exc}; configure them (`aws "
                               "configure`, `aws sso login` or AWS_PROFILE)") from exc
    except ClientError as exc:
        if error_code(exc) not in ("NoSuchEntity", "AccessDenied", "AccessDeniedException"):
            raise EngineError(f"could not look up {ECS_SERVICE_LINKED_ROLE}: {exc}") from exc
        # Denied a look: creating it says whether it exists too.
    except BotoCoreError as exc:
        raise EngineError(f"could not look up {ECS_SERVICE_LINKED_ROLE}: {exc}") from exc
    try:
        iam.create_service_linked_role(AWSServiceName=ECS_SERVICE)
        return "created"
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if (error_code(exc) == "InvalidInput" and "has been taken" in message) or (
                error_code(exc) == "EntityAlreadyExists"):
            return "present"  # made meanwhile (by ECS, or another up)
        if error_code(exc) in ("AccessDenied", "AccessDeniedException"):
            raise ServiceLinkedRoleError(
                f"this account has no ECS service-linked role ({ECS_SERVICE_LINKED_ROLE}), "
                "which the cluster's capacity provider needs, and these credentials may not "
                f"create it ({exc}); someone allowed iam:CreateServiceLinkedRole runs once: "
                f"{CREATE_ECS_ROLE}", command=CREATE_ECS_ROLE) from exc
        raise EngineError(f"could not create {ECS_SERVICE_LINKED_ROLE}: {exc}") from exc
    except BotoCoreError as exc:
        raise EngineError(f"could not create {ECS_SERVICE_LINKED_ROLE}: {exc}") from exc


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
        iam.get_role(RoleName=ECS_SERVICE_LINKED_ROLE)
        items.append(CheckItem(name="ECS service-linked role", status=OK,
                               detail=f"{ECS_SERVICE_LINKED_ROLE} exists"))
    except ClientError as exc:
        missing = error_code(exc) == "NoSuchEntity"
        items.append(CheckItem(
            name="ECS service-linked role", status=WARNING,
            detail=(f"{ECS_SERVICE_LINKED_ROLE} does not exist yet" if missing
                    else str(exc)),
            fix="`up` creates it first if you may (iam:CreateServiceLinkedRole), else "
            f"stops before the engine runs; or run `{CREATE_ECS_ROLE}`",
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


def codebuild_checks(session: Any, config: DeploymentConfig) -> list[CheckItem]:
    """What a runner image built in the account needs: CodeBuild in the region, and a
    concurrent-build quota above zero for the environment the build uses (new accounts
    can start at 0; the first build then fails with AccountLimitExceededException)."""
    from botocore.exceptions import BotoCoreError, ClientError

    region = config.region
    items: list[CheckItem] = []
    try:
        session.client("codebuild", region_name=region).list_projects()
        items.append(CheckItem(name="CodeBuild", status=OK,
                               detail=f"available in {region} (builds the runner image)"))
    except ClientError as exc:
        items.append(CheckItem(name="CodeBuild", status=WARNING, detail=str(exc),
                               fix="allow codebuild:ListProjects to check"))
    except BotoCoreError as exc:
        items.append(CheckItem(
            name="CodeBuild", status=PROBLEM, detail=f"not reachable in {region}: {exc}",
            fix="choose a region with CodeBuild, or build the image with local Docker "
            "(build_image=True) or give one (image=)"))
        return items

    quota_name = CODEBUILD_QUOTAS[config.arch]
    try:
        pages = session.client("service-quotas", region_name=region).get_paginator(
            "list_service_quotas").paginate(ServiceCode="codebuild")
        value = next((q["Value"] for page in pages for q in page.get("Quotas", [])
                      if q.get("QuotaName") == quota_name), None)
    except (ClientError, BotoCoreError) as exc:
        items.append(CheckItem(name="CodeBuild build quota", status=WARNING, detail=str(exc),
                               fix="allow servicequotas:ListServiceQuotas to check"))
        return items
    if value is None:
        items.append(CheckItem(name="CodeBuild build quota", status=WARNING,
                               detail=f"no quota named {quota_name!r} in Service Quotas",
                               fix="check it in the console: Service Quotas > AWS CodeBuild"))
    else:
        enough = value >= 1
        items.append(CheckItem(
            name="CodeBuild build quota", status=OK if enough else PROBLEM,
            detail=f"{quota_name}: {math.floor(value)}",
            fix="" if enough else "request at least 1 in Service Quotas > AWS CodeBuild "
            f"> {quota_name!r} (new accounts can start at 0)",
        ))
    return items
