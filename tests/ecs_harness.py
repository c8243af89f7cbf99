"""Start a task the way ECS would: from the planned task definition and the RunTask the
library made, in a bubblewrap sandbox, against moto's server.

What ECS on EC2 does for our task, and what stands in for it here:

- **The container definition** comes from the offline plan (``plan()``, the same program
  ``up`` deploys). Values only a deployment knows (the bucket, the secret's ARN) are mapped
  to what the moto stack holds, by the plan's outputs.
- **RunTask's overrides** (command, environment) are read back from ``DescribeTasks`` of
  the task the library started; they win over the definition, as in ECS.
- **``secrets``** are resolved from Secrets Manager (moto) before the container starts; a
  secret without a current value fails the start the way ECS does
  (``ResourceInitializationError ... AWSCURRENT``, shared/reference/ecs-runtime-facts.md).
- **The user** (``1000:1000``) through ``setpriv``; **a read-only root file system** with
  only the declared volumes writable: bubblewrap (Debian's ``bwrap``) mirrors this machine's
  root read-only, each ``mountPoint`` gets a fresh task-scoped directory (Docker seeds a
  volume from the image: ``/workspace`` and its ``home`` belong to the runner's user), and
  the root is remounted read-only.
- **The image** is this machine's root, read-only, with what the image adds bound in
  read-only at the image's paths: the package at ``/opt/rclaude`` and attrs/boto3 beside
  it (:func:`image_contents`), Claude Code where a test puts it (``image_paths``).
- **The task role's credentials** (the ECS agent's credentials endpoint) are a session of
  the stack's task role in moto's STS named after the ECS task's id, as ECS names it
  (aws/amazon-ecs-agent#3498: "tasks assume the task role and the session ID is the task
  ID"), and ``AWS_ENDPOINT_URL`` points the SDK at moto. moto does not enforce IAM
  policies (``${aws:userid}`` included): tests check the requests a run made against the
  task role's policy document instead (test_isolation.py).
- **awslogs**: the container's output goes to the task's log stream
  (``task/<container>/<ecs task id>``) in moto's CloudWatch Logs; when the container exits
  the task is stopped in ECS (``Essential container in task exited``).
- **What the ECS agent reports** and moto cannot store (it has no
  ``SubmitContainerStateChange``): the stop code and the container's exit code are added to
  ``DescribeTasks`` answers at the botocore boundary (:meth:`EcsHarness.watch`), in the
  shapes of the API reference (``stopCode: EssentialContainerExited`` with
  ``containers[].exitCode``, or ``TaskFailedToStart`` with the reason).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from moto_stack import keep_exec_flags

from rclaude_infra import Plan, StackOutputs
from rclaude_infra._pulumi.documents import (
    EXEC_AGENT_DIR_PREFIX,
    EXEC_AGENT_LOG_DIR,
    EXEC_AGENT_MOUNTS,
)

#: Where ECS Exec's SSM agent keeps its state (it writes there when it starts): with a
#: writable root file system the container may write it, with a read-only one it may not.
WRITABLE_ROOT_PROBE = "/var/lib/amazon/ssm"
#: Host directories never mirrored into the container.
_SKIP = {"proc", "dev", "sys", "lost+found", "old_root", ".dockerenv"}


class Container:
    """A started container: signal its main process (as ``docker kill`` would, through the
    init process), wait for it."""

    def __init__(self, harness: EcsHarness, task_arn: str,
                 process: subprocess.Popen[str] | None, start_error: str | None = None) -> None:
        self._harness = harness
        self._task_arn = task_arn
        self._process = process
        self._start_error = start_error

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the container's command (bwrap's child)."""
        os.kill(self.main_pid(), signum)

    def main_pid(self) -> int:
        """The process id of the container's command (bwrap's child)."""
        import psutil

        assert self._process is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            children = psutil.Process(self._process.pid).children()
            if children:
                return int(children[0].pid)
            time.sleep(0.05)
        raise AssertionError("the container's command did not start")

    def wait(self, timeout: float = 180) -> ContainerExit:
        if self._process is None:
            return ContainerExit(exit_code=None, start_error=self._start_error, output="")
        output, _ = self._process.communicate(timeout=timeout)
        self._harness._exited(self._task_arn, self._process.returncode, output)
        return ContainerExit(exit_code=self._process.returncode, start_error=None,
                             output=output)


@attrs.frozen
class ContainerExit:
    exit_code: int | None
    #: Why ECS did not start the container, when it did not.
    start_error: str | None
    output: str


def with_credential_secret(session: Any, stack: StackOutputs,
                           value: str | None) -> StackOutputs:
    """``stack`` with the deployment's credential secret, as ``up`` makes it; without a
    value, as a stack deployed without the key would have it."""
    import uuid

    # moto's server lives for the session: a fresh name per stack, as up's name_prefix gives.
    fields: dict[str, Any] = {"Name": f"rclaude/dev/anthropic-api-key-{uuid.uuid4().hex[:8]}"}
    if value is not None:
        fields["SecretString"] = value
    arn = session.client("secretsmanager").create_secret(**fields)["ARN"]
    return attrs.evolve(stack, secret_arn=arn)


#: Where the image holds the package and what the runner imports (its Dockerfile copies
#: the package to /opt/rclaude and installs attrs and boto3): here bound in read-only from
#: this checkout and its environment, wherever they are (under /tmp too, which the
#: container's own /tmp volume would hide).
IMAGE_PACKAGE = "/opt/rclaude/rclaude_infra"
IMAGE_SITE = "/opt/rclaude/site"


def runner_python() -> tuple[str, str]:
    """The interpreter the runner's user may run, and its PYTHONPATH in the container
    (pyenv's interpreter lives in /root, which uid 1000 may not enter; Debian's is the same
    Python 3.11)."""
    return "/usr/bin/python3", os.pathsep.join(["/opt/rclaude", IMAGE_SITE])


def image_contents() -> dict[str, str]:
    """This checkout's package and its dependencies' directory, at the image's paths."""
    import attrs as attrs_module

    import rclaude_infra

    return {str(Path(rclaude_infra.__file__).parent): IMAGE_PACKAGE,
            str(Path(attrs_module.__file__).parents[1]): IMAGE_SITE}


def _duplicate_mount(mounts: list[tuple[str, Path, bool]]) -> str | None:
    """Docker's refusal of a container with two mounts at one destination, as ECS reports
    it (the container never starts), or ``None``."""
    seen: set[str] = set()
    for inside, _, _ in mounts:
        if inside in seen:
            return ("CannotStartContainerError: Error response from daemon: Duplicate mount "
                    f"point: {inside}")
        seen.add(inside)
    return None


def _mirror(targets: list[str]) -> list[str]:
    """bwrap arguments for a root that is this machine's, read-only, with a directory made
    at each of ``targets`` (where volumes are mounted)."""
    args: list[str] = []

    def visit(host: Path, inside: str) -> None:
        for child in sorted(host.iterdir()):
            if inside == "/" and child.name in _SKIP:
                continue
            path = f"{inside.rstrip('/')}/{child.name}"
            if any(t == path for t in targets):
                args.extend(["--dir", path])
            elif any(t.startswith(path + "/") for t in targets):
                if child.is_symlink():
                    raise ValueError(f"a volume under a symlinked path: {path}")
                args.extend(["--dir", path])
                visit(child, path)
            elif child.is_symlink():
                args.extend(["--symlink", os.readlink(child), path])
            else:
                args.extend(["--ro-bind", path, path])

    visit(Path("/"), "/")
    for target in targets:  # targets under directories that do not exist on this machine
        if not any(a == target for a in args):
            args.extend(["--dir", target])
    return args


def sandbox_argv(container: Mapping[str, Any], mounts: list[tuple[str, Path, bool]],
                 image_paths: Mapping[str, str], command: list[str], *,
                 chdir: str) -> list[str]:
    """bwrap's command line for ``container`` (a container definition): this machine's
    root read-only as the image, ``image_paths`` bound in, ``mounts`` (where, host
    directory, read-only) its volumes, the root remounted read-only when the definition
    says so, and ``command`` run as the definition's user."""
    uid, gid = container["user"].split(":")
    # bwrap makes a file's mount point itself; directories are made by the mirror.
    directories = [inside for inside, host, _ in mounts if host.is_dir()]
    argv = ["bwrap", "--die-with-parent", "--proc", "/proc", "--dev", "/dev",
            *_mirror(sorted([*directories, *image_paths.values()]))]
    for parent in sorted({str(Path(inside).parent) for inside, host, _ in mounts
                          if not host.is_dir()}):
        argv += ["--perms", "0755", "--dir", parent]  # as Docker makes a bind's parents
    for inside, host, read_only in mounts:
        argv += ["--ro-bind" if read_only else "--bind", str(host), inside]
    for host_path, inside in image_paths.items():
        argv += ["--ro-bind", host_path, inside]
    if container.get("readonlyRootFilesystem"):
        argv += ["--remount-ro", "/"]
    return [*argv, "--chdir", chdir, "--",
            "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *command]


class EcsHarness:
    """Runs the ECS tasks the library starts, as ECS would start them (see the module)."""

    def __init__(self, plan: Plan, stack: StackOutputs, session: Any, *, root: Path,
                 endpoint: str, image_paths: Mapping[str, str] | None = None,
                 extra_path: tuple[str, ...] = ()) -> None:
        self.plan = plan
        self.stack = stack
        self.session = session
        self.root = root
        self.endpoint = endpoint
        self.image_paths = {**image_contents(), **(image_paths or {})}
        self.extra_path = extra_path
        self.renames = {str(plan.outputs[name]): str(getattr(stack, name))
                        for name in ("bucket", "secret_arn", "log_group")
                        if plan.outputs.get(name) and getattr(stack, name)}
        definitions = {d.name: d for d in plan.by_type("aws:ecs:TaskDefinition")}
        #: The families of the default and (if any) interactive definitions.
        self.families = [d.inputs["family"] for name, d in sorted(
            definitions.items(), key=lambda item: item[0].endswith("-interactive"))]
        #: Containers started, and the labels ECS gives each, by task ARN.
        self.running: dict[str, Container] = {}
        self.labels: dict[str, dict[str, str]] = {}
        default = next(d for name, d in definitions.items()
                       if not name.endswith("-interactive"))
        [self.container] = json.loads(default.inputs["containerDefinitions"])
        self.volumes = {v["name"]: v for v in default.inputs.get("volumes", [])}
        #: The definition interactive tasks run from (``interactive_tasks=True``), if any.
        self.interactive_container: dict[str, Any] | None = None
        for name, definition in definitions.items():
            if name.endswith("-interactive"):
                [self.interactive_container] = json.loads(
                    definition.inputs["containerDefinitions"])
                self.volumes.update({v["name"]: v for v in definition.inputs["volumes"]})
        #: This machine's stand-in for the instance's host paths (a ``hostPath`` volume):
        #: a test writes there what the instance would (the spot notice).
        self.host = root / "host"
        #: ECS task id -> the access key of its task role session.
        self.access_keys: dict[str, str] = {}
        #: task ARN -> (stop code, exit code, reason) as the ECS agent would report them.
        self.ended: dict[str, tuple[str, int | None, str]] = {}

    def watch(self, session: Any) -> None:
        """Make every ECS client ``session`` creates from now on see what the ECS agent
        reported for the tasks this harness ran."""
        def report(parsed: dict[str, Any], **_: Any) -> None:
            for task in parsed.get("tasks", []):
                ended = self.ended.get(task["taskArn"])
                if ended is None:
                    continue
                code, exit_code, reason = ended
                task.update(stopCode=code, stoppedReason=reason, lastStatus="STOPPED")
                for container in task.get("containers", []):
                    if container.get("name") == self.container["name"] and exit_code is not None:
                        container["exitCode"] = exit_code

        session.events.register("after-call.ecs.DescribeTasks", report)
        keep_exec_flags(session)

    def _mapped(self, value: str) -> str:
        return self.renames.get(value, value)

    def _credentials(self, ecs_id: str) -> dict[str, str]:
        """The task role's credentials as the ECS agent's endpoint gives them: a session of
        the role named after the task's id (so its aws:userid is ``<role id>:<task id>``);
        moto's test keys for a stack without a role."""
        if self.stack.task_role_arn is None:
            return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        sts = self.session.client("sts", endpoint_url=self.endpoint)
        granted = sts.assume_role(RoleArn=self.stack.task_role_arn,
                                  RoleSessionName=ecs_id)["Credentials"]
        self.access_keys[ecs_id] = granted["AccessKeyId"]
        return {"AWS_ACCESS_KEY_ID": granted["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": granted["SecretAccessKey"],
                "AWS_SESSION_TOKEN": granted["SessionToken"]}

    def _environment(self, container: Mapping[str, Any], overrides: Mapping[str, Any],
                     ecs_id: str) -> dict[str, str] | str:
        """The container's environment, or why ECS could not start it."""
        env = {e["name"]: self._mapped(e["value"]) for e in container["environment"]}
        secrets = self.session.client("secretsmanager", endpoint_url=self.endpoint)
        for secret in container.get("secrets", []):
            try:
                env[secret["name"]] = secrets.get_secret_value(
                    SecretId=self._mapped(secret["valueFrom"]))["SecretString"]
            except secrets.exceptions.ResourceNotFoundException as exc:
                return ("ResourceInitializationError: unable to pull secrets or registry auth:"
                        f" execution resource retrieval failed: unable to retrieve secret from "
                        f"asm: service call has been retried 1 time(s): {exc}")
        env.update({e["name"]: e["value"] for e in overrides.get("environment", [])})
        python, pythonpath = runner_python()
        env.update({
            "PATH": os.pathsep.join([*self.extra_path, str(Path(python).parent), "/usr/bin",
                                     "/bin"]),
            "PYTHONPATH": pythonpath, "PYTHON": python,
            **self._credentials(ecs_id),
            "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": env.get(
                "AWS_REGION", "us-east-1"),
        })
        return env

    def _volumes(self, container: Mapping[str, Any],
                 task_id: str) -> list[tuple[str, Path, bool]]:
        """One fresh directory per task-scoped volume, seeded as Docker seeds a volume from
        the image (the work space and its home belong to the runner's user); a host path
        volume is :attr:`host`'s directory. Each as (where in the container, the host
        directory, whether it is mounted read-only)."""
        uid, gid = (int(x) for x in container["user"].split(":"))
        made = []
        for mount in container["mountPoints"]:
            volume = self.volumes.get(mount["sourceVolume"], {})
            if volume.get("hostPath"):
                host = self.host / volume["hostPath"].strip("/")
                host.mkdir(parents=True, exist_ok=True)
                made.append((mount["containerPath"], host, bool(mount.get("readOnly"))))
                continue
            host = self.root / task_id / mount["sourceVolume"]
            host.mkdir(parents=True, exist_ok=True)
            if mount["containerPath"] == "/workspace":
                (host / "home").mkdir()
                for path in (host, host / "home"):
                    os.chown(path, uid, gid)
            if mount["containerPath"] == "/tmp":
                host.chmod(0o1777)
            made.append((mount["containerPath"], host, bool(mount.get("readOnly"))))
        return made

    def _exec_agent_mounts(self, task_id: str) -> list[tuple[str, Path, bool]]:
        """What the ECS agent adds for a task started with ``enableExecuteCommand``
        (amazon-ecs-agent, agent/engine/execcmd ``InitializeContainer``: seven binds): the
        SSM agent's binaries, configuration and certificate, read-only, under
        ``/ecs-execute-command-<uuid>/``, and its log directory
        (``/var/log/ecs/exec/<task>/<container>`` on the host) at ``/var/log/amazon/ssm``.
        Here the binaries are stand-in files: nothing runs them."""
        deps = self.root / task_id / "exec-agent"
        inside = f"{EXEC_AGENT_DIR_PREFIX}{uuid.uuid4()}"
        made = []
        for name in EXEC_AGENT_MOUNTS:
            host = deps / name
            host.parent.mkdir(parents=True, exist_ok=True)
            host.write_text(f"stand-in for the ECS agent's {name}\n")
            made.append((f"{inside}/{name}", host, True))
        logs = self.root / task_id / "exec-logs"
        logs.mkdir(parents=True, exist_ok=True)
        made.append((EXEC_AGENT_LOG_DIR, logs, False))
        return made

    def run(self, task_arn: str, *, timeout: float = 180) -> ContainerExit:
        """Start the container of ``task_arn`` and wait for it (see :meth:`start`)."""
        return self.start(task_arn).wait(timeout)

    def start(self, task_arn: str) -> Container:
        """Start the container of ``task_arn``; its output goes to the task's log stream
        when it exits, then the task is stopped in ECS."""
        ecs = self.session.client("ecs", endpoint_url=self.endpoint)
        cluster = self.stack.cluster_arn
        [task] = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"]
        container, family = self.container, self.families[0]
        if task["taskDefinitionArn"] == self.stack.interactive_task_definition_arn:
            assert self.interactive_container is not None, "the plan has no interactive task"
            container, family = self.interactive_container, self.families[1]
        [overrides] = [o for o in task["overrides"]["containerOverrides"]
                       if o["name"] == container["name"]]
        ecs_id = task_arn.rsplit("/", 1)[-1]
        mounts = self._volumes(container, ecs_id)
        if task.get("enableExecuteCommand"):
            mounts += self._exec_agent_mounts(ecs_id)
        refused = _duplicate_mount(mounts) or self._environment(container, overrides, ecs_id)
        if isinstance(refused, str):
            ecs.stop_task(cluster=cluster, task=task_arn, reason=refused[:255])
            self.ended[task_arn] = ("TaskFailedToStart", None, refused[:255])
            return Container(self, task_arn, None, start_error=refused)
        env = refused
        command = overrides.get("command") or container.get("command")
        assert command, "neither the override nor the definition gives a command"
        if command[0] == "python":  # the image's python: here the one uid 1000 may run
            command = [env["PYTHON"], *command[1:]]
        uid, gid = container["user"].split(":")
        if not container.get("readonlyRootFilesystem"):
            # A writable root: Docker's container layer. Here the image's files stay
            # read-only binds and the paths ECS Exec's agent writes its state to get a
            # directory of the task's own, writable by the container's user.
            layer = self.root / ecs_id / "root-layer"
            layer.mkdir(parents=True, exist_ok=True)
            os.chown(layer, int(uid), int(gid))
            mounts.append((WRITABLE_ROOT_PROBE, layer, False))
        argv = sandbox_argv(container, mounts, self.image_paths, command, chdir="/workspace")
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace")
        started = Container(self, task_arn, process)
        #: The labels the ECS agent gives the container (what `docker ps --filter` sees).
        self.labels[task_arn] = {"com.amazonaws.ecs.task-definition-family": family,
                                 "com.amazonaws.ecs.container-name": container["name"]}
        self.running[task_arn] = started
        return started

    def docker_on_host(self, bin_dir: Path) -> Path:
        """A ``docker`` for what runs on the instance (the spot watcher): ``ps -q`` with
        ``--filter label=K=V`` lists the running containers with those labels (all must
        match, as Docker ANDs label filters), ``kill --signal=SIG ID...`` signals their
        commands. It knows the containers running now."""
        import sys

        state = bin_dir / "containers.json"
        state.write_text(json.dumps({
            arn.rsplit("/", 1)[-1]: {"labels": self.labels[arn], "pid": started.main_pid()}
            for arn, started in self.running.items()}))
        docker = bin_dir / "docker"
        docker.write_text(f"""#!{sys.executable}
import json, os, signal, sys
containers = json.load(open({str(state)!r}))
verb, *args = sys.argv[1:]
if verb == "ps":
    wanted = [args[i + 1].removeprefix("label=") for i, a in enumerate(args) if a == "--filter"]
    for cid, c in containers.items():
        if all(c["labels"].get(k) == v for k, _, v in (w.partition("=") for w in wanted)):
            print(cid)
elif verb == "kill":
    number = getattr(signal, args[0].removeprefix("--signal="))
    for cid in args[1:]:
        os.kill(containers[cid]["pid"], number)
else:
    sys.exit(f"docker {{verb}}: not modelled")
""")
        docker.chmod(0o755)
        return docker

    def _exited(self, task_arn: str, exit_code: int, output: str) -> None:
        self.running.pop(task_arn, None)
        ecs_id = task_arn.rsplit("/", 1)[-1]
        self._awslogs(ecs_id, output)
        reason = "Essential container in task exited"
        ecs = self.session.client("ecs", endpoint_url=self.endpoint)
        ecs.stop_task(cluster=self.stack.cluster_arn, task=task_arn, reason=reason)
        self.ended[task_arn] = ("EssentialContainerExited", exit_code, reason)
        shutil.rmtree(self.root / ecs_id, ignore_errors=True)

    def _awslogs(self, ecs_id: str, output: str) -> None:
        options = self.container["logConfiguration"]["options"]
        group = self._mapped(options["awslogs-group"])
        stream = f"{options['awslogs-stream-prefix']}/{self.container['name']}/{ecs_id}"
        logs = self.session.client("logs", endpoint_url=self.endpoint)
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(time.time() * 1000)
        events = [{"timestamp": now + i, "message": line}
                  for i, line in enumerate(output.splitlines()) if line]
        for start in range(0, len(events), 1000):
            logs.put_log_events(logGroupName=group, logStreamName=stream,
                                logEvents=events[start:start + 1000])
