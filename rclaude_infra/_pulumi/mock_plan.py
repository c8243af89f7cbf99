"""Run the Pulumi program under the runtime's mock monitor and record what it registers.

The real SDK and the real typed ``pulumi_aws`` classes run; only the engine and the
providers are absent. Each plan runs in a fresh thread: the Pulumi runtime keeps its
settings in context variables, and a new thread starts with an empty context and its
own event loop, so a plan leaves no Pulumi state behind in the caller (two plans in a
row are independent) and works when the caller is inside a running event loop
(a Jupyter cell).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks

from .._plan import SECRET_MASK, Plan, PlannedResource
from ..config import DeploymentConfig
from ..errors import PlanError
from .program import COMPONENT_TYPE, define_stack

#: Placeholder account for ARNs that only exist after deployment.
MOCK_ACCOUNT_ID = "123456789012"
_PROJECT = "rclaude"
_T = TypeVar("_T")
_PLAN_LOCK = threading.Lock()

# Special values in the engine's wire format (pulumi/sdk/go/common/resource/sig).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_REF_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

# Services whose ARNs have no region or account part.
_GLOBAL_ARN = {"s3": "arn:aws:s3:::{name}", "iam": "arn:aws:iam::{account}:{kind}/{name}"}


def _plain(value: Any) -> Any:
    """Turn a deserialized wire value into JSON-able data, masking secrets."""
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            return SECRET_MASK
        if sig == _OUTPUT_SIG:
            return SECRET_MASK if value.get("secret") else _plain(value.get("value"))
        if sig == _RESOURCE_REF_SIG:
            return {"resource": value.get("urn", "").rsplit("::", 1)[-1]}
        if sig is not None:
            return f"<{sig}>"
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if value == _UNKNOWN:
        return "<unknown>"
    if isinstance(value, float) and value.is_integer():
        # protobuf's Struct has only doubles; the program's integers come back as floats.
        return int(value)
    return value


def _logical_name(urn: str) -> str | None:
    return urn.rsplit("::", 1)[-1] if urn else None


class _Mocks(pulumi.runtime.Mocks):
    """Outputs for resources and invokes that look like what AWS would return."""

    def __init__(self, region: str) -> None:
        self.region = region

    def _arn(self, typ: str, name: str) -> str:
        service = typ.split(":")[1].split("/")[0]
        kind = typ.rsplit(":", 1)[-1]
        kind = kind[0].lower() + kind[1:]
        if service in _GLOBAL_ARN:
            return _GLOBAL_ARN[service].format(account=MOCK_ACCOUNT_ID, kind=kind, name=name)
        if service == "cloudwatch":
            return f"arn:aws:logs:{self.region}:{MOCK_ACCOUNT_ID}:log-group:{name}"
        return f"arn:aws:{service}:{self.region}:{MOCK_ACCOUNT_ID}:{kind}/{name}"

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        # Autonamed resources get their physical name from the provider; mimic its shape.
        # Resources of different types may share a logical name (the runner's security
        # group, repository and task definition): the type keeps their placeholders apart,
        # so a placeholder in another resource's inputs names exactly one resource.
        kind = args.typ.rsplit(":", 1)[-1].lower()
        suffix = hashlib.sha256(f"{args.typ}::{args.name}".encode()).hexdigest()[:7]
        physical = inputs.get("name") or f"{args.name}-{suffix}"
        state: dict[str, Any] = {
            **inputs,
            "name": physical,
            "arn": self._arn(args.typ, physical),
        }
        extra: dict[str, dict[str, Any]] = {
            "aws:s3/bucket:Bucket": {"bucket": physical},
            "aws:ec2/launchTemplate:LaunchTemplate": {"latestVersion": 1},
            "aws:ecs/taskDefinition:TaskDefinition": {
                "arn": f"arn:aws:ecs:{self.region}:{MOCK_ACCOUNT_ID}:task-definition/"
                f"{inputs.get('family')}:1",
                "revision": 1,
            },
            "aws:kms/key:Key": {"keyId": f"{args.name}-key"},
            "aws:iam/role:Role": {"uniqueId": f"AROA{suffix.upper()}"},
            "aws:ecr/repository:Repository": {
                "repositoryUrl": f"{MOCK_ACCOUNT_ID}.dkr.ecr.{self.region}.amazonaws.com/"
                f"{physical}",
            },
            # As AWS shapes them: a queue's ARN has no "queue/", and its URL is its
            # address; a rule is an EventBridge resource, not a log group's.
            "aws:sqs/queue:Queue": {
                "arn": f"arn:aws:sqs:{self.region}:{MOCK_ACCOUNT_ID}:{physical}",
                "url": f"https://sqs.{self.region}.amazonaws.com/{MOCK_ACCOUNT_ID}/{physical}",
            },
            "aws:cloudwatch/eventRule:EventRule": {
                "arn": f"arn:aws:events:{self.region}:{MOCK_ACCOUNT_ID}:rule/{physical}",
            },
            # The service (mode="service"): what its other resources read of these.
            "aws:rds/instance:Instance": {
                "arn": f"arn:aws:rds:{self.region}:{MOCK_ACCOUNT_ID}:db:{physical}",
                "address": f"{physical}.c0mock.{self.region}.rds.amazonaws.com",
                "masterUserSecrets": [{
                    "secretArn": f"arn:aws:secretsmanager:{self.region}:{MOCK_ACCOUNT_ID}:"
                    f"secret:rds!db-{suffix}-AbCdEf", "secretStatus": "active"}],
            },
            "aws:lb/loadBalancer:LoadBalancer": {
                "arn": f"arn:aws:elasticloadbalancing:{self.region}:{MOCK_ACCOUNT_ID}:"
                f"loadbalancer/app/{physical}/{suffix}",
                "dnsName": f"{physical}-{suffix}.{self.region}.elb.amazonaws.com",
                "zoneId": "Z35SXDOTRQ7X7K",
            },
            "aws:acm/certificate:Certificate": {"domainValidationOptions": [{
                "domainName": inputs.get("domainName"),
                "resourceRecordName": f"_{suffix}.{inputs.get('domainName')}.",
                "resourceRecordType": "CNAME",
                "resourceRecordValue": f"_{suffix}.acm-validations.aws."}]},
            "aws:acm/certificateValidation:CertificateValidation": {
                "certificateArn": inputs.get("certificateArn")},
            "aws:route53/record:Record": {"fqdn": inputs.get("name")},
            "awsx:ecr:Image": {
                "imageUri": f"{inputs.get('repositoryUrl')}@sha256:{'0' * 64}",
            },
        }
        state.update(extra.get(args.typ, {}))
        return f"{args.name}-{kind}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        zones = [f"{self.region}{letter}" for letter in "abcdef"]
        results: dict[str, dict[str, Any]] = {
            "aws:index/getAvailabilityZones:getAvailabilityZones": {
                "names": zones,
                "zoneIds": [f"use1-az{i}" for i in range(1, 7)],
                "id": self.region,
            },
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": MOCK_ACCOUNT_ID,
                "arn": f"arn:aws:iam::{MOCK_ACCOUNT_ID}:user/plan",
                "userId": "AIDPLAN",
                "id": MOCK_ACCOUNT_ID,
            },
            "aws:index/getPartition:getPartition": {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "id": "aws",
            },
        }
        if args.token not in results:
            raise PlanError(f"the program called an invoke the offline plan does not mock: "
                            f"{args.token}")
        return results[args.token]


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping parent, raw inputs and stack outputs."""

    def __init__(self, mocks: _Mocks) -> None:
        super().__init__(mocks)
        self.registered: list[PlannedResource] = []
        self.stack_outputs: dict[str, Any] = {}
        self._stack_urn: str | None = None
        # The SDK's monitor gives each executor thread it runs on an event loop of its
        # own; keep them to close when the plan is done.
        self.thread_loops: set[asyncio.AbstractEventLoop] = set()

    def _keep_thread_loop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.thread_loops.add(asyncio.get_event_loop_policy().get_event_loop())

    def Invoke(self, request: Any) -> Any:
        try:
            return super().Invoke(request)  # type: ignore[no-untyped-call]
        finally:
            self._keep_thread_loop()

    def RegisterResource(self, request: Any) -> Any:
        try:
            response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        finally:
            self._keep_thread_loop()
        if request.type == "pulumi:pulumi:Stack":
            self._stack_urn = response.urn
        else:
            parent = None if request.parent == self._stack_urn else _logical_name(request.parent)
            self.registered.append(PlannedResource(
                type=request.type,
                name=request.name,
                parent=parent,
                inputs=_plain(json_format.MessageToDict(request.object)),
                custom=bool(request.custom),
                state={"id": response.id,
                       **_plain(json_format.MessageToDict(response.object))},
            ))
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        # The component registers exactly what the stack exports (define_stack).
        if request.urn.split("::")[2].endswith(COMPONENT_TYPE):
            self.stack_outputs = _plain(json_format.MessageToDict(request.outputs))
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


def _run_isolated(fn: Callable[[], _T]) -> _T:
    result: list[_T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name="rclaude-plan", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def record_program(
    stack: str, region: str, program: Callable[[], object]
) -> tuple[list[PlannedResource], dict[str, Any]]:
    """Run ``program`` under mocks in a fresh thread; return what it registered, sorted,
    and the outputs of its :class:`RclaudeStack` component."""

    def run() -> tuple[list[PlannedResource], dict[str, Any]]:
        from pulumi.runtime.stack import run_pulumi_func
        from pulumi.runtime.sync_await import _sync_await

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        monitor = _RecordingMonitor(_Mocks(region))
        try:
            pulumi.runtime.set_mocks(
                monitor.mocks, project=_PROJECT, stack=stack, preview=False,
                logger=logging.getLogger("rclaude_infra.plan.engine"), monitor=monitor,
            )
            try:
                def body() -> None:
                    program()

                _sync_await(run_pulumi_func(body))
            except PlanError:
                raise
            except Exception as exc:
                raise PlanError(f"the Pulumi program failed under mocks: {exc}") from exc
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            asyncio.set_event_loop(None)
            # Closed here, not by their finalizers at interpreter exit, which fail noisily.
            for thread_loop in monitor.thread_loops - {loop}:
                thread_loop.close()
        # Registration order follows the event loop, not the program: sort so that
        # the same config always gives the same plan.
        resources = sorted(monitor.registered, key=lambda r: (r.parent is not None, r.name, r.type))
        return resources, monitor.stack_outputs

    # Two plans at once from different threads can deadlock inside the Pulumi runtime's
    # module-level machinery; plans are short, so they take turns.
    with _PLAN_LOCK:
        return _run_isolated(run)


def mock_plan(name: str, config: DeploymentConfig, *, api_key: str | None = None) -> Plan:
    """Run the program for ``config`` under mocks and return every registered resource."""
    resources, outputs = record_program(
        name, config.region, lambda: define_stack(name, config, credential=api_key)
    )
    return Plan(name=name, config=config, resources=tuple(resources), outputs=outputs)
