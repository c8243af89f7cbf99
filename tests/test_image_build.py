"""The runner image built in the account (``build_image="remote"``): the planned build,
the sources made from the installed package, the buildspec's commands, and the upload /
start / wait / failure paths of ``up`` against moto's CodeBuild, S3, ECR and Logs.

moto's CodeBuild records builds but runs nothing: every ``BatchGetBuilds`` reports the
build SUCCEEDED and the build's ``environment`` and ``logs`` are placeholders. What a real
build does is supplied at the botocore boundary, shaped after the AWS API reference
(CodeBuild ``Build``, ``BuildPhase``, ``PhaseContext``, ``LogsLocation``:
https://docs.aws.amazon.com/codebuild/latest/APIReference/API_Build.html): the push of the
image (into moto's ECR, as the buildspec's ``docker push`` would), a build still running,
a failed phase with its log, and CodeBuild's ``AccountLimitExceededException``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from moto_stack import answer

from rclaude_infra import (
    Deployment,
    DeploymentConfig,
    ImageBuildError,
    ImageNotReadyError,
    StackOutputs,
    TaskSpec,
    Usage,
    estimate_cost,
)
from rclaude_infra._aws.image_build import ImageBuilder
from rclaude_infra.errors import ConfigError
from rclaude_infra.image_source import BUILDSPEC, DOCKERFILE, PACKAGE_DIR, image_source
from rclaude_infra.progress import ImageBuildPhase
from rclaude_infra.tasks.agent import CLAUDE_CODE_VERSION

PROJECT = "aws:codebuild/project:Project"


# -- config ----------------------------------------------------------------------------


def test_build_image_modes() -> None:
    assert DeploymentConfig(build_image="remote").image_mode == "remote"
    assert DeploymentConfig(build_image="local").build_image is True
    assert DeploymentConfig().image_mode == "local"
    assert DeploymentConfig(image="ghcr.io/me/runner:1").image_mode == "given"
    config = DeploymentConfig(build_image="remote")
    assert DeploymentConfig.from_stack_config(
        {k.split(":", 1)[1]: v for k, v in config.to_stack_config().items()}) == config
    with pytest.raises(ConfigError) as info:
        DeploymentConfig(build_image="codebuild")
    assert info.value.field == "build_image" and "'remote'" in info.value.allowed
    with pytest.raises(ConfigError, match="build_image"):
        DeploymentConfig(build_image="remote", image="ghcr.io/me/runner:1")
    with pytest.raises(ConfigError, match=r"usage\.image_build_minutes"):
        DeploymentConfig.from_mapping({"usage": {"image_build_minutes": -1}})


# -- the plan ------------------------------------------------------------------------


def test_the_plan_builds_the_image_in_the_account(plan_for: Any) -> None:
    p = plan_for(build_image="remote")
    types = {r.type for r in p}
    assert not any(t.startswith("awsx:") for t in types)  # every resource visible
    repository = p.one("aws:ecr/repository:Repository").inputs
    assert repository["imageTagMutability"] == "IMMUTABLE"
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    lifecycle = json.loads(p.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])
    assert lifecycle["rules"][0]["selection"]["countType"] == "imageCountMoreThan"

    project = p.one(PROJECT).inputs
    source = image_source()
    tag = source.tag("x86_64")
    # The task definition names the image the project builds, tagged by the sources' hash.
    image = p.outputs["image"]
    assert image.endswith(f":{tag}")
    variables = {v["name"]: v["value"] for v in project["environment"]["environmentVariables"]}
    assert variables == {"IMAGE_URI": image, "REGISTRY": image.split("/")[0],
                         "PLATFORM": "linux/amd64", "CLAUDE_CODE_VERSION": CLAUDE_CODE_VERSION}
    container = json.loads(p.one("aws:ecs/taskDefinition:TaskDefinition").inputs[
        "containerDefinitions"])[0]
    assert container["image"] == image
    assert project["source"] == {"type": "S3", "buildspec": BUILDSPEC,
                                 "location": f"{p.outputs['bucket']}/{source.key}"}
    assert project["environment"]["privilegedMode"] is True
    assert project["environment"]["computeType"] == "BUILD_GENERAL1_SMALL"
    assert project["logsConfig"]["cloudwatchLogs"] == {
        "status": "ENABLED", "groupName": "/rclaude/dev/image-build"}
    assert p.outputs["image_build_project"] == project["name"]
    assert p.outputs["image_source_key"] == source.key

    # The build's role: its own log group, the one sources object, the stack's repository.
    (policy,) = [r for r in p.by_type("aws:iam:RolePolicy") if r.name.endswith("image-build")]
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    assert statements["ReadSources"]["Resource"] == (
        f"arn:aws:s3:::{p.outputs['bucket']}/{source.key}")
    assert statements["PushRunnerImage"]["Resource"].startswith("arn:aws:ecr:us-east-1:")
    assert statements["WriteBuildLogs"]["Resource"].endswith(":log-group:/rclaude/dev/"
                                                             "image-build:*")
    (role,) = [r for r in p.by_type("aws:iam:Role") if r.name.endswith("image-build")]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "codebuild.amazonaws.com"}


#: What CodeBuild does with the project's service role for an S3-source build that pushes
#: to ECR (AWS CodeBuild User Guide, "Create a CodeBuild service role" and "Docker sample";
#: the ECR push actions of the ECR User Guide, "Pushing a Docker image"): each
#: (action, resource), with the bucket, the source key, the log group and the repository.
CODEBUILD_CALLS = (
    ("s3:GetObject", "{bucket}/{key}"),
    ("s3:GetObjectVersion", "{bucket}/{key}"),
    ("s3:GetBucketAcl", "{bucket}"),
    ("s3:GetBucketLocation", "{bucket}"),
    ("logs:CreateLogStream", "{log_group}:log-stream:build-1"),
    ("logs:PutLogEvents", "{log_group}:log-stream:build-1"),
    ("ecr:GetAuthorizationToken", "*"),
    ("ecr:BatchCheckLayerAvailability", "{repository}"),
    ("ecr:InitiateLayerUpload", "{repository}"),
    ("ecr:UploadLayerPart", "{repository}"),
    ("ecr:CompleteLayerUpload", "{repository}"),
    ("ecr:PutImage", "{repository}"),
)


def test_the_build_role_allows_what_codebuild_does_and_no_more(plan_for: Any) -> None:
    """Checked call by call against the planned policy: a missing right fails the build in
    the account, one more is a right nobody uses."""
    from iam_eval import allowed, statements_of

    from rclaude_infra._pulumi.mock_plan import MOCK_ACCOUNT_ID

    p = plan_for(build_image="remote")
    (policy,) = [r for r in p.by_type("aws:iam:RolePolicy") if r.name.endswith("image-build")]
    statements = statements_of(policy.inputs["policy"])
    # The repository's ARN from the image the task definition names (account, region,
    # repository), not from the policy under test.
    registry, _, repository = str(p.outputs["image"]).rsplit(":", 1)[0].partition("/")
    account, _, _, region = registry.split(".")[:4]
    names = {
        "bucket": f"arn:aws:s3:::{p.outputs['bucket']}", "key": image_source().key,
        "log_group": f"arn:aws:logs:us-east-1:{MOCK_ACCOUNT_ID}:log-group:"
                     "/rclaude/dev/image-build",
        "repository": f"arn:aws:ecr:{region}:{account}:repository/{repository}"}
    for action, resource in CODEBUILD_CALLS:
        assert allowed(statements, action, resource.format(**names)), (action, resource)
    # Nothing beyond: another object of the bucket, another bucket, another log group.
    assert not allowed(statements, "s3:GetObject", f"{names['bucket']}/tasks/t-1/spec.json")
    assert not allowed(statements, "s3:GetBucketAcl", "arn:aws:s3:::another-bucket")
    assert not allowed(statements, "s3:PutObject", f"{names['bucket']}/{names['key']}")
    assert not allowed(statements, "logs:PutLogEvents",
                       names["log_group"].replace("image-build", "other") + ":log-stream:x")


def _dockerfile() -> list[tuple[str, str]]:
    """The runner's Dockerfile as (instruction, arguments), continuation lines joined."""
    from rclaude_infra._pulumi.stack_tasks import RUNNER_DOCKERFILE

    instructions = []
    for line in RUNNER_DOCKERFILE.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def test_the_runner_dockerfile_keeps_its_contract() -> None:
    """No builder can pull a base image here (no registry but PyPI, Debian and npm is
    reachable: `buildah bud` stops at "pinging container registry public.ecr.aws ... no
    such host"), so the Dockerfile's contract is read from it: where its base comes from,
    what it pins, who it runs as and what it runs."""
    import shlex

    from rclaude_infra._pulumi.documents import RUNNER_USER, container_definitions
    from rclaude_infra.tasks.layout import RUNNER_COMMAND

    instructions = _dockerfile()
    args = {}
    for word, rest in instructions:
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
    [base] = [rest for word, rest in instructions if word == "FROM"]
    base = base.replace("${BASE_IMAGE}", args.get("BASE_IMAGE", ""))
    # AWS's public gallery, not Docker Hub's anonymous pulls; a pinned Python and Debian.
    assert base.startswith("public.ecr.aws/docker/library/python:"), base
    assert base.rsplit(":", 1)[1] == "3.11-slim-bookworm"
    # The pinned Claude Code the stack passes, installed at exactly that version.
    assert args["CLAUDE_CODE_VERSION"] == CLAUDE_CODE_VERSION
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert '@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}' in runs
    assert "pip install --no-cache-dir -r /opt/rclaude/requirements.txt" in runs
    # Who it runs as: the task definition's user, whose home is in the work space.
    [user] = [rest for word, rest in instructions if word == "USER"]
    assert user == RUNNER_USER and f"--uid {RUNNER_USER.split(':')[0]}" in runs
    [workdir] = [rest for word, rest in instructions if word == "WORKDIR"]
    assert workdir == "/workspace"
    env = " ".join(rest for word, rest in instructions if word == "ENV")
    [runner] = json.loads(container_definitions(DeploymentConfig(), "dev", "img", "b", "g",
                                                None))
    home = next(e["value"] for e in runner["environment"] if e["name"] == "HOME")
    assert f"HOME={home}" in env and "DISABLE_AUTOUPDATER=1" in env
    # What it runs: the command RunTask gives it.
    [cmd] = [rest for word, rest in instructions if word == "CMD"]
    assert tuple(json.loads(cmd)) == RUNNER_COMMAND
    assert not any(word == "ENTRYPOINT" for word, _ in instructions)
    assert shlex.split(cmd)  # well-formed


def test_arm_stacks_build_on_arm(plan_for: Any) -> None:
    p = plan_for(build_image="remote", instance_types=("t4g.medium",))
    environment = p.one(PROJECT).inputs["environment"]
    assert environment["type"] == "ARM_CONTAINER"
    assert {"name": "PLATFORM", "value": "linux/arm64"} in environment["environmentVariables"]
    assert p.outputs["image"].endswith("-arm64")


def test_local_and_given_images_have_no_build_project(plan_for: Any) -> None:
    assert not plan_for().by_type("aws:codebuild:Project")
    assert not plan_for(image="ghcr.io/me/runner:1").by_type("aws:codebuild:Project")


def test_the_estimate_prices_builds_and_storage(plan_for: Any) -> None:
    usage = Usage(image_builds_per_month=4, image_build_minutes=5)
    estimate = estimate_cost(plan_for(build_image="remote"), usage)
    (builds,) = [line for line in estimate.lines if line.resource_type == "aws:codebuild:Project"]
    assert builds.quantity == 20 and builds.unit_price == 0.005 and not builds.baseline
    assert "codebuild_project_test" in builds.price_source and not builds.assumed
    assert any(line.component == "Image storage" for line in estimate.lines)
    build_logs = [line for line in estimate.lines if line.resource == "rclaude-dev-image-build"
                  and line.component == "Data ingested"]
    assert build_logs[0].quantity == pytest.approx(4 / 1024)  # 1 MB a build, not task logs
    arm = estimate_cost(plan_for(build_image="remote", instance_types=("t4g.medium",)), usage)
    (arm_builds,) = [line for line in arm.lines if line.resource_type == "aws:codebuild:Project"]
    assert arm_builds.assumed and "ARM rate is not in the snapshot" in arm_builds.price_source
    local = estimate_cost(plan_for(), usage)
    assert estimate.monthly - local.monthly == pytest.approx(20 * 0.005 + 4 / 1024 * 0.5,
                                                             abs=0.001)


# -- the sources ------------------------------------------------------------------------


def test_sources_are_the_package_and_reproducible(tmp_path: Path) -> None:
    source = image_source()
    assert DOCKERFILE in source.files and "runner.py" in source.files
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in source.files)
    assert source.zip_bytes() == source.zip_bytes()
    with zipfile.ZipFile(__import__("io").BytesIO(source.zip_bytes())) as archive:
        assert sorted(archive.namelist()) == list(source.files)

    copy = tmp_path / "pkg"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert image_source(copy).digest == source.digest
    (copy / "tasks" / "__pycache__").mkdir(exist_ok=True)
    (copy / "tasks" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert image_source(copy).digest == source.digest  # what .dockerignore leaves out
    (copy / "runner.py").write_text((copy / "runner.py").read_text() + "\n# changed\n")
    changed = image_source(copy)
    assert changed.digest != source.digest and changed.key != source.key


FAKE_DOCKER = """#!/bin/sh
if [ "$1" = login ]; then cat > "$CALLS.password"; fi
echo "docker $*" >> "$CALLS"
if [ "$1" = build ] && [ -n "$FAIL_BUILD" ]; then echo "E: npm ERR! 404" >&2; exit 1; fi
exit 0
"""
FAKE_AWS = """#!/bin/sh
echo "aws $*" >> "$CALLS"
echo ecr-password
"""


def _run_buildspec(tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    """Run the buildspec's phases as CodeBuild does (bash, the phase's commands in order,
    a failing command ends the build) in the unzipped sources, with ``docker`` and
    ``aws`` recording their arguments."""
    source = image_source()
    work = tmp_path / "src"
    with zipfile.ZipFile(__import__("io").BytesIO(source.zip_bytes())) as archive:
        archive.extractall(work)
    spec = yaml.safe_load((work / BUILDSPEC).read_text())
    assert spec["version"] == 0.2 and spec["env"]["shell"] == "bash"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("docker", FAKE_DOCKER), ("aws", FAKE_AWS)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls"
    environment = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls),
                   "AWS_REGION": "us-east-1", **env}
    for phase in ("pre_build", "build", "post_build"):
        for command in spec["phases"].get(phase, {}).get("commands", []):
            done = subprocess.run(["bash", "-c", command], cwd=work, env=environment,
                                  timeout=30)
            if done.returncode != 0:
                return done.returncode, calls.read_text().splitlines()
    return 0, calls.read_text().splitlines()


def test_the_buildspec_builds_the_dockerfile_and_pushes_the_tag(tmp_path: Path) -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/rclaude-dev-runner:abc-x86_64"
    code, calls = _run_buildspec(
        tmp_path, IMAGE_URI=image, REGISTRY=image.split("/")[0], PLATFORM="linux/amd64",
        CLAUDE_CODE_VERSION=CLAUDE_CODE_VERSION)
    assert code == 0
    assert calls == [
        "aws ecr get-login-password --region us-east-1",
        f"docker login --username AWS --password-stdin {image.split('/')[0]}",
        f"docker build --platform linux/amd64 --build-arg CLAUDE_CODE_VERSION="
        f"{CLAUDE_CODE_VERSION} --file {DOCKERFILE} --tag {image} .",
        f"docker push {image}",
    ]
    assert (tmp_path / "calls.password").read_text() == "ecr-password\n"
    assert (tmp_path / "src" / DOCKERFILE).is_file()  # the context holds the Dockerfile


def test_a_failed_docker_build_pushes_nothing(tmp_path: Path) -> None:
    code, calls = _run_buildspec(tmp_path, IMAGE_URI="r/x:1", REGISTRY="r",
                                 PLATFORM="linux/amd64", CLAUDE_CODE_VERSION="1",
                                 FAIL_BUILD="1")
    assert code != 0
    assert not any(call.startswith("docker push") for call in calls)


# -- upload, start, wait, failure against moto ----------------------------------------


@attrs.define
class BuildStack:
    """A remote-build stack's resources in moto, made from the planned project."""

    session: Any
    outputs: StackOutputs
    repository: str
    tag: str
    starts: list[dict[str, Any]] = attrs.Factory(list)

    def push(self) -> None:
        """What the buildspec's ``docker push`` leaves: the tag in the repository."""
        manifest = {"schemaVersion": 2, "mediaType":
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"digest": "sha256:" + uuid.uuid4().hex * 2, "size": 1,
                               "mediaType": "application/vnd.docker.container.image.v1+json"},
                    "layers": []}
        self.session.client("ecr").put_image(repositoryName=self.repository,
                                             imageManifest=json.dumps(manifest),
                                             imageTag=self.tag)

    def pushes_on_start(self) -> None:
        """Every StartBuild "builds": the image appears as the buildspec would push it."""
        def started(parsed: dict[str, Any], **_: Any) -> None:
            self.starts.append(parsed["build"])
            self.push()

        self.session.events.register("after-call.codebuild.StartBuild", started)

    def builds_reported(self, change: Any) -> None:
        """Rewrite what BatchGetBuilds and the project's build list say (moto: every build
        SUCCEEDED, with no environment)."""
        def rewrite(parsed: dict[str, Any], **_: Any) -> None:
            for build in parsed.get("builds", []):
                build["environment"]["environmentVariables"] = [
                    {"name": "IMAGE_URI", "value": self.outputs.image, "type": "PLAINTEXT"}]
                change(build)

        self.session.events.register("after-call.codebuild.BatchGetBuilds", rewrite)


@pytest.fixture(name="build_stack")
def _build_stack(aws: Any, plan_for: Any) -> BuildStack:
    planned = plan_for(build_image="remote")
    suffix = uuid.uuid4().hex[:8]
    bucket = f"rclaude-img-{suffix}"
    aws.client("s3").create_bucket(Bucket=bucket)
    repository = aws.client("ecr").create_repository(
        repositoryName=f"rclaude-img-{suffix}-runner", imageTagMutability="IMMUTABLE",
        imageScanningConfiguration={"scanOnPush": True})["repository"]
    group = f"/rclaude/img-{suffix}/image-build"
    aws.client("logs").create_log_group(logGroupName=group)
    (role,) = [r for r in planned.by_type("aws:iam:Role") if r.name.endswith("image-build")]
    role_arn = aws.client("iam").create_role(
        RoleName=f"rclaude-img-{suffix}-image-build",
        AssumeRolePolicyDocument=role.inputs["assumeRolePolicy"])["Role"]["Arn"]
    planned_repo = planned.outputs["image"].rsplit(":", 1)[0]
    text = (json.dumps(dict(planned.one(PROJECT).inputs))
            .replace(planned.outputs["bucket"], bucket)
            .replace(planned_repo, repository["repositoryUri"])
            .replace("/rclaude/dev/image-build", group))
    project = json.loads(text)
    # The provider's property is cloudwatchLogs; the CodeBuild API's, cloudWatchLogs.
    project["logsConfig"]["cloudWatchLogs"] = project["logsConfig"].pop("cloudwatchLogs")
    name = f"rclaude-img-{suffix}-image-build"
    aws.client("codebuild").create_project(
        name=name, source=project["source"], artifacts=project["artifacts"],
        environment=project["environment"], serviceRole=role_arn,
        timeoutInMinutes=project["buildTimeout"],
        queuedTimeoutInMinutes=project["queuedTimeout"], logsConfig=project["logsConfig"])
    tag = planned.outputs["image"].rsplit(":", 1)[1]
    outputs = StackOutputs(
        deployment=f"img-{suffix}", region="us-east-1", bucket=bucket,
        image=f"{repository['repositoryUri']}:{tag}", image_build_project=name,
        image_source_key=planned.outputs["image_source_key"])
    return BuildStack(session=aws, outputs=outputs, repository=repository["repositoryName"],
                      tag=tag)


def _builder(stack: BuildStack, **kwargs: Any) -> ImageBuilder:
    return ImageBuilder(stack.session, stack.outputs, sleep=lambda _: None, **kwargs)


def test_a_missing_image_is_uploaded_built_and_then_left_alone(build_stack: BuildStack
                                                              ) -> None:
    build_stack.pushes_on_start()
    events: list[Any] = []
    result = _builder(build_stack).ensure(on_progress=events.append)
    assert result.status == "built" and result.build_id == build_stack.starts[0]["id"]
    assert result.image == build_stack.outputs.image
    s3 = build_stack.session.client("s3")
    body = s3.get_object(Bucket=build_stack.outputs.bucket,
                         Key=build_stack.outputs.image_source_key)["Body"].read()
    assert body == image_source().zip_bytes()
    assert events and all(isinstance(e, ImageBuildPhase) for e in events)
    assert events[-1].status == "SUCCEEDED"

    puts: list[str] = []
    build_stack.session.events.register("before-call.s3.PutObject",
                                        lambda **kw: puts.append("put"))
    again = _builder(build_stack).ensure()
    assert again.status == "present" and again.build_id is None
    assert len(build_stack.starts) == 1 and puts == []  # an unchanged package: no rebuild


def test_a_build_already_running_is_waited_for_not_doubled(build_stack: BuildStack) -> None:
    codebuild = build_stack.session.client("codebuild")
    running = codebuild.start_build(projectName=build_stack.outputs.image_build_project)
    polls = {"n": 0}

    def still_running(build: dict[str, Any]) -> None:
        polls["n"] += 1
        if polls["n"] <= 3:
            build.update(buildStatus="IN_PROGRESS", currentPhase="BUILD")
        elif polls["n"] == 4:
            build_stack.push()

    build_stack.builds_reported(still_running)
    build_stack.pushes_on_start()
    result = _builder(build_stack).ensure()
    assert result.status == "built" and result.build_id == running["build"]["id"]
    assert build_stack.starts == []


def test_a_failed_build_says_where_and_shows_its_log(build_stack: BuildStack) -> None:
    logs = build_stack.session.client("logs")
    group = f"/rclaude/{build_stack.outputs.deployment}/image-build"
    logs.create_log_stream(logGroupName=group, logStreamName="build-1")
    lines = ["Step 4/9 : RUN npm install -g @anthropic-ai/claude-code@9.9.9",
             "npm ERR! 404 '@anthropic-ai/claude-code@9.9.9' is not in this registry.",
             "[Container] Command did not exit successfully docker build ... exit status 1"]
    # CloudWatch Logs refuses events older than 14 days (or its retention): stamped now.
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName="build-1", logEvents=[
        {"timestamp": now + i, "message": line} for i, line in enumerate(lines)])

    def failed(build: dict[str, Any]) -> None:
        build.update(buildStatus="FAILED", currentPhase="COMPLETED")
        build["phases"] = [
            {"phaseType": "PRE_BUILD", "phaseStatus": "SUCCEEDED"},
            {"phaseType": "BUILD", "phaseStatus": "FAILED", "contexts": [{
                "statusCode": "COMMAND_EXECUTION_ERROR",
                "message": "Error while executing command: docker build ... Reason: exit "
                "status 1"}]},
            {"phaseType": "FINALIZING", "phaseStatus": "SUCCEEDED"},
        ]
        build["logs"] = {"groupName": group, "streamName": "build-1",
                         "deepLink": "https://console.aws.amazon.com/cloudwatch/home#logEvent"}

    build_stack.builds_reported(failed)
    with pytest.raises(ImageBuildError) as info:
        _builder(build_stack).ensure()
    error = info.value
    assert error.phase == "BUILD" and error.build_id
    assert error.log_tail == tuple(lines)
    assert "ended FAILED in phase BUILD: COMMAND_EXECUTION_ERROR" in str(error)
    assert "npm ERR! 404" in str(error) and "full log: https://" in str(error)


def test_a_build_past_its_time_is_reported_not_waited_for_forever(build_stack: BuildStack
                                                                  ) -> None:
    build_stack.builds_reported(lambda b: b.update(buildStatus="IN_PROGRESS",
                                                   currentPhase="PROVISIONING"))
    now = {"t": 0.0}

    def sleep(seconds: float) -> None:
        now["t"] += seconds

    builder = ImageBuilder(build_stack.session, build_stack.outputs, sleep=sleep,
                           clock=lambda: now["t"])
    with pytest.raises(ImageBuildError, match="still PROVISIONING after 5 minutes") as info:
        builder.ensure(poll_seconds=30, timeout_seconds=300)
    assert info.value.build_id and "waits for it again" in str(info.value)


def test_codebuild_refusing_for_the_quota_says_what_to_ask_for(build_stack: BuildStack
                                                               ) -> None:
    # A new account's first build (AWS: AccountLimitExceededException, "Cannot have more
    # than 0 builds in queue for the account").
    answer(build_stack.session, ["StartBuild"], lambda _: (400, {
        "__type": "AccountLimitExceededException",
        "message": "Cannot have more than 0 builds in queue for the account"}),
        service="codebuild")
    with pytest.raises(ImageBuildError, match="Concurrently running builds for Linux/Small"):
        _builder(build_stack).ensure()


def test_sources_of_another_version_are_not_uploaded(build_stack: BuildStack,
                                                     tmp_path: Path) -> None:
    copy = tmp_path / "pkg"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "runner.py").write_text("# another version\n")
    with pytest.raises(ImageBuildError, match="not the one the stack was deployed with"):
        _builder(build_stack).ensure(source=image_source(copy))
    s3 = build_stack.session.client("s3")
    assert s3.list_objects_v2(Bucket=build_stack.outputs.bucket).get("KeyCount") == 0


# -- the Deployment: up builds, run_task refuses before the image exists ---------------


def test_run_task_before_the_image_exists_submits_nothing(build_stack: BuildStack,
                                                          stack: StackOutputs) -> None:
    outputs = attrs.evolve(stack, image=build_stack.outputs.image,
                           image_build_project=build_stack.outputs.image_build_project,
                           image_source_key=build_stack.outputs.image_source_key)
    d = Deployment.from_outputs("dev", outputs, session=build_stack.session)
    runs: list[str] = []
    build_stack.session.events.register("before-call.ecs.RunTask",
                                        lambda **kw: runs.append("run"))
    with pytest.raises(ImageNotReadyError, match="no build of it has run"):
        d.run_task(TaskSpec(command="true"))
    with pytest.raises(ImageNotReadyError):
        d.run_tasks([TaskSpec(command="true")])
    assert runs == []
    puts = build_stack.session.client("s3").list_objects_v2(Bucket=stack.bucket)
    assert puts.get("KeyCount") == 0  # no spec written either

    build_stack.pushes_on_start()
    assert d.ensure_image(progress=False).status == "built"
    task = d.run_task(TaskSpec(command="true"))
    assert runs == ["run"] and task.task_id


def test_up_builds_the_image_after_the_stack(build_stack: BuildStack, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from fake_pulumi import OUTPUTS, FakePulumi

    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi"))
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    deployed = {**OUTPUTS, **{k: v for k, v in build_stack.outputs.to_dict().items()
                              if k in ("bucket", "image", "image_build_project",
                                       "image_source_key", "region")}}
    fake = FakePulumi(overrides={"stack output": lambda _: (json.dumps(deployed), "", 0)})
    build_stack.pushes_on_start()
    events: list[Any] = []
    d = Deployment("dev", DeploymentConfig(build_image="remote"), pulumi_command=fake,
                   aws_session=build_stack.session, api_key="sk-ant-test-0000")
    outputs = d.up(on_progress=events.append, progress=False)
    assert outputs.image_build_project == build_stack.outputs.image_build_project
    assert "up" in fake.verbs() and len(build_stack.starts) == 1
    assert any(isinstance(e, ImageBuildPhase) for e in events)
    assert d.ensure_image().status == "present"


def test_ensure_image_is_a_no_op_for_stacks_that_do_not_build_remotely(
        stack: StackOutputs, aws: Any) -> None:
    d = Deployment.from_outputs("dev", attrs.evolve(stack, image="ghcr.io/me/runner:1"),
                                session=aws)
    assert d.ensure_image().status == "external"


def test_the_buildspec_builds_the_service_image_too_in_service_mode(tmp_path: Path) -> None:
    from rclaude_infra._pulumi.stack_tasks import SERVICE_DOCKERFILE

    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/rclaude-dev-runner:abc-x86_64"
    code, calls = _run_buildspec(
        tmp_path, IMAGE_URI=image, REGISTRY=image.split("/")[0], PLATFORM="linux/amd64",
        CLAUDE_CODE_VERSION=CLAUDE_CODE_VERSION, SERVICE_IMAGE_URI=f"{image}-service")
    assert code == 0
    dockerfile = SERVICE_DOCKERFILE.relative_to(SERVICE_DOCKERFILE.parents[2]).as_posix()
    assert calls[-2:] == [
        f"docker build --platform linux/amd64 --file {dockerfile} --tag {image}-service .",
        f"docker push {image}-service"]
    assert (tmp_path / "src" / dockerfile).is_file()


def test_the_service_plan_builds_both_images_in_one_project(plan_for: Any) -> None:
    planned = plan_for(build_image="remote", mode="service", service={"http_only": True})
    variables = {v["name"]: v["value"] for v in planned.one(PROJECT).inputs[
        "environment"]["environmentVariables"]}
    assert variables["SERVICE_IMAGE_URI"] == variables["IMAGE_URI"] + "-service"
    assert planned.outputs["service_image"] == variables["SERVICE_IMAGE_URI"]


def test_a_runner_image_without_the_service_image_is_built_again(build_stack: BuildStack
                                                                 ) -> None:
    """A stack turned to service mode: its runner image's tag is there, the service's is
    not; one build makes both."""
    service = attrs.evolve(build_stack.outputs,
                           service_image=f"{build_stack.outputs.image}-service")
    build_stack.push()
    assert _builder(build_stack).present()
    with_service = BuildStack(session=build_stack.session, outputs=service,
                              repository=build_stack.repository, tag=build_stack.tag)
    assert not _builder(with_service).present()
    build_stack.tag = f"{build_stack.tag}-service"
    build_stack.push()
    assert _builder(with_service).present()
