"""Shared fixtures: offline plans under the Pulumi mocks, cached per config."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from plan_helpers import PlanFor

from rclaude_infra import DeploymentConfig, Plan, plan


@pytest.fixture(scope="session", name="plan_for")
def _plan_for() -> PlanFor:
    """``plan_for(**config_fields)``: the plan of deployment ``dev``, computed once per config
    and kept in the suite's plan cache (keyed by the package's files and the config), so
    the other worker, the CLI's subprocesses and the next run read it. A test that patches
    the program calls ``plan()`` itself, uncached."""
    cache: dict[tuple[Any, ...], Plan] = {}

    def get(name: str = "dev", api_key: str | None = None, **fields: Any) -> Plan:
        config = DeploymentConfig(**fields)
        key = (name, api_key, json.dumps(config.to_dict(), sort_keys=True))
        if key not in cache:
            cache[key] = plan(config, name=name, api_key=api_key, cache=True)
        return cache[key]

    return get


def pytest_configure(config: pytest.Config) -> None:
    """The CLI's plan cache (``$RCLAUDE_PLAN_CACHE``) shared by every test's subprocesses,
    whatever their ``RCLAUDE_HOME``: a plan is keyed by what it depends on, so a hit is
    the plan the program would give (tests/test_plan_cache.py).

    Python writes bytecode in the tests as it does on users' machines, whatever the
    machine running them sets: ``PYTHONDONTWRITEBYTECODE`` once hid that a best-of
    delivery pushed the ``__pycache__`` its check left behind. (The xdist workers start
    after this hook, with this environment.)"""
    import os
    import sys

    from tools import cache_root

    os.environ.setdefault("RCLAUDE_PLAN_CACHE", str(cache_root() / "plans"))
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    _fresh_home()


#: The home the suite made, in the process that made it (the workers inherit it).
_MADE_HOME: list[str] = []


def _fresh_home() -> None:
    """Tests run as a user with an empty home, whatever the machine's: its shell startup
    files, git and Claude Code settings never reach a task. Every task command and check
    runs in a login shell (``bash -lc``); one machine's ``~/.bashrc`` ran ``pyenv init``,
    whose rehash lock a killed task once left behind, and then every shell of every
    later test waited a minute for it. The tool installs (tests/tools.py) still use the
    machine's home, where its npm and pip settings are."""
    import os
    import tempfile

    if "RCLAUDE_TEST_REAL_HOME" in os.environ:  # a worker: its controller made it
        return
    os.environ["RCLAUDE_TEST_REAL_HOME"] = os.environ.get("HOME", "")
    home = tempfile.mkdtemp(prefix="rclaude-test-home-")
    os.environ["HOME"] = home
    _MADE_HOME.append(home)


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    for home in _MADE_HOME:
        shutil.rmtree(home, ignore_errors=True)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """What ``-n auto`` starts: a worker and a half per core (3 on CI's 2 cores). About a
    quarter of a worker's time is spent waiting (on Claude Code's turns, a kernel, a
    container, a retry's backoff) with its core idle; the extra worker fills it: 94 to
    103 s where one per core took 104 to 131 s on 2 cores (runs in turn, same machine).
    Twice as many added more start-up and contention than they filled.
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still sets the number."""
    import os

    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    return cores + cores // 2


@pytest.fixture(name="private_home")
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ~/.rclaude (RCLAUDE_HOME) for the test: local tasks, state, passphrase."""
    home = tmp_path / "home"
    monkeypatch.setenv("RCLAUDE_HOME", str(home))
    return home


@pytest.fixture(name="default_plan")
def _default_plan(plan_for: PlanFor) -> Plan:
    return plan_for()


@pytest.fixture(name="ssh_open_to_the_world")
def _ssh_open_to_the_world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The program also creates a security group with SSH open to 0.0.0.0/0 (a mandatory
    violation); returns that group's name. Plans go to a cache of the test's own: the
    shared one is keyed by the package's files, which this patch does not change."""
    from rclaude_infra._pulumi import program

    monkeypatch.setenv("RCLAUDE_PLAN_CACHE", str(tmp_path / "plans"))

    original = program.RclaudeStack._security_group

    def open_ssh(self: Any, vpc_id: Any) -> Any:
        import pulumi_aws as aws

        group = original(self, vpc_id)
        aws.ec2.SecurityGroup("rclaude-dev-debug", description="debug", vpc_id=vpc_id,
                              ingress=[{"protocol": "tcp", "from_port": 22, "to_port": 22,
                                        "cidr_blocks": ["0.0.0.0/0"], "description": "ssh"}],
                              opts=self._child)
        return group

    monkeypatch.setattr(program.RclaudeStack, "_security_group", open_ssh)
    return "rclaude-dev-debug"


# -- moto's server: real HTTP, real botocore validation --------------------------------


def _list_moto_modules_once() -> None:
    """moto's server routes each request by listing its own package directory (a stat of
    each of its 150-odd folders: a fifth of the CPU a request costs it). The listing
    cannot change while the server runs, so it is read once."""
    from moto import backends

    listing = getattr(backends, "list_of_moto_modules", None)
    if listing is None:  # a moto that routes otherwise: nothing to save
        return
    modules = tuple(listing())
    backends.list_of_moto_modules = lambda: iter(modules)


def _name_ecs_service_linked_role_as_aws_does() -> None:
    """moto 5.2 names the role CreateServiceLinkedRole makes for ``ecs.amazonaws.com``
    ``AWSServiceRoleForecs`` (it capitalises only the services in its own table); IAM
    names it ``AWSServiceRoleForECS`` (ECS Developer Guide, "Using service-linked roles
    for Amazon ECS"), the name ``up()`` looks for. Its table gets the real name."""
    from moto.iam import models

    table = getattr(models, "SERVICE_NAME_CONVERSION", None)
    if isinstance(table, dict):
        table.setdefault("ecs", "ECS")


@pytest.fixture(scope="session", name="moto_endpoint")
def _moto_endpoint() -> Any:
    """A moto server on a free loopback port for the whole session; its URL."""
    import logging
    import socket

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    _list_moto_modules_once()
    _name_ecs_service_linked_role_as_aws_does()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(name="aws")
def _aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 Session whose clients reach moto's server (through AWS_ENDPOINT_URL)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return _testing_session()


@pytest.fixture(scope="session", name="scaffold")
def _scaffold() -> Any:
    """The worker's one session for what tests set up in moto before they start (the
    stack), so its clients are made once (:func:`moto_stack._client`). It reaches moto
    through the ``AWS_ENDPOINT_URL`` that ``aws`` sets: use it alongside ``aws``."""
    return _testing_session()


def _testing_session() -> Any:
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    # One loader for every test's session: botocore parses a service's model once per
    # loader, and a fresh session per test parsed them again each time (a tenth of the
    # suite's time).
    core.register_component("data_loader", _shared_loader())
    return boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1",
        botocore_session=core,
    )


@functools.cache
def _shared_loader() -> Any:
    import botocore.loaders

    return botocore.loaders.create_loader()


@pytest.fixture(name="stack")
def _stack(aws: Any, scaffold: Any) -> Any:
    """A deployed stack's task-side resources, made in moto (:mod:`moto_stack`)."""
    from moto_stack import make_stack

    return make_stack(scaffold)


@pytest.fixture(name="deployment")
def _deployment(aws: Any, stack: Any) -> Any:
    """A task-capable Deployment on ``stack``, from the JSON ``pulumi stack output --json``
    prints."""
    from moto_stack import QUICK_POLL

    from rclaude_infra import Deployment

    return Deployment.from_outputs("dev", json.dumps(stack.to_dict()), session=aws,
                                   poll_interval=QUICK_POLL)


@pytest.fixture(name="reported")
def _reported(aws: Any, stack: Any) -> Any:
    """``(deployment, reports)``: a Deployment on ``stack`` whose ECS provider looks at ECS
    on every read (no status cache), and the :class:`moto_stack.EcsReports` that make ECS
    describe chosen tasks as its agent would (stop codes moto cannot give)."""
    from moto_stack import EcsReports

    from rclaude_infra import Deployment, DeploymentConfig
    from rclaude_infra._aws.ecs import EcsProvider

    reports = EcsReports().attach(aws)
    provider = EcsProvider(aws, stack, deployment="dev", poll_interval=0.0)
    return Deployment("dev", DeploymentConfig(), tasks=provider), reports


@pytest.fixture(name="offline_env")
def _offline_env(tmp_path: Path) -> dict[str, str]:
    """An environment for subprocesses with no AWS credentials (and no metadata endpoint),
    no Pulumi CLI on PATH, no API key, and a private ~/.rclaude."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "PULUMI_")) and k != "ANTHROPIC_API_KEY"}
    env.update(COLUMNS="200", RCLAUDE_HOME=str(tmp_path / "home"),
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    return env


# -- the real Claude Code CLI against a scripted Anthropic API -------------------------

@pytest.fixture(scope="session", name="claude_bin")
def _claude_bin() -> Path:
    """The directory holding the real ``claude`` of the pinned version, installed from npm
    on first use (tests/tools.py; skips, saying why, only when npm is missing or cannot
    install it)."""
    import subprocess

    from tools import ToolUnavailable, claude_code

    from rclaude_infra.tasks.agent import CLAUDE_CODE_VERSION

    try:
        folder = claude_code()
    except ToolUnavailable as exc:
        pytest.skip(str(exc))
    version = subprocess.run([str(folder / "claude"), "--version"], capture_output=True,
                             text=True, timeout=60).stdout
    assert CLAUDE_CODE_VERSION in version, version
    return folder


@pytest.fixture(name="fake_api")
def _fake_api(claude_bin: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A scripted Anthropic API on loopback, with the environment that points the real
    Claude Code at it (inherited by local runners): set ``fake_api.script`` first."""
    import os

    from fake_anthropic import PLANTED_KEY, FakeAnthropic

    with FakeAnthropic() as fake:
        monkeypatch.setenv("PATH", f"{claude_bin}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", PLANTED_KEY)
        # An error is final at once: Claude Code would otherwise retry a 5xx with backoff.
        monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "0")
        monkeypatch.delenv("CLAUDE_CODE_OAUTH_TOKEN", raising=False)
        yield fake


# -- live tests: a real AWS account and the Pulumi CLI, only when asked -----------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-aws", action="store_true", default=False,
                     help="run tests/live against a real AWS account (needs credentials and "
                     "the Pulumi CLI; creates and destroys real resources)")
    parser.addoption("--days-ahead", type=int, default=0, metavar="N",
                     help="run with the clock of the test processes (and moto's server in "
                     "them) N days ahead, ticking: a test that holds a fixed date fails "
                     "(the processes the tests start keep the real time)")


@pytest.fixture(autouse=True)
def _clock_ahead(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``--days-ahead N``: every clock read in this test's process is N days later
    (time-machine patches the C functions, threads and moto's server included). The
    Pulumi engine's calls run on the real clock: its gRPC server does not start under
    time-machine (it hangs), and the engine is a process of its own on a real machine."""
    days = request.config.getoption("--days-ahead")
    if not days:
        yield
        return
    import datetime as dt
    import threading

    import time_machine

    from rclaude_infra._pulumi.engine import StackSession

    traveller = time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=days))
    call = StackSession._call  # every call into the Automation API goes through it
    lock, inside = threading.Lock(), [0]  # deployments in several threads at once

    def on_the_real_clock(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            inside[0] += 1
            if inside[0] == 1:
                traveller.stop()
        try:
            return call(self, *args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1
                if inside[0] == 0:
                    traveller.start()

    monkeypatch.setattr(StackSession, "_call", on_the_real_clock)
    traveller.start()
    try:
        yield
    finally:
        traveller.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-aws"):
        return
    skip = pytest.mark.skip(reason="live AWS test: run with --run-aws, AWS credentials and the "
                            "Pulumi CLI")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(name="bare")
def _bare(tmp_path: Path) -> Path:
    """``served/o/app.git`` (``served/`` is a git host's root): ``add`` subtracts."""
    from git_repos import bare_repository

    return bare_repository(tmp_path / "served" / "o" / "app.git")


# -- Checkov, the scanner a security team runs on Terraform plans ------------------------


@pytest.fixture(scope="session", name="checkov")
def _checkov() -> list[str]:
    """The command that runs Checkov of the pinned version, installed with pip into a venv
    of its own on first use (tests/tools.py; skips, saying why, only when pip cannot
    install it)."""
    from tools import ToolUnavailable, checkov

    try:
        return checkov()
    except ToolUnavailable as exc:
        pytest.skip(str(exc))

