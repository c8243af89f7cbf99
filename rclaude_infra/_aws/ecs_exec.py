"""ECS Exec: an interactive command inside a running task's container.

``ExecuteCommand`` opens an SSM session; AWS's ``session-manager-plugin`` binary carries
the terminal over it, started the way the AWS CLI starts it (``aws ecs execute-command``):
the session, the region, ``StartSession``, the profile, the target
``ecs:<cluster>_<task id>_<container runtime id>`` and the endpoint. Plugins newer than
1.2.497.0 read the session (which holds a token) from an environment variable instead of
argv, so the token stays out of the process list whenever the plugin allows it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..errors import ExecError, SessionManagerPluginNotFoundError

PLUGIN = "session-manager-plugin"
INSTALL_URL = ("https://docs.aws.amazon.com/systems-manager/latest/userguide/"
               "session-manager-working-with-install-plugin.html")
SESSION_ENV = "AWS_SSM_START_SESSION_RESPONSE"
_LAST_VERSION_WITHOUT_ENV = (1, 2, 497, 0)
#: Seconds between tries while ECS says the container's exec agent is not connected yet.
READY_DELAYS = (1.0, 2.0, 3.0, 5.0, 8.0)
_NOT_READY = ("InvalidParameterException", "TargetNotConnectedException")


def find_plugin() -> str:
    """The plugin's path, or :class:`SessionManagerPluginNotFoundError` saying where to get it."""
    path = shutil.which(PLUGIN)
    if path is None:
        raise SessionManagerPluginNotFoundError(
            f"Task.exec() on ECS needs AWS's {PLUGIN} on PATH (the AWS CLI uses the same one "
            f"for `aws ecs execute-command`); install it: {INSTALL_URL}")
    return path


def plugin_version(plugin: str) -> tuple[int, ...] | None:
    """``session-manager-plugin --version`` as a tuple, ``None`` when it says nothing usable."""
    try:
        out = subprocess.run([plugin, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\d+(?:\.\d+)+", out)
    return tuple(int(p) for p in match.group(0).split(".")) if match else None


def target(task: Mapping[str, Any], container: str) -> str:
    """The SSM target of ``container`` in a ``DescribeTasks`` task."""
    runtime_id = next((c.get("runtimeId") for c in task.get("containers", [])
                       if c.get("name") == container), None)
    if not runtime_id:
        raise ExecError(f"container {container!r} of task {task.get('taskArn')} has no runtime "
                        "id yet (it is still starting); try again in a few seconds")
    cluster = str(task["clusterArn"]).rsplit("/", 1)[-1]
    task_id = str(task["taskArn"]).rsplit("/", 1)[-1]
    return f"ecs:{cluster}_{task_id}_{runtime_id}"


@contextmanager
def _terminal_signals_to_child() -> Iterator[None]:
    """Ctrl-C and Ctrl-Z belong to the remote shell, not to this process (only the main
    thread may set handlers; elsewhere the caller's handlers stay)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTSTP, signal.SIGQUIT)}
    try:
        for s in saved:
            signal.signal(s, signal.SIG_IGN)
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def not_connected_hint(task: Mapping[str, Any], container: str) -> str:
    """Why ECS Exec's agent in ``container`` is not there, from what ``DescribeTasks`` says
    of it (``enableExecuteCommand``, the container's ``managedAgents``)."""
    if not task.get("enableExecuteCommand", True):
        return ("the task was started without ECS Exec (enableExecuteCommand): start it "
                "again with TaskSpec(interactive=True) (`run --interactive`)")
    found: Mapping[str, Any] = next(
        (c for c in task.get("containers", []) if c.get("name") == container), {})
    agent = next((a for a in found.get("managedAgents", [])
                  if a.get("name") == "ExecuteCommandAgent"), None)
    if agent is not None and agent.get("lastStatus") == "STOPPED":
        return ("ECS Exec's agent in the container stopped"
                + (f": {agent['reason']}" if agent.get("reason") else "")
                + "; it needs a writable root file system, which only the stack's "
                "interactive task definition has (a task started from another definition "
                "with exec on, or a stack deployed before interactive_tasks: deploy with "
                "interactive_tasks=True and start the task with interactive=True)")
    return ("ECS Exec's agent in the container did not connect"
            + (f" (it is {agent.get('lastStatus')})" if agent else "")
            + ": the container must reach ssmmessages on port 443 (egress_ports, and a "
            "NAT or VPC endpoint in private subnets) and the task role must allow the "
            "ssmmessages channels, as the stack's does")


def execute(ecs: Any, task: Mapping[str, Any], container: str, command: str, *,
            plugin: str, profile: str | None, run: Callable[..., int] | None = None) -> int:
    """Run ``command`` interactively in ``container`` of the running ``task`` through
    ``plugin`` (:func:`find_plugin`, called before any AWS call); returns the plugin's exit
    code. ``run`` starts the plugin (default: :func:`subprocess.call`)."""
    from botocore.exceptions import ClientError

    ssm_target = target(task, container)
    for delay in (*READY_DELAYS, None):
        try:
            response = ecs.execute_command(cluster=task["clusterArn"], task=task["taskArn"],
                                           container=container, command=command,
                                           interactive=True)
            break
        except ClientError as exc:
            error = exc.response.get("Error", {})
            # The agent in the container comes up seconds after the task is RUNNING.
            not_ready = error.get("Code") in _NOT_READY
            if not_ready and delay is not None:
                time.sleep(delay)
                continue
            hint = f" ({not_connected_hint(task, container)})" if not_ready else ""
            raise ExecError(f"ECS refused the exec session: {error.get('Code')}: "
                            f"{error.get('Message')}{hint}") from exc
    session = json.dumps(response["session"])
    env = dict(os.environ)
    version = plugin_version(plugin)
    if version is not None and version > _LAST_VERSION_WITHOUT_ENV:
        env[SESSION_ENV] = session
        session = SESSION_ENV
    argv = [plugin, session, ecs.meta.region_name, "StartSession", profile or "",
            json.dumps({"Target": ssm_target}), ecs.meta.endpoint_url]
    with _terminal_signals_to_child():
        return (run or subprocess.call)(argv, env=env)
