"""The runner image's repository (every stack that builds its image) and the image built
in the account (``build_image="remote"``): an ECR repository,
a CodeBuild project that builds the uploaded package into it, the project's role and
log group. Nothing here runs the build: ``Deployment.up`` uploads the sources and starts
it once the stack exists (``_aws/image_build.py``), and only when the tag is missing.

The tag is the hash of the package's files (:mod:`rclaude_infra.image_source`), so the
task definition names the image before it exists and a changed package changes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import pulumi
import pulumi_aws as aws

from ..config import DeploymentConfig
from ..image_source import BUILDSPEC, PLATFORMS, image_source, service_tag
from ..tasks.agent import CLAUDE_CODE_VERSION
from .documents import (
    CODEBUILD_COMPUTE,
    CODEBUILD_ENVIRONMENTS,
    ecr_lifecycle_policy,
    image_build_policy,
    trust_policy,
)

#: Minutes CodeBuild lets one build run (a cold build takes a few) and wait in its queue.
BUILD_TIMEOUT_MINUTES = 30
QUEUED_TIMEOUT_MINUTES = 60


@attrs.frozen(kw_only=True)
class RemoteImage:
    """What the rest of the stack needs from the build: the image's URI (with its tag),
    the repository's ARN (the execution role pulls from it), and for the outputs the
    project's name and the sources' key."""

    uri: pulumi.Output[str]
    repository_arn: pulumi.Output[str]
    project: pulumi.Output[str]
    source_key: str
    #: With ``mode="service"``: the service's image, built by the same project.
    service_uri: pulumi.Output[str] | None = None


def runner_repository(*, name: str, tags: Mapping[str, str], opts: pulumi.ResourceOptions,
                      aliases: list[pulumi.Alias] | None = None,
                      key_arn: pulumi.Input[str] | None = None) -> aws.ecr.Repository:
    """The stack's ECR repository for the runner image, with the lifecycle policy that
    keeps it small; plain resources, so the plan, the rules and the estimate see them.
    Encrypted with ``key_arn`` when given (a strict stack's key: ECR uses it through a
    grant it makes as the deployer, so pushes and pulls need no KMS rights), else AES256."""
    prefix = f"rclaude-{name}"
    repository = aws.ecr.Repository(
        prefix + "-runner",
        force_delete=True,
        # Each tag is a content hash: a tag never names two images.
        image_tag_mutability="IMMUTABLE",
        image_scanning_configuration={"scan_on_push": True},
        encryption_configurations=[
            {"encryption_type": "AES256"} if key_arn is None
            else {"encryption_type": "KMS", "kms_key": key_arn}],
        tags=tags,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=aliases)),
    )
    aws.ecr.LifecyclePolicy(
        prefix + "-runner",
        repository=repository.name,
        policy=ecr_lifecycle_policy(),
        opts=opts,
    )
    return repository


def remote_image(*, name: str, config: DeploymentConfig, tags: Mapping[str, str],
                 bucket: aws.s3.Bucket, account_id: pulumi.Output[str],
                 opts: pulumi.ResourceOptions,
                 key_arn: pulumi.Input[str] | None = None) -> RemoteImage:
    """Declare the repository, the build project, its role and its log group for the
    deployment ``name``, reading the sources from ``bucket``; ``opts`` parents them."""
    cfg, prefix = config, f"rclaude-{name}"
    source = image_source()
    tag = source.tag(cfg.arch)

    repository = runner_repository(name=name, tags=tags, opts=opts, key_arn=key_arn)
    log_group = aws.cloudwatch.LogGroup(
        f"{prefix}-image-build",
        name=f"/rclaude/{name}/image-build",
        retention_in_days=cfg.log_retention_days,
        kms_key_id=key_arn,
        tags=tags,
        opts=opts,
    )
    role = aws.iam.Role(
        f"{prefix}-image-build",
        description=f"rclaude-infra {name}: CodeBuild builds the runner image",
        assume_role_policy=account_id.apply(
            lambda account: trust_policy("codebuild.amazonaws.com", account)),
        tags=tags,
        opts=opts,
    )
    policy = aws.iam.RolePolicy(
        f"{prefix}-image-build",
        role=role.id,
        policy=pulumi.Output.all(log_group.arn, bucket.arn, repository.arn, key_arn).apply(
            lambda args: image_build_policy(args[0], args[1], source.key, args[2], args[3])),
        opts=opts,
    )
    uri = repository.repository_url.apply(lambda url: f"{url}:{tag}")
    service_uri = (repository.repository_url.apply(lambda url: f"{url}:{service_tag(tag)}")
                   if cfg.mode == "service" else None)
    service_variables: list[Any] = ([{"name": "SERVICE_IMAGE_URI", "value": service_uri}]
                                    if service_uri is not None else [])
    container_type, build_image = CODEBUILD_ENVIRONMENTS[cfg.arch]
    project = aws.codebuild.Project(
        f"{prefix}-image-build",
        name=f"{prefix}-image-build",
        description=f"rclaude-infra {name}: builds the runner image from the "
        "installed package",
        service_role=role.arn,
        build_timeout=BUILD_TIMEOUT_MINUTES,
        queued_timeout=QUEUED_TIMEOUT_MINUTES,
        artifacts={"type": "NO_ARTIFACTS"},
        source={
            "type": "S3",
            "location": bucket.bucket.apply(lambda bucket: f"{bucket}/{source.key}"),
            "buildspec": BUILDSPEC,
        },
        environment={
            "type": container_type,
            "image": build_image,
            "compute_type": CODEBUILD_COMPUTE,
            # Docker inside the build needs it; nothing else runs in this project.
            "privileged_mode": True,
            "image_pull_credentials_type": "CODEBUILD",
            "environment_variables": [
                {"name": "IMAGE_URI", "value": uri},
                {"name": "REGISTRY", "value": repository.repository_url.apply(
                    lambda url: url.split("/", 1)[0])},
                {"name": "PLATFORM", "value": PLATFORMS[cfg.arch]},
                {"name": "CLAUDE_CODE_VERSION", "value": CLAUDE_CODE_VERSION},
                *service_variables,
            ],
        },
        logs_config={
            "cloudwatch_logs": {"status": "ENABLED", "group_name": log_group.name},
            "s3_logs": {"status": "DISABLED"},
        },
        tags=tags,
        # The role's policy first: a build started right after up must be able to use it.
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[policy])),
    )
    return RemoteImage(uri=uri, repository_arn=repository.arn, project=project.name,
                       source_key=source.key, service_uri=service_uri)
