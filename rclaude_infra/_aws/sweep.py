"""Leak sweep: find resources tagged for a deployment that its stack no longer knows, and
delete them on request.

Only what carries the tag ``rclaude:deployment=<name>`` is ever listed, so nothing
without the tag can be touched. Resources come from the Resource Groups Tagging API
(EC2, ECS, S3, CloudWatch Logs, Secrets Manager, ...), plus the two kinds it does not
list: auto scaling groups (filtered by tag) and IAM roles (global, read with their tags).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

from ..config import DEPLOYMENT_TAG
from ..errors import SweepError
from ..sweep_report import SweepReport, SweptResource, TaggedResource


def parse_arn(arn: str) -> TaggedResource:
    """Kind and id from an ARN (``arn:partition:service:region:account:resource``)."""
    parts = arn.split(":", 5)
    service, resource = parts[2], parts[5] if len(parts) > 5 else ""
    if service == "s3":
        return TaggedResource(arn=arn, kind="s3:bucket", id=resource)
    if service == "autoscaling":
        return TaggedResource(arn=arn, kind="autoscaling:autoScalingGroup",
                              id=resource.rsplit("autoScalingGroupName/", 1)[-1])
    if service == "logs":
        return TaggedResource(arn=arn, kind="logs:log-group",
                              id=resource.removeprefix("log-group:").removesuffix(":*"))
    if service == "secretsmanager":
        return TaggedResource(arn=arn, kind="secretsmanager:secret", id=arn)
    kind, _, rest = resource.replace(":", "/", 1).partition("/")
    return TaggedResource(arn=arn, kind=f"{service}:{kind}", id=rest)


def find_tagged(session: Any, region: str, deployment: str) -> list[TaggedResource]:
    """Every resource in ``region`` (and IAM role) tagged for ``deployment``."""
    from botocore.exceptions import BotoCoreError, ClientError

    found: dict[str, TaggedResource] = {}
    try:
        tagging = session.client("resourcegroupstaggingapi", region_name=region)
        for page in tagging.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": DEPLOYMENT_TAG, "Values": [deployment]}]
        ):
            for mapping in page["ResourceTagMappingList"]:
                found[mapping["ResourceARN"]] = parse_arn(mapping["ResourceARN"])
        scaling = session.client("autoscaling", region_name=region)
        for page in scaling.get_paginator("describe_auto_scaling_groups").paginate(
            Filters=[{"Name": f"tag:{DEPLOYMENT_TAG}", "Values": [deployment]}]
        ):
            for group in page["AutoScalingGroups"]:
                found[group["AutoScalingGroupARN"]] = parse_arn(group["AutoScalingGroupARN"])
        iam = session.client("iam")
        for page in iam.get_paginator("list_roles").paginate(PathPrefix="/"):
            for role in page["Roles"]:
                if not role["RoleName"].startswith(f"rclaude-{deployment}-"):
                    continue  # names narrow the tag look-ups; the tag decides
                tags = iam.list_role_tags(RoleName=role["RoleName"])["Tags"]
                if {"Key": DEPLOYMENT_TAG, "Value": deployment} in tags:
                    found[role["Arn"]] = TaggedResource(arn=role["Arn"], kind="iam:role",
                                                        id=role["RoleName"])
        gone = _already_gone(session, region, list(found.values()))
    except (ClientError, BotoCoreError) as exc:
        raise SweepError(
            f"could not list the resources tagged {DEPLOYMENT_TAG}={deployment} in {region}: "
            f"{exc}. The sweep needs tag:GetResources, autoscaling:DescribeAutoScalingGroups, "
            "iam:ListRoles, iam:ListRoleTags, ec2:DescribeInstances and ecs:DescribeClusters"
        ) from exc
    return [r for arn, r in found.items() if arn not in gone]


def _already_gone(session: Any, region: str, resources: list[TaggedResource]) -> set[str]:
    """ARNs the tag index still lists after deletion: terminated instances, inactive
    clusters (AWS keeps both visible for a while)."""
    gone: set[str] = set()
    instances = {r.id: r.arn for r in resources if r.kind == "ec2:instance"}
    if instances:
        ec2 = session.client("ec2", region_name=region)
        for page in ec2.get_paginator("describe_instances").paginate(
            InstanceIds=list(instances)
        ):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    if instance["State"]["Name"] in ("shutting-down", "terminated"):
                        gone.add(instances[instance["InstanceId"]])
    clusters = [r.arn for r in resources if r.kind == "ecs:cluster"]
    for start in range(0, len(clusters), 100):
        described = session.client("ecs", region_name=region).describe_clusters(
            clusters=clusters[start:start + 100])["clusters"]
        gone |= {c["clusterArn"] for c in described if c["status"] == "INACTIVE"}
    return gone


# -- deleting, kind by kind ----------------------------------------------------------------


def _empty_and_delete_bucket(session: Any, region: str, r: TaggedResource) -> None:
    s3 = session.client("s3", region_name=region)
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=r.id):
        keys = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=r.id, Delete={"Objects": keys[start:start + 1000],
                                                   "Quiet": True})
    s3.delete_bucket(Bucket=r.id)


def _delete_role(session: Any, region: str, r: TaggedResource) -> None:
    iam = session.client("iam")
    for policy in iam.list_attached_role_policies(RoleName=r.id)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=r.id, PolicyArn=policy["PolicyArn"])
    for name in iam.list_role_policies(RoleName=r.id)["PolicyNames"]:
        iam.delete_role_policy(RoleName=r.id, PolicyName=name)
    for profile in iam.list_instance_profiles_for_role(RoleName=r.id)["InstanceProfiles"]:
        iam.remove_role_from_instance_profile(
            InstanceProfileName=profile["InstanceProfileName"], RoleName=r.id)
    iam.delete_role(RoleName=r.id)


def _stop_task(session: Any, region: str, r: TaggedResource) -> None:
    cluster = r.id.split("/", 1)[0]
    session.client("ecs", region_name=region).stop_task(
        cluster=cluster, task=r.arn, reason="rclaude-infra leak sweep")


Deleter = Callable[[Any, str, TaggedResource], None]

#: How each kind is deleted, in the order the sweep goes (work first, then what holds it).
DELETERS: dict[str, Deleter] = {
    "ecs:task": _stop_task,
    "autoscaling:autoScalingGroup": lambda s, region, r: s.client(
        "autoscaling", region_name=region).delete_auto_scaling_group(
        AutoScalingGroupName=r.id, ForceDelete=True),
    "ec2:instance": lambda s, region, r: s.client("ec2", region_name=region)
    .terminate_instances(InstanceIds=[r.id]),
    "ecs:cluster": lambda s, region, r: s.client("ecs", region_name=region)
    .delete_cluster(cluster=r.arn),
    "ec2:launch-template": lambda s, region, r: s.client("ec2", region_name=region)
    .delete_launch_template(LaunchTemplateId=r.id),
    "ec2:security-group": lambda s, region, r: s.client("ec2", region_name=region)
    .delete_security_group(GroupId=r.id),
    "s3:bucket": _empty_and_delete_bucket,
    "logs:log-group": lambda s, region, r: s.client("logs", region_name=region)
    .delete_log_group(logGroupName=r.id),
    "secretsmanager:secret": lambda s, region, r: s.client("secretsmanager", region_name=region)
    .delete_secret(SecretId=r.arn, ForceDeleteWithoutRecovery=True),
    "iam:role": _delete_role,
}


def sweep(
    session: Any,
    region: str,
    deployment: str,
    *,
    known: Iterable[str],
    dry_run: bool = True,
) -> SweepReport:
    """List (``dry_run``) or delete the tagged resources ``known`` does not name.

    ``known`` holds the ARNs or ids the stack still manages (from its state); an empty
    ``known`` means the stack is gone and everything tagged is a leak. ``session`` is a
    ``boto3.Session`` (a default one when ``None``).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    if session is None:
        import boto3

        session = boto3.Session()
    known_set: Collection[str] = set(known)
    tagged = find_tagged(session, region, deployment)
    leaked = [r for r in tagged if r.arn not in known_set and r.id not in known_set]
    order = list(DELETERS)
    leaked.sort(key=lambda r: (order.index(r.kind) if r.kind in order else len(order), r.arn))
    swept = []
    for resource in leaked:
        deleter = DELETERS.get(resource.kind)
        if deleter is None:
            outcome = "not supported: delete it in the console or with its VPC"
        elif dry_run:
            outcome = "would delete"
        else:
            try:
                deleter(session, region, resource)
                outcome = "deleted"
            except (ClientError, BotoCoreError) as exc:
                outcome = f"failed: {exc}"
        swept.append(SweptResource(resource=resource, outcome=outcome))
    return SweepReport(deployment=deployment, region=region, dry_run=dry_run,
                       swept=tuple(swept), kept=len(tagged) - len(leaked))
