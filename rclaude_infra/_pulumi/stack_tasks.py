"""What a task runs as and in: the runner image (built locally, in CodeBuild, or given),
the execution and task roles, and the task definition.

A part of :class:`~rclaude_infra._pulumi.program.RclaudeStack`: its methods run in the
component's constructor, so each resource keeps its name and parent (and its URN).
"""

from __future__ import annotations

import re
from pathlib import Path

import pulumi
import pulumi_aws as aws

from ..image_source import image_source, service_tag
from ..tasks.agent import CLAUDE_CODE_VERSION
from .documents import (
    HOST_NOTICE_DIR,
    WRITABLE_VOLUMES,
    container_definitions,
    execution_policy,
    runner_families,
    task_policy,
)
from .image_build import remote_image, runner_repository
from .stack_base import StackBase

_ECR_IMAGE_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repo>[^:@]+)"
)
#: The runner image's build context: the installed package directory itself (a wheel's as
#: much as a checkout's), with its Dockerfile inside.
IMAGE_CONTEXT = Path(__file__).resolve().parents[1]
RUNNER_DOCKERFILE = Path(__file__).resolve().parent / "runner" / "Dockerfile"
#: The hosted service's image (``mode="service"``), from the same context.
SERVICE_DOCKERFILE = RUNNER_DOCKERFILE.with_name("service.Dockerfile")


class TaskPart(StackBase):
    def _image(self) -> tuple[pulumi.Input[str], pulumi.Input[str] | None]:
        """The runner image URI and, when it lives in ECR, its repository ARN."""
        cfg = self._config
        self.service_image_uri = None
        if cfg.image_mode == "remote":
            remote = remote_image(name=self._name, config=cfg, tags=self.tags,
                                  bucket=self.bucket, account_id=self._account_id,
                                  key_arn=self._key_arn(), opts=self._child)
            self.image_build = remote
            self.service_image_uri = remote.service_uri
            return remote.uri, remote.repository_arn
        if cfg.image_mode == "given":
            assert cfg.image is not None
            match = _ECR_IMAGE_RE.match(cfg.image)
            if match is None:
                return cfg.image, None
            arn = self._partition.apply(
                lambda partition: (
                    f"arn:{partition}:ecr:{match['region']}:{match['account']}:"
                    f"repository/{match['repo']}"
                )
            )
            return cfg.image, arn

        import pulumi_awsx as awsx

        # Before 0.2 the repository was an awsx component's child: the alias keeps it.
        earlier = pulumi.Alias(parent=pulumi.create_urn(f"{self._prefix}-runner",
                                                        "awsx:ecr:Repository", parent=self))
        self.repository = runner_repository(name=self._name, tags=self.tags, opts=self._child,
                                            key_arn=self._key_arn(),
                                            aliases=[earlier])
        image = awsx.ecr.Image(
            f"{self._prefix}-runner",
            repository_url=self.repository.repository_url,
            image_tag=image_source().tag(cfg.arch),
            context=str(IMAGE_CONTEXT),
            dockerfile=str(RUNNER_DOCKERFILE),
            args={"CLAUDE_CODE_VERSION": CLAUDE_CODE_VERSION},
            platform="linux/arm64" if cfg.arch == "arm64" else "linux/amd64",
            opts=self._child,
        )
        if cfg.mode == "service":
            self.service_image_uri = awsx.ecr.Image(
                f"{self._prefix}-service",
                repository_url=self.repository.repository_url,
                image_tag=service_tag(image_source().tag(cfg.arch)),
                context=str(IMAGE_CONTEXT),
                dockerfile=str(SERVICE_DOCKERFILE),
                platform="linux/arm64" if cfg.arch == "arm64" else "linux/amd64",
                opts=self._child,
            ).image_uri
        return image.image_uri, self.repository.arn

    def _roles(self, ecr_repository_arn: pulumi.Input[str] | None) -> None:
        self.execution_role = self._service_role(
            "execution", "ECS agent pulls the image, writes logs", "ecs-tasks.amazonaws.com",
            pulumi.Output.all(
                self.log_group.arn, self._secret_arn(), ecr_repository_arn, self._key_arn()
            ).apply(lambda args: execution_policy(*args)))
        self.task_role = self._service_role(
            "task", "the runner reads its spec, writes results", "ecs-tasks.amazonaws.com",
            pulumi.Output.all(self.bucket.arn, self._partition, self._account_id,
                              self._key_arn()).apply(
                lambda args: task_policy(self._config, self._name, *args)))

    def _secret_arn(self) -> pulumi.Input[str] | None:
        return self.secret.arn if self.secret is not None else None

    def _task_definition(self, image_uri: pulumi.Input[str]) -> None:
        runner, *interactive = runner_families(self._prefix, self._config)
        self.task_definition = self._runner_definition(image_uri, runner, interactive=False)
        self.interactive_task_definition = (
            self._runner_definition(image_uri, interactive[0], interactive=True)
            if interactive else None)

    def _runner_definition(self, image_uri: pulumi.Input[str], family: str, *,
                           interactive: bool) -> aws.ecs.TaskDefinition:
        """The runner's task definition; ``interactive``: the one ECS Exec tasks run from,
        the same but for its writable root file system."""
        cfg = self._config
        return aws.ecs.TaskDefinition(
            family,
            family=family,
            requires_compatibilities=["EC2"],
            # bridge: with metadata hop limit 1 the containers cannot reach IMDS.
            network_mode="bridge",
            cpu=str(cfg.task_cpu),
            memory=str(cfg.task_memory),
            execution_role_arn=self.execution_role.arn,
            task_role_arn=self.task_role.arn,
            runtime_platform={
                "operating_system_family": "LINUX",
                "cpu_architecture": "ARM64" if cfg.arch == "arm64" else "X86_64",
            },
            # Writable scratch space: the root file system is read-only.
            volumes=[
                aws.ecs.TaskDefinitionVolumeArgs(
                    name=volume,
                    docker_volume_configuration=(
                        aws.ecs.TaskDefinitionVolumeDockerVolumeConfigurationArgs(
                            scope="task", driver="local"
                        )
                    ),
                )
                for volume in WRITABLE_VOLUMES
            ] + [aws.ecs.TaskDefinitionVolumeArgs(name="spot-notice",
                                                  host_path=HOST_NOTICE_DIR)],
            container_definitions=pulumi.Output.all(
                image_uri, self.bucket.bucket, self.log_group.name, self._secret_arn()
            ).apply(lambda args: container_definitions(cfg, self._name, *args,
                                                       interactive=interactive)),
            tags=self.tags,
            opts=self._child,
        )
