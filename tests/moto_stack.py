"""A deployed stack's task-side resources, made in moto's server, and a way to answer
chosen calls before they are sent (for what moto lacks or to inject faults).

Shared by the ECS tests and ``benchmarks/bench_dispatch.py``.
"""

from __future__ import annotations

import json
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from rclaude_infra import StackOutputs

#: One of the AMIs moto's EC2 holds by default (its ``amis.json``): naming it saves a
#: DescribeImages of all of them (1,300 images, 1.5 s a stack).
MOTO_AMI = "ami-03cf127a"
#: How long the tests' Deployments reuse an ECS status read (``poll_interval``; 2 s by
#: default): a wait sees a task end at its next look, not up to two seconds later.
QUICK_POLL = 0.1


_CLIENTS: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], Any]] = (
    weakref.WeakKeyDictionary())


def _client(session: Any, service: str, region: str) -> Any:
    """``session``'s client for ``service``, made once: making the six a stack needs took
    43 ms of each stack (ec2's alone 17 ms), with the suite's shared model loader."""
    made = _CLIENTS.setdefault(session, {})
    if (service, region) not in made:
        made[service, region] = session.client(service, region_name=region)
    return made[service, region]


def make_stack(session: Any, *, region: str = "us-east-1", instances: int = 1) -> StackOutputs:
    """The resources a deployed stack gives the task runner: a cluster with ``instances``
    registered container instances, a capacity provider on an auto scaling group, the task
    definitions (``interactive_tasks=True``: the interactive one too), the results bucket
    and the log group."""
    suffix = uuid.uuid4().hex[:8]
    ec2 = _client(session, "ec2", region)
    ecs = _client(session, "ecs", region)
    scaling = _client(session, "autoscaling", region)
    cluster = ecs.create_cluster(clusterName=f"rclaude-dev-cluster-{suffix}")["cluster"]
    image = MOTO_AMI
    # moto places a task on a registered instance only, and gives each its type's
    # resources (ignoring totalResources): about 400 of these tasks fit on one.
    # Real ECS would keep the rest PROVISIONING while the group scales out.
    for _ in range(instances):
        instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                     InstanceType="t3.medium")["Instances"][0]
        ecs.register_container_instance(
            cluster=cluster["clusterArn"],
            instanceIdentityDocument=json.dumps({
                "instanceId": instance["InstanceId"], "instanceType": "t3.medium",
                "region": region, "availabilityZone": f"{region}a"}),
        )
    ec2.create_launch_template(LaunchTemplateName=f"lt-{suffix}",
                               LaunchTemplateData={"ImageId": image})
    scaling.create_auto_scaling_group(
        AutoScalingGroupName=f"rclaude-dev-asg-{suffix}", MinSize=0, MaxSize=4,
        LaunchTemplate={"LaunchTemplateName": f"lt-{suffix}"},
        AvailabilityZones=[f"{region}a"])
    group = scaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[f"rclaude-dev-asg-{suffix}"])["AutoScalingGroups"][0]
    provider = ecs.create_capacity_provider(
        name=f"rclaude-dev-cp-{suffix}",
        autoScalingGroupProvider={"autoScalingGroupArn": group["AutoScalingGroupARN"],
                                  "managedScaling": {"status": "ENABLED", "targetCapacity": 100},
                                  "managedTerminationProtection": "DISABLED"},
    )["capacityProvider"]["name"]
    ecs.put_cluster_capacity_providers(
        cluster=cluster["clusterArn"], capacityProviders=[provider],
        defaultCapacityProviderStrategy=[{"capacityProvider": provider, "weight": 1}])
    definition, interactive = (ecs.register_task_definition(
        family=family, requiresCompatibilities=["EC2"],
        networkMode="bridge", cpu="1024", memory="2048",
        containerDefinitions=[{"name": "runner", "image": "runner:1", "essential": True,
                               "cpu": 10, "memory": 10}],
    )["taskDefinition"] for family in (f"rclaude-dev-runner-{suffix}",
                                       f"rclaude-dev-runner-interactive-{suffix}"))
    bucket = f"rclaude-dev-results-{suffix}"
    _client(session, "s3", region).create_bucket(Bucket=bucket)
    log_group = f"/rclaude/dev-{suffix}"
    _client(session, "logs", region).create_log_group(logGroupName=log_group)
    # The task role: ECS gives a task its credentials as a session of it named after the
    # task's id (ecs_harness does the same with STS).
    role = _client(session, "iam", region).create_role(
        RoleName=f"rclaude-dev-task-{suffix}", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}))["Role"]
    return StackOutputs(
        deployment="dev", region=region, cluster_name=cluster["clusterName"],
        cluster_arn=cluster["clusterArn"], capacity_provider=provider,
        task_definition_family=definition["family"],
        task_definition_arn=definition["taskDefinitionArn"], container_name="runner",
        interactive_task_definition_arn=interactive["taskDefinitionArn"],
        bucket=bucket, log_group=log_group, task_role_arn=role["Arn"],
        task_role_id=role["RoleId"],
    )


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


Answer = Callable[[Any], "tuple[int, dict[str, Any] | str] | None"]


def answer(client: Any, operations: list[str], respond: Answer, *,
           service: str | None = None) -> None:
    """Before ``client`` sends one of ``operations``, ask ``respond(request)``: a
    ``(status, json body)`` is the response (the call never reaches the server), or
    ``(status, xml text)`` for the query-protocol services (IAM, STS, EC2); ``None``
    sends the call on. ``client`` may be a boto3 Session, with ``service`` named: then
    every client it makes for that service is answered so."""
    from botocore.awsrequest import AWSResponse

    def hook(request: Any, **_: Any) -> AWSResponse | None:
        answered = respond(request)
        if answered is None:
            return None
        status, body = answered
        if isinstance(body, str):
            return AWSResponse(request.url, status, {"Content-Type": "text/xml"},
                               _Raw(body.encode()))
        return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.1"},
                           _Raw(json.dumps(body).encode()))

    if service is None:
        service = client.meta.service_model.service_name
    events = client.meta.events if hasattr(client, "meta") else client.events
    for operation in operations:
        events.register(f"before-send.{service}.{operation}", hook)


def hold_tasks_running(endpoint: str, hold: bool = True) -> None:
    """moto advances a task one lifecycle step per DescribeTasks (RUNNING, DEACTIVATING,
    ...); ``hold`` keeps them RUNNING, ``hold=False`` restores moto's default."""
    import urllib.request

    action = "set-transition" if hold else "unset-transition"
    body: dict[str, Any] = {"model_name": "ecs::task"}
    if hold:
        body["transition"] = {"progression": "manual", "times": 1_000_000_000}
    request = urllib.request.Request(f"{endpoint}/moto-api/state-manager/{action}",
                                     data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


def attempts(session: Any, bucket: str, task_id: str) -> list[dict[str, Any]]:
    """The task's attempts, oldest first, as its S3 record (``attempts.json``) lists them:
    each with its ECS ARN, why it started and its run."""
    found = json.loads(session.client("s3").get_object(
        Bucket=bucket, Key=f"tasks/{task_id}/attempts.json")["Body"].read())
    return sorted(found, key=lambda a: a["attempt"])


def run_folder(session: Any, bucket: str, task_id: str) -> str:
    """The S3 folder of the task's newest run (``tasks/<id>/runs/<aws:userid>/``), where
    its runner reads and writes."""
    return f"tasks/{task_id}/runs/{attempts(session, bucket, task_id)[-1]['run']}/"


class EcsReports:
    """What the ECS agent reports and moto cannot (stop codes, reasons, start and stop
    times, exit codes): DescribeTasks answers for chosen tasks are replaced at the botocore
    boundary, after the call, in the API reference's shapes (``Task`` in the ECS API
    Reference). Attach it to a session before the clients are made, or to a client."""

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        #: DescribeTasks calls answered since attached.
        self.describe_calls = 0

    def attach(self, client_or_session: Any) -> EcsReports:
        def replace(parsed: dict[str, Any], **_: Any) -> None:
            self.describe_calls += 1
            parsed["tasks"] = [
                {**self.tasks[task["taskArn"]], "taskArn": task["taskArn"]}
                if task.get("taskArn") in self.tasks else task
                for task in parsed.get("tasks", [])]

        events = getattr(client_or_session, "events", None) or client_or_session.meta.events
        events.register("after-call.ecs.DescribeTasks", replace)
        return self

    def report(self, arn: str, task: dict[str, Any]) -> None:
        """From now on ECS describes ``arn`` as ``task``, the whole of it (its ARN kept)."""
        self.tasks[arn] = task


def keep_exec_flags(session: Any) -> None:
    """moto drops RunTask's ``enableExecuteCommand``: its DescribeTasks answers never carry
    it (moto 5.2). ECS keeps it on the task (``Task.enableExecuteCommand`` in the ECS API
    Reference), and the ECS agent reads it to mount ECS Exec's agent; so each RunTask sent
    through ``session`` is remembered and its tasks described with the flag it asked for."""
    asked: dict[int, bool] = {}
    flags: dict[str, bool] = {}

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        asked[id(context)] = bool(params.get("enableExecuteCommand", False))

    def started(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        flag = asked.pop(id(context), False)
        for task in parsed.get("tasks", []):
            flags[task["taskArn"]] = flag
            task["enableExecuteCommand"] = flag

    def described(parsed: dict[str, Any], **_: Any) -> None:
        for task in parsed.get("tasks", []):
            task.setdefault("enableExecuteCommand", flags.get(task.get("taskArn", ""), False))

    session.events.register("provide-client-params.ecs.RunTask", remember)
    session.events.register("after-call.ecs.RunTask", started)
    session.events.register("after-call.ecs.DescribeTasks", described)
