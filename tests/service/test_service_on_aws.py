"""The service as the stack's service mode runs it: its settings from the one secret ECS
injects, its database by parts with the login RDS keeps (and rotates) in Secrets Manager,
its stack from the outputs in its environment, and the planned API container started the
way ECS would start it.

Secrets Manager is moto's server; the database is a real PostgreSQL (Debian's, started
by the tests) with trust authentication, so a login shows in ``current_user``: the role a
connection logged in as is the one the secret named.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from rclaude_infra import DeploymentConfig, ServiceConfig, plan
from rclaude_infra.errors import ConfigError
from rclaude_infra.service.settings import (
    SETTINGS_SECRET_ENV,
    ServiceSettings,
    deployment_of,
    expand_settings_secret,
)


def _database(admin_url: str, *roles: str) -> tuple[str, int, str]:
    """A new database owned by the first of ``roles`` (each made, able to log in);
    (host, port, name)."""
    import psycopg

    name = f"svc_{uuid.uuid4().hex[:10]}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        for role in roles:
            connection.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD \'unused-with-trust\'')
        connection.execute(f'CREATE DATABASE "{name}" OWNER "{roles[0]}"')
        for role in roles[1:]:
            connection.execute(f'GRANT ALL ON DATABASE "{name}" TO "{role}"')
    host_port = plain.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    return host, int(port), name


def _login_secret(aws: Any, role: str) -> str:
    """A secret shaped as RDS keeps a managed master password; its ARN."""
    secrets = aws.client("secretsmanager", region_name="us-east-1")
    return str(secrets.create_secret(
        Name=f"rds!db-{uuid.uuid4().hex[:8]}",
        SecretString=json.dumps({"username": role, "password": f"pw-{role}"}))["ARN"])


def _by_parts(host: str, port: int, name: str, login_arn: str) -> dict[str, str]:
    return {"RCLAUDE_DB_HOST": host, "RCLAUDE_DB_PORT": str(port), "RCLAUDE_DB_NAME": name,
            "RCLAUDE_DB_LOGIN_ARN": login_arn,
            # The test server has no TLS; RDS's parameter group forces it (rds.force_ssl).
            "RCLAUDE_DB_SSLMODE": "disable"}


def test_settings_build_the_database_url_from_parts_with_no_login_in_it() -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1-AbCdEf"
    settings = ServiceSettings.from_env({"RCLAUDE_DB_HOST": "db.internal",
                                         "RCLAUDE_DB_LOGIN_ARN": arn})
    assert settings.database_url == ("postgresql+psycopg://db.internal:5432/rclaude"
                                     "?sslmode=require")
    assert settings.database_secret_arn == arn
    for env, field in (({"RCLAUDE_DB_HOST": "h"}, "RCLAUDE_DB_LOGIN_ARN"),
                       ({"RCLAUDE_DB_HOST": "h", "RCLAUDE_DB_LOGIN_ARN": arn,
                         "RCLAUDE_DB_PORT": "99999"}, "RCLAUDE_DB_PORT"),
                       ({"RCLAUDE_DB_HOST": "h", "RCLAUDE_DB_LOGIN_ARN": arn,
                         "RCLAUDE_DB_SSLMODE": "off"}, "RCLAUDE_DB_SSLMODE"),
                       ({"RCLAUDE_DB_HOST": "h", "RCLAUDE_DB_LOGIN_ARN": "not-an-arn"},
                        "RCLAUDE_DB_LOGIN_ARN"),
                       ({"RCLAUDE_STACK_OUTPUTS": "[1, 2]"}, "RCLAUDE_STACK_OUTPUTS")):
        with pytest.raises(ConfigError) as raised:
            ServiceSettings.from_env(env)
        assert raised.value.field == field


def test_the_settings_secret_sets_only_its_names_never_over_the_environment() -> None:
    env = {SETTINGS_SECRET_ENV: json.dumps({"RCLAUDE_SECRETS_KEY": "from-secret",
                                            "STRIPE_SECRET_KEY": "sk_test_1"}),
           "RCLAUDE_SECRETS_KEY": "set-by-hand"}
    expand_settings_secret(env)
    assert env == {"RCLAUDE_SECRETS_KEY": "set-by-hand", "STRIPE_SECRET_KEY": "sk_test_1"}
    for hostile in ({"PATH": "/tmp/evil", "LD_PRELOAD": "/tmp/x.so"}, ["not", "an object"],
                    {"STRIPE_SECRET_KEY": 42}):
        env = {SETTINGS_SECRET_ENV: json.dumps(hostile), "PATH": "/usr/bin"}
        with pytest.raises(ConfigError) as raised:
            expand_settings_secret(env)
        assert raised.value.field.startswith(SETTINGS_SECRET_ENV)
        assert "/tmp/evil" not in str(raised.value) and "/tmp/x.so" not in str(raised.value)
        assert env == {"PATH": "/usr/bin"}  # nothing set, and the object dropped
    broken = {SETTINGS_SECRET_ENV: '{"STRIPE_SECRET_KEY": "sk_live_secret'}
    with pytest.raises(ConfigError) as raised:
        expand_settings_secret(broken)
    assert "sk_live_secret" not in str(raised.value)


def test_a_service_on_the_stack_reaches_it_through_its_outputs_not_pulumi() -> None:
    outputs = {"deployment": "prod", "region": "eu-west-1", "bucket": "b-1",
               "cluster_arn": "arn:aws:ecs:eu-west-1:123456789012:cluster/c"}
    settings = ServiceSettings.from_env({"RCLAUDE_STACK_OUTPUTS": json.dumps(outputs)},
                                        deployment="prod", provider="ecs-ec2")
    deployment = deployment_of(settings)
    # Read without a Pulumi CLI or state: there is none beside the service.
    assert deployment.outputs.bucket == "b-1"
    assert deployment.config.region == "eu-west-1"


def test_each_connection_logs_in_with_the_secret_and_a_rotation_is_followed(
        aws: Any, postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg
    from sqlalchemy import text

    from rclaude_infra.service.store import make_engine

    first, second = f"svc_a_{uuid.uuid4().hex[:6]}", f"svc_b_{uuid.uuid4().hex[:6]}"
    host, port, name = _database(postgres_admin_url, first, second)
    arn = _login_secret(aws, first)
    # The service reads the secret with its task role's credentials (moto's test keys).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = ServiceSettings.from_env(_by_parts(host, port, name, arn))
    assert "pw-" not in settings.database_url and "pw-" not in repr(settings)
    engine = make_engine(settings)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT current_user")).scalar() == first
    # RDS rotates the login: the secret names another, and the old one is refused.
    aws.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=arn, SecretString=json.dumps({"username": second, "password": "pw-2"}))
    plain = postgres_admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as admin:
        admin.execute(f'ALTER ROLE "{first}" NOLOGIN')
    engine.dispose()  # a new connection, as after a restart of the pool
    with engine.connect() as connection:
        assert connection.execute(text("SELECT current_user")).scalar() == second
    engine.dispose()


def test_a_login_secret_of_another_shape_is_refused_without_its_value(aws: Any) -> None:
    from rclaude_infra._aws.db_login import DatabaseLogin

    secrets = aws.client("secretsmanager", region_name="us-east-1")
    arn = secrets.create_secret(Name=f"odd-{uuid.uuid4().hex[:6]}",
                                SecretString="hunter2-plain-text")["ARN"]
    with pytest.raises(ConfigError) as raised:
        DatabaseLogin(arn, session=aws).login()
    assert "hunter2" not in str(raised.value) and raised.value.field == "RCLAUDE_DB_LOGIN_ARN"
    assert "hunter2" not in repr(DatabaseLogin(arn))


@pytest.mark.skipif(shutil.which("bwrap") is None or os.geteuid() != 0,
                    reason="needs bubblewrap (.ci/run installs it) and root for setpriv")
def test_the_planned_api_container_starts_as_ecs_would_and_answers_readyz(
        aws: Any, stack: Any, moto_endpoint: str, postgres_admin_url: str,
        tmp_path: Path) -> None:
    """The API's container definition from the offline plan: its command, environment,
    the settings secret resolved as the ECS agent resolves ``secrets``, its user and a
    read-only root with /tmp its one volume. What only a deployment knows (the stack's
    outputs, the database's address, the login secret's ARN) is the moto stack's and this
    machine's. The one change: its port, since
    here every task shares the machine's network (awsvpc gives each its own)."""
    from cryptography.fernet import Fernet
    from ecs_harness import image_contents, runner_python, sandbox_argv
    from loopback import free_port

    planned = plan(DeploymentConfig(mode="service", service=ServiceConfig(http_only=True)))
    [api] = [d for d in planned.by_type("aws:ecs:TaskDefinition")
             if d.inputs["family"].endswith("-service-api")]
    [container] = json.loads(api.inputs["containerDefinitions"])
    role = f"svc_{uuid.uuid4().hex[:6]}"
    host, port, name = _database(postgres_admin_url, role)
    secrets = aws.client("secretsmanager", region_name="us-east-1")
    settings_arn = secrets.create_secret(
        Name=f"rclaude/dev/service-settings-{uuid.uuid4().hex[:6]}",
        SecretString=json.dumps({"RCLAUDE_SECRETS_KEY": Fernet.generate_key().decode()}))["ARN"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert set(json.loads(env["RCLAUDE_STACK_OUTPUTS"])) >= {"bucket", "cluster_arn",
                                                             "task_definition_arn"}
    env["RCLAUDE_STACK_OUTPUTS"] = json.dumps(
        {k: v for k, v in attrs.asdict(stack).items() if v is not None})
    env.update(_by_parts(host, port, name, _login_secret(aws, role)))
    # The ECS agent resolves each of the definition's secrets before the container starts.
    [injected] = container["secrets"]
    assert injected["name"] == SETTINGS_SECRET_ENV
    env[injected["name"]] = secrets.get_secret_value(SecretId=settings_arn)["SecretString"]
    python, pythonpath = runner_python()
    env.update({"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath,
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_ENDPOINT_URL": moto_endpoint, "AWS_DEFAULT_REGION": "us-east-1"})
    listen = free_port()
    command = [python if part == "python" else str(listen) if part == "8000" else part
               for part in container["command"]]
    volume = tmp_path / "tmp"
    volume.mkdir()
    volume.chmod(0o1777)
    [mount] = container["mountPoints"]
    argv = sandbox_argv(container, [(mount["containerPath"], volume, False)],
                        image_contents(), command, chdir="/")
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline, answer = time.monotonic() + 90, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{listen}/readyz", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert answer is not None, process.communicate(timeout=30)[0][-3000:]
        assert answer.status_code == 200, answer.text
        # The API answers: its database migrated by the secret's login, no session here.
        assert httpx.get(f"http://127.0.0.1:{listen}/v1/me", timeout=5).status_code == 401
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # as ECS stops a task: SIGTERM, then KILL
        try:
            output = process.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output = process.communicate(timeout=30)[0]
    # Its secrets never reach its output.
    assert json.loads(env[SETTINGS_SECRET_ENV])["RCLAUDE_SECRETS_KEY"] not in output


def test_the_settings_secret_carries_every_setting_the_service_reads_from_its_env() -> None:
    from rclaude_infra.service.billing_settings import ENV as STRIPE_ENV
    from rclaude_infra.service.oauth import PROVIDERS
    from rclaude_infra.service.settings import ADMIN_EMAILS_ENV
    from rclaude_infra.service.vault import KEY_ENV
    from rclaude_infra.service_config import SETTINGS_SECRET_NAMES

    oauth = {f"RCLAUDE_{name.upper()}_{part}" for name in PROVIDERS
             for part in ("CLIENT_ID", "CLIENT_SECRET")}
    wanted = {KEY_ENV, ADMIN_EMAILS_ENV, *STRIPE_ENV.values(), *oauth}
    assert wanted <= set(SETTINGS_SECRET_NAMES)


def test_tasks_of_a_new_release_starting_together_migrate_one_after_another(
        postgres_admin_url: str, tmp_path: Path) -> None:
    """The stack's service tasks start with ``RCLAUDE_DB_MIGRATE=1``, several at once: a
    migration waits for the one under way (PostgreSQL's advisory lock), then finds the
    schema there. Shown with the lock held here while a process migrates."""
    import sys

    import psycopg
    from postgres_server import new_database
    from sqlalchemy import create_engine, inspect

    from rclaude_infra.service.store import (
        MIGRATION_LOCK,
        check_revision,
        head_revision,
        prepare,
    )

    url = new_database(postgres_admin_url)
    env = {**os.environ, "RCLAUDE_DATABASE_URL": url, "RCLAUDE_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "rclaude_infra", "db", "upgrade", "--json"]
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        waiting = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        with pytest.raises(subprocess.TimeoutExpired):
            waiting.communicate(timeout=8)  # started, and waiting for the lock
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        output = waiting.communicate(timeout=120)[0]
    assert waiting.returncode == 0 and head_revision() in output, output
    others = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    for run in others:
        output = run.communicate(timeout=120)[0]
        assert run.returncode == 0 and head_revision() in output, output
    settings = ServiceSettings.from_env({"RCLAUDE_DATABASE_URL": url,
                                         "RCLAUDE_DB_MIGRATE": "1"})
    assert settings.migrate_on_start
    engine = create_engine(url)
    try:
        prepare(engine, settings)  # at head already: nothing to do, nothing refused
        check_revision(engine)  # the schema itself is at head, not only the outputs say so
        assert inspect(engine).has_table("usage_records")
    finally:
        engine.dispose()
