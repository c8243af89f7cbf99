"""The runner image built in the account (``build_image="remote"``): upload the package
as the build's sources, start the stack's CodeBuild project, follow it, and tell
whether the image exists.

The stack (``_pulumi/image_build.py``) names the image by the hash of the package's
files, so "is it built?" is one ``DescribeImages`` call: a present tag is never rebuilt,
and a build already running for the same image is waited for rather than doubled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..errors import ImageBuildError, ImageNotReadyError
from ..image_source import ImageBuild, ImageSource, image_source
from ..outputs import StackOutputs
from ..progress import ImageBuildPhase, OnProgress
from . import client_config, error_code

#: How often a running build is asked for its phase, and how long ``up`` waits for it
#: (the project's own timeout is 30 minutes, plus its time queued).
POLL_SECONDS = 10.0
TIMEOUT_SECONDS = 45 * 60
#: Lines of the build's log an error carries.
LOG_TAIL_LINES = 30
_FAILED = ("FAILED", "FAULT", "STOPPED", "TIMED_OUT")
#: How many of the project's newest builds are looked at for one already running.
_RECENT_BUILDS = 10


def _image_parts(image: str) -> tuple[str, str]:
    """``<registry>/<repository>:<tag>`` -> (repository, tag)."""
    path = image.split("/", 1)[1]
    repository, _, tag = path.rpartition(":")
    return repository, tag


class ImageBuilder:
    """One stack's image build: its clients, the image's name and the project's."""

    def __init__(self, session: Any, outputs: StackOutputs, *,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 botocore_config: Any = None) -> None:
        if not outputs.image_build_project or not outputs.image or not outputs.bucket:
            raise ValueError("the stack does not build its image in the account")
        config = botocore_config or client_config()
        region = outputs.region
        self.outputs = outputs
        self.image = outputs.image
        self.project = outputs.image_build_project
        self.repository, self.tag = _image_parts(outputs.image)
        self._ecr = session.client("ecr", region_name=region, config=config)
        self._codebuild = session.client("codebuild", region_name=region, config=config)
        self._s3 = session.client("s3", region_name=region, config=config)
        self._logs = session.client("logs", region_name=region, config=config)
        self._sleep = sleep
        self._clock = clock

    # -- reads ---------------------------------------------------------------------------

    def present(self) -> bool:
        """Whether the repository holds the image's tag (and the service's, in service
        mode: one build makes both, so a stack turned to service mode builds again)."""
        from botocore.exceptions import BotoCoreError, ClientError

        tags = [self.tag]
        if self.outputs.service_image:
            tags.append(_image_parts(self.outputs.service_image)[1])
        try:
            found = self._ecr.describe_images(
                repositoryName=self.repository,
                imageIds=[{"imageTag": tag} for tag in tags]).get("imageDetails", [])
        except BotoCoreError as exc:
            raise ImageBuildError(f"could not look up the runner image {self.image}: "
                                  f"{exc}") from exc
        except ClientError as exc:
            if error_code(exc) in ("ImageNotFoundException",
                                                               "RepositoryNotFoundException"):
                return False
            raise ImageBuildError(f"could not look up the runner image {self.image}: "
                                  f"{exc}") from exc
        held = {tag for image in found for tag in image.get("imageTags", [])}
        return all(tag in held for tag in tags)

    def _builds(self, ids: list[str] | None = None) -> list[dict[str, Any]]:
        """The given builds, or the project's newest; CodeBuild's errors as ours."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if ids is None:
                ids = self._codebuild.list_builds_for_project(
                    projectName=self.project, sortOrder="DESCENDING").get("ids", [])
                ids = ids[:_RECENT_BUILDS]
            builds: list[dict[str, Any]] = (
                self._codebuild.batch_get_builds(ids=ids)["builds"] if ids else [])
        except (ClientError, BotoCoreError) as exc:
            raise ImageBuildError(f"could not read the builds of {self.project}: {exc}") from exc
        return builds

    def _builds_this_image(self, build: dict[str, Any]) -> bool:
        variables = build.get("environment", {}).get("environmentVariables", [])
        return any(v.get("name") == "IMAGE_URI" and v.get("value") == self.image
                   for v in variables)

    def last_build(self) -> dict[str, Any] | None:
        """The newest build of this image, if any."""
        return next((b for b in self._builds() if self._builds_this_image(b)), None)

    def require(self) -> None:
        """Raise :class:`ImageNotReadyError` unless the image exists, saying what its last
        build did."""
        if self.present():
            return
        build = self.last_build()
        if build is None:
            state = "no build of it has run"
        elif build.get("buildStatus") == "IN_PROGRESS":
            state = f"its build {build['id']} is running ({build.get('currentPhase')})"
        else:
            state = f"its last build {build['id']} ended {build.get('buildStatus')}"
        raise ImageNotReadyError(
            f"the runner image {self.image} is not in the stack's repository yet ({state}): "
            "Deployment.ensure_image() (or `rclaude-infra up`) builds it and waits; "
            "no task was submitted")

    # -- the build -----------------------------------------------------------------------

    def ensure(self, *, on_progress: OnProgress | None = None,
               source: ImageSource | None = None, poll_seconds: float = POLL_SECONDS,
               timeout_seconds: float = TIMEOUT_SECONDS) -> ImageBuild:
        """The image, built when missing: wait for a build of it already running, else
        upload the sources and start one; raise :class:`ImageBuildError` when it fails."""
        if self.present():
            return ImageBuild(image=self.image, status="present")
        last = self.last_build()
        build_id = (last["id"] if last is not None and last.get("buildStatus") == "IN_PROGRESS"
                    else self._start(source))
        return self._wait(build_id, on_progress, poll_seconds, timeout_seconds)

    def _upload(self, source: ImageSource) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = self.outputs.bucket, self.outputs.image_source_key or source.key
        try:
            self._s3.head_object(Bucket=bucket, Key=key)
            return  # the same key is the same files
        except ClientError as exc:
            if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                raise ImageBuildError(f"could not read s3://{bucket}/{key}: {exc}") from exc
        try:
            self._s3.put_object(Bucket=bucket, Key=key, Body=source.zip_bytes(),
                                ContentType="application/zip")
        except (ClientError, BotoCoreError) as exc:
            raise ImageBuildError(f"could not upload the image's sources to "
                                  f"s3://{bucket}/{key}: {exc}") from exc

    def _start(self, source: ImageSource | None) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        source = source or image_source()
        expected = self.outputs.image_source_key
        if expected is not None and source.key != expected:
            raise ImageBuildError(
                f"the installed rclaude-infra ({source.key}) is not the one the stack was "
                f"deployed with ({expected}): run up() to deploy it; its build starts then")
        self._upload(source)
        try:
            build = self._codebuild.start_build(
                projectName=self.project,
                # Two processes starting the same image's build within 5 minutes get one.
                idempotencyToken=self.tag,
            )["build"]
        except BotoCoreError as exc:
            raise ImageBuildError(f"could not reach CodeBuild to start {self.project}: "
                                  f"{exc}") from exc
        except ClientError as exc:
            code = error_code(exc)
            if code == "AccountLimitExceededException":
                hint = ("the account may run no more CodeBuild builds of this kind now (new "
                        "accounts can start with a quota of 0 or 1): request more under "
                        "Service Quotas > AWS CodeBuild > 'Concurrently running builds for "
                        "Linux/Small environment', or wait for running builds to end")
            elif code == "ResourceNotFoundException":
                hint = "the build project is missing: run up() to create it"
            else:
                hint = "see the message above"
            raise ImageBuildError(f"CodeBuild refused to start {self.project}: "
                                  f"{exc.response.get('Error', {}).get('Message', exc)}; {hint}"
                                  ) from exc
        build_id: str = build["id"]
        return build_id

    def _wait(self, build_id: str, on_progress: OnProgress | None, poll_seconds: float,
              timeout_seconds: float) -> ImageBuild:
        deadline = self._clock() + timeout_seconds
        seen: tuple[str, str] | None = None
        while True:
            (build,) = self._builds([build_id])
            phase, status = build.get("currentPhase", "?"), build.get("buildStatus", "?")
            if on_progress is not None and (phase, status) != seen:
                on_progress(ImageBuildPhase(build_id=build_id, phase=phase, status=status))
            seen = (phase, status)
            if status == "SUCCEEDED":
                if not self.present():
                    raise ImageBuildError(
                        f"build {build_id} succeeded but the repository has no image tagged "
                        f"{self.tag}", build_id=build_id, phase="COMPLETED",
                        log_tail=self._log_tail(build))
                return ImageBuild(image=self.image, status="built", build_id=build_id,
                                  seconds=_duration(build))
            if status in _FAILED:
                raise self._failure(build)
            if self._clock() >= deadline:
                raise ImageBuildError(
                    f"build {build_id} is still {phase} after {timeout_seconds / 60:.0f} "
                    "minutes; it goes on in the account: ensure_image() waits for it again",
                    build_id=build_id, phase=phase)
            self._sleep(poll_seconds)

    def _failure(self, build: dict[str, Any]) -> ImageBuildError:
        failed = [p for p in build.get("phases", [])
                  if p.get("phaseStatus") not in (None, "SUCCEEDED")]
        phase = failed[0]["phaseType"] if failed else build.get("currentPhase")
        reasons = [f"{c.get('statusCode', '')}: {c.get('message', '')}".strip(": ")
                   for p in failed for c in p.get("contexts", []) if c.get("message")]
        tail = self._log_tail(build)
        where = build.get("logs", {}).get("deepLink")
        return ImageBuildError(
            f"the runner image build {build['id']} ended {build.get('buildStatus')} in phase "
            f"{phase}" + (f": {'; '.join(reasons)}" if reasons else "")
            + ("\n  " + "\n  ".join(tail) if tail else "")
            + (f"\nfull log: {where}" if where else ""),
            build_id=build["id"], phase=phase, log_tail=tail)

    def _log_tail(self, build: dict[str, Any]) -> tuple[str, ...]:
        from botocore.exceptions import ClientError

        logs = build.get("logs", {})
        group, stream = logs.get("groupName"), logs.get("streamName")
        if not group or not stream:
            return ()
        try:
            events = self._logs.get_log_events(logGroupName=group, logStreamName=stream,
                                               limit=LOG_TAIL_LINES, startFromHead=False)
        except ClientError:
            return ()
        return tuple(e["message"].rstrip("\n") for e in events.get("events", []))


def _duration(build: dict[str, Any]) -> float | None:
    start, end = build.get("startTime"), build.get("endTime")
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (end - start).total_seconds()
    return None
