"""The leak sweep against moto's server: only tagged, unknown resources are touched."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from moto_stack import MOTO_AMI

from rclaude_infra import Deployment, DeploymentConfig, SweepError
from rclaude_infra._aws.sweep import parse_arn


def _tags(name: str) -> list[dict[str, str]]:
    return [{"Key": "rclaude:deployment", "Value": name}, {"Key": "team", "Value": "ml"}]


def make_resources(aws: Any, name: str, *, tagged: bool) -> dict[str, str]:
    """One of each kind the sweep handles, tagged for ``name`` or not at all."""
    tags = _tags(name) if tagged else [{"Key": "team", "Value": "ml"}]
    suffix = uuid.uuid4().hex[:8]
    ec2, s3, logs = aws.client("ec2"), aws.client("s3"), aws.client("logs")
    iam, ecs, scaling = aws.client("iam"), aws.client("ecs"), aws.client("autoscaling")
    secrets = aws.client("secretsmanager")
    image = MOTO_AMI
    instance = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )["Instances"][0]["InstanceId"]
    group = ec2.create_security_group(
        GroupName=f"g-{suffix}", Description="runner",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}])["GroupId"]
    bucket = f"rclaude-{name}-results-{suffix}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    s3.put_object(Bucket=bucket, Key="tasks/t1/result.json", Body=b"{}")
    log_group = f"/rclaude/{name}-{suffix}"
    logs.create_log_group(logGroupName=log_group, tags={t["Key"]: t["Value"] for t in tags})
    role = f"rclaude-{name}-task-{suffix}"
    iam.create_role(RoleName=role, AssumeRolePolicyDocument="{}", Tags=tags)
    iam.put_role_policy(RoleName=role, PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    cluster = ecs.create_cluster(
        clusterName=f"rclaude-{name}-{suffix}",
        tags=[{"key": t["Key"], "value": t["Value"]} for t in tags],
    )["cluster"]["clusterArn"]
    ec2.create_launch_template(LaunchTemplateName=f"lt-{suffix}",
                               LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"})
    asg = f"rclaude-{name}-asg-{suffix}"
    scaling.create_auto_scaling_group(
        AutoScalingGroupName=asg, MinSize=0, MaxSize=1,
        LaunchTemplate={"LaunchTemplateName": f"lt-{suffix}"}, AvailabilityZones=["us-east-1a"],
        Tags=[{**t, "PropagateAtLaunch": True} for t in tags],
    )
    secret = secrets.create_secret(Name=f"rclaude/{name}/key-{suffix}", Tags=tags)["ARN"]
    return {"instance": instance, "group": group, "bucket": bucket, "log_group": log_group,
            "role": role, "cluster": cluster, "asg": asg, "secret": secret}


def exists(aws: Any, made: dict[str, str]) -> dict[str, bool]:
    ec2, s3 = aws.client("ec2"), aws.client("s3")
    state = ec2.describe_instances(InstanceIds=[made["instance"]])[
        "Reservations"][0]["Instances"][0]["State"]["Name"]
    groups = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    log_groups = {g["logGroupName"] for g in aws.client("logs").describe_log_groups()["logGroups"]}
    roles = {r["RoleName"] for r in aws.client("iam").list_roles()["Roles"]}
    clusters = {c["clusterArn"] for c in aws.client("ecs").describe_clusters(
        clusters=[made["cluster"]])["clusters"] if c["status"] == "ACTIVE"}
    groups_asg = {g["AutoScalingGroupName"] for g in aws.client("autoscaling")
                  .describe_auto_scaling_groups()["AutoScalingGroups"]}
    secrets = {s["ARN"] for s in aws.client("secretsmanager").list_secrets()["SecretList"]}
    return {
        "instance": state not in ("shutting-down", "terminated"),
        "group": made["group"] in groups, "bucket": made["bucket"] in buckets,
        "log_group": made["log_group"] in log_groups, "role": made["role"] in roles,
        "cluster": made["cluster"] in clusters, "asg": made["asg"] in groups_asg,
        "secret": made["secret"] in secrets,
    }


def test_dry_run_lists_tagged_leaks_and_touches_nothing(aws: Any) -> None:
    name = f"dry{uuid.uuid4().hex[:6]}"
    made = make_resources(aws, name, tagged=True)
    report = Deployment(name).sweep(known=(), session=aws)
    kinds = {s.resource.kind for s in report.swept}
    assert kinds >= {"ec2:instance", "ec2:security-group", "s3:bucket", "logs:log-group",
                     "iam:role", "ecs:cluster", "autoscaling:autoScalingGroup",
                     "secretsmanager:secret"}
    assert all(s.outcome == "would delete" for s in report.swept)
    assert all(exists(aws, made).values())
    assert f"for deployment {name!r}" in str(report)
    assert json.loads(report.to_json())["dry_run"] is True


def test_sweep_deletes_only_unknown_tagged_resources(aws: Any) -> None:
    name = f"leak{uuid.uuid4().hex[:6]}"
    leaked = make_resources(aws, name, tagged=True)
    untagged = make_resources(aws, name, tagged=False)
    other = make_resources(aws, f"other{uuid.uuid4().hex[:6]}", tagged=True)
    # The stack still manages its bucket and its role: known by id, or by ARN.
    known = [leaked["bucket"], f"arn:aws:iam::123456789012:role/{leaked['role']}"]
    report = Deployment(name).sweep(known=known, dry_run=False, session=aws)
    assert report.failed == [], str(report)
    assert report.kept == 2
    left = exists(aws, leaked)
    assert left["bucket"] and left["role"]
    assert not any(v for k, v in left.items() if k not in ("bucket", "role")), left
    assert all(exists(aws, untagged).values())  # no tag: never touched
    assert all(exists(aws, other).values())     # another deployment's tag: never touched
    # Terminated instances and inactive clusters still answer the tag query; they are gone.
    again = Deployment(name).sweep(known=known, session=aws)
    assert again.swept == () and again.kept == 2


def test_listing_errors_are_translated(monkeypatch: pytest.MonkeyPatch, aws: Any) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    import boto3
    from botocore.config import Config

    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x",
                            region_name="us-east-1")
    original = session.client
    monkeypatch.setattr(session, "client", lambda *a, **k: original(
        *a, **k, config=Config(connect_timeout=1, retries={"max_attempts": 0})))
    with pytest.raises(SweepError, match="tag:GetResources"):
        Deployment("dev", DeploymentConfig()).sweep(known=(), session=session)


@pytest.mark.parametrize(("arn", "kind", "ident"), [
    ("arn:aws:ec2:us-east-1:1:instance/i-0abc", "ec2:instance", "i-0abc"),
    ("arn:aws:s3:::my-bucket", "s3:bucket", "my-bucket"),
    ("arn:aws:logs:us-east-1:1:log-group:/rclaude/dev", "logs:log-group", "/rclaude/dev"),
    ("arn:aws:logs:us-east-1:1:log-group:/rclaude/dev:*", "logs:log-group", "/rclaude/dev"),
    ("arn:aws:ecs:us-east-1:1:task/c1/abc", "ecs:task", "c1/abc"),
    ("arn:aws:autoscaling:us-east-1:1:autoScalingGroup:u-1:autoScalingGroupName/asg",
     "autoscaling:autoScalingGroup", "asg"),
])
def test_arn_parsing(arn: str, kind: str, ident: str) -> None:
    parsed = parse_arn(arn)
    assert (parsed.kind, parsed.id) == (kind, ident)


def test_the_sweep_verb_leaves_what_the_stack_manages_and_finds_the_rest(
        aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`rclaude-infra sweep`: what the stack's state holds (`pulumi stack export`) is
    known; the rest tagged for the deployment leaked. `--delete --yes` deletes it; once
    the stack is gone everything tagged is a leak."""
    import functools

    from fake_pulumi import FakePulumi

    from rclaude_infra.cli import _common, main

    name = f"sw{uuid.uuid4().hex[:6]}"
    made = make_resources(aws, name, tagged=True)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    fake = FakePulumi()
    fake.stacks.add(name)
    fake.managed = [made["bucket"], made["cluster"], made["role"], made["log_group"]]
    monkeypatch.setattr(_common, "Deployment", functools.partial(Deployment,
                                                                 pulumi_command=fake))
    assert main(["sweep", "--name", name, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    found = {item["arn"] for item in listed["swept"]}
    assert listed["dry_run"] is True and listed["kept"] >= 4
    assert made["secret"] in found and made["cluster"] not in found
    assert all(item["outcome"] == "would delete" or item["outcome"].startswith("not supported")
               for item in listed["swept"])
    assert main(["sweep", "--name", name, "--delete"]) == 2  # no terminal: --yes needed
    capsys.readouterr()
    assert main(["sweep", "--name", name, "--delete", "--yes", "--json"]) == 0
    deleted = json.loads(capsys.readouterr().out)
    assert {i["arn"] for i in deleted["swept"] if i["outcome"] == "deleted"} >= {made["secret"]}
    with pytest.raises(aws.client("secretsmanager").exceptions.ResourceNotFoundException):
        aws.client("secretsmanager").describe_secret(SecretId=made["secret"])
    s3 = aws.client("s3")
    assert made["bucket"] in {b["Name"] for b in s3.list_buckets()["Buckets"]}  # managed
    fake.stacks.discard(name)  # destroyed and removed: nothing is known any more
    assert main(["sweep", "--name", name, "--json"]) == 0
    after = {i["arn"] for i in json.loads(capsys.readouterr().out)["swept"]}
    assert made["cluster"] in after
