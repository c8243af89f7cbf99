"""The Automation API wrapper at its boundary: which `pulumi` commands it runs, with what
environment, and how it reads their output and errors (tests/fake_pulumi.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from fake_pulumi import LOCKED, FakePulumi, failure_events

from rclaude_infra import (
    BudgetExceededError,
    ConfigError,
    CredentialsError,
    Deployment,
    DeploymentConfig,
    DeploymentFailedError,
    MissingCredentialError,
    PolicyViolationError,
    PulumiNotFoundError,
    StackLockedError,
    StackNotFoundError,
    Usage,
)
from rclaude_infra.progress import (
    Diagnostic,
    ResourceDone,
    ResourceFailed,
    ResourceStarted,
    Summary,
)

KEY = "sk-ant-api03-LIFECYCLE-key-55aa"


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws: Any) -> Path:
    # AWS is moto's server (the aws fixture's endpoint): up() looks for ECS's
    # service-linked role before the engine runs.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    home = tmp_path / "rclaude-home"
    monkeypatch.setenv("RCLAUDE_HOME", str(home))
    for name in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        monkeypatch.delenv(name, raising=False)
    # up() refuses without the tasks' credential (tests/test_auth.py); these tests are about
    # everything else, so the environment has one.
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    return home


def deployment(fake: FakePulumi, config: DeploymentConfig | None = None, **kw: Any) -> Deployment:
    return Deployment("dev", config or DeploymentConfig(), pulumi_command=fake, **kw)


def test_first_up_selects_creates_configures_and_deploys(_home: Path) -> None:
    fake = FakePulumi()
    outputs = deployment(fake, api_key=KEY).up(progress=False)
    assert fake.verbs() == ["stack select", "stack init", "config set-all", "up",
                            "stack output", "stack output", "stack history"]
    select, init, set_all, up, *_ = fake.calls
    assert select.args == ["--non-interactive", "stack", "select", "--stack", "dev"]
    assert init.args == ["--non-interactive", "stack", "init", "dev",
                         "--secrets-provider", "passphrase"]
    # Every DeploymentConfig field as rclaude:<field>; the key as a secret, on the CLI's
    # standard input: in no command's arguments (which the process list shows).
    pairs = {set_all.args[i + 1].split("=", 1)[0]: set_all.args[i]
             for i, a in enumerate(set_all.args) if a in ("--plaintext", "--secret")}
    assert pairs["rclaude:region"] == "--plaintext"
    assert "rclaude:anthropic_api_key" not in pairs
    (secret,) = fake.stdin_calls
    assert secret["args"] == ["config", "set", "--secret", "--non-interactive", "--stack",
                              "dev", "rclaude:anthropic_api_key"]
    assert secret["stdin"] == KEY and Path(secret["cwd"]) == Path(init.cwd)
    assert not any(KEY in arg for call in fake.calls for arg in call.args)
    assert fake.config["rclaude:anthropic_api_key"] == {"value": KEY, "secret": True}
    assert f"rclaude:instance_types={json.dumps(['t3.medium', 't3a.medium'])}" in set_all.args
    assert up.args[:4] == ["--non-interactive", "up", "--yes", "--skip-preview"]
    assert up.args[up.args.index("--policy-pack") + 1].endswith("rclaude_infra/_pulumi/crossguard")
    assert up.args[up.args.index("--exec-kind") + 1] == "auto.inline"
    assert "--event-log" in up.args and up.args[-2:] == ["--stack", "dev"]
    assert outputs.bucket == "rclaude-dev-results-9a8b7c6"
    assert outputs.subnet_ids == ("subnet-0a1b2c3d", "subnet-4e5f6a7b")


def test_one_work_directory_and_environment_per_stack(_home: Path) -> None:
    fake = FakePulumi()
    d = deployment(fake)
    d.up(progress=False)
    d.preview(progress=False)
    work_dirs = {c.cwd for c in fake.calls}
    assert len(work_dirs) == 1
    (work_dir,) = work_dirs
    assert Path(work_dir).parent == _home / "workspaces"
    assert Path(work_dir).name.startswith("rclaude-dev-")
    project = (Path(work_dir) / "Pulumi.yaml").read_text()
    assert f"url: {(_home / 'state').as_uri()}" in project  # local file backend, no login
    env = fake.calls[0].env
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert json.loads(env["RCLAUDE_DEPLOYMENT_CONFIG"]) == DeploymentConfig().to_dict()
    passphrase = Path(env["PULUMI_CONFIG_PASSPHRASE_FILE"])
    assert passphrase == _home / "passphrase"
    assert stat.S_IMODE(passphrase.stat().st_mode) == 0o600
    first = passphrase.read_text()
    assert len(first) >= 32
    deployment(FakePulumi(stack_exists=True)).up(progress=False)
    assert passphrase.read_text() == first  # generated once, then kept


def test_user_passphrase_backend_and_kms_are_respected(
    monkeypatch: pytest.MonkeyPatch, _home: Path
) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "hunter2")
    fake = FakePulumi()
    deployment(fake).up(progress=False)
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in fake.calls[0].env
    assert not (_home / "passphrase").exists()

    kms = "awskms://alias/rclaude?region=us-east-1"
    fake = FakePulumi()
    deployment(fake, backend="s3://team-state/rclaude?region=us-east-1",
               secrets_provider=kms).up(progress=False)
    init = next(c for c in fake.calls if c.verb == "stack init")
    assert init.args[-2:] == ["--secrets-provider", kms]
    project = (Path(fake.calls[0].cwd) / "Pulumi.yaml").read_text()
    assert "url: s3://team-state/rclaude?region=us-east-1" in project


def test_second_up_reuses_the_stack_and_skips_unchanged_config() -> None:
    fake = FakePulumi()
    d = deployment(fake)
    d.up(progress=False)
    start = len(fake.calls)
    d.up(progress=False)
    assert fake.verbs()[start:] == ["up", "stack output", "stack output", "stack history"]
    start = len(fake.calls)
    assert d.outputs.cluster_name == "rclaude-dev-cluster-1a2b3c4"
    assert fake.verbs()[start:] == []  # outputs of the last up, no process


def test_existing_stack_is_selected_not_created() -> None:
    fake = FakePulumi(stack_exists=True)
    deployment(fake).preview(progress=False)
    assert fake.verbs() == ["stack select", "config set-all", "preview"]


def test_preview_refresh_destroy_cancel_outputs(aws: Any) -> None:
    fake = FakePulumi(stack_exists=True)
    d = deployment(fake, aws_session=aws)  # destroy first asks ECS for tasks to stop
    assert d.preview(progress=False) == {"create": 2, "same": 1}
    assert d.refresh(progress=False) == {"create": 2, "same": 1}
    d.cancel()
    assert fake.calls[-1].args[:2] == ["--non-interactive", "cancel"]
    start = len(fake.calls)
    assert d.outputs.bucket == "rclaude-dev-results-9a8b7c6"
    assert fake.verbs()[start:] == ["stack output", "stack output"]
    d.destroy(remove=True, progress=False)
    assert fake.verbs()[-3:] == ["destroy", "stack history", "stack rm"]
    assert fake.calls[-1].args[-1] == "dev"
    assert "dev" not in fake.stacks


def test_list_and_attach() -> None:
    fake = FakePulumi()
    created = deployment(fake, DeploymentConfig(region="eu-west-1", nat="single"))
    created.up(progress=False)
    stacks = Deployment.list(pulumi_command=fake)
    assert [s.name for s in stacks] == ["dev"] and stacks[0].resource_count == 33
    assert stacks[0].last_update is not None

    start = len(fake.calls)
    attached = Deployment.attach("dev", pulumi_command=fake)
    assert attached.config == created.config
    assert fake.verbs()[start:] == ["stack select", "config"]
    start = len(fake.calls)
    attached.up(progress=False)
    # Config read from the stack is not sent back; the stack is already selected.
    assert fake.verbs()[start:] == ["up", "stack output", "stack output", "stack history"]


def test_progress_events_are_typed() -> None:
    fake = FakePulumi()
    seen: list[Any] = []
    deployment(fake).up(on_progress=seen.append, progress=False)
    kinds = [type(e) for e in seen]
    assert kinds == [ResourceStarted, ResourceDone, ResourceStarted, ResourceDone, Summary]
    assert seen[0].name == "rclaude-dev-results" and seen[0].op == "create"
    assert seen[-1].changes == {"create": 2, "same": 1} and seen[-1].changed == 2


# -- refusals before any cloud call ------------------------------------------------------


def test_up_refuses_over_budget_before_any_pulumi_call() -> None:
    fake = FakePulumi()
    config = DeploymentConfig(nat="single", max_monthly_usd=10, usage=Usage(tasks_per_day=1))
    with pytest.raises(BudgetExceededError, match="over max_monthly_usd"):
        deployment(fake, config).up(progress=False)
    assert fake.calls == []


def test_up_refuses_a_mandatory_policy_violation(ssh_open_to_the_world: str) -> None:
    fake = FakePulumi()
    with pytest.raises(PolicyViolationError, match="sg-no-ingress-from-anywhere on "
                                                   f"{ssh_open_to_the_world}"):
        deployment(fake).up(progress=False)
    assert fake.calls == []


@pytest.mark.parametrize(("field", "value"), [("backend", "ftp://x"),
                                              ("secrets_provider", "rot13")])
def test_bad_backend_and_secrets_provider(field: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        Deployment("dev", **{field: value})


# -- error translation ---------------------------------------------------------------------


#: Errors before the engine starts write no event log; with the file-based log of CLIs up
#: to 3.205 the SDK then waits 5 s for its log reader to give up. These tests are about the
#: error, so their CLI is one with the gRPC event stream, which stops at once.
GRPC_EVENTS_CLI = "3.206.0"


def test_locked_stack() -> None:
    fake = FakePulumi(version=GRPC_EVENTS_CLI, stack_exists=True,
                      overrides={"up": lambda c: ("", LOCKED, 255)})
    with pytest.raises(StackLockedError, match=r"Deployment\.cancel\(\)") as info:
        deployment(fake).up(progress=False)
    assert type(info.value.__cause__).__name__ == "ConcurrentUpdateError"


def test_destroy_of_a_missing_stack() -> None:
    fake = FakePulumi()
    with pytest.raises(StackNotFoundError, match="does not exist"):
        deployment(fake).destroy(progress=False)
    assert fake.verbs() == ["stack select"]


def test_missing_credentials() -> None:
    stderr = ("error: unable to validate AWS credentials.\nMake sure you have set your AWS "
              "region, e.g. `pulumi config set aws:region us-west-2`.\nNoCredentialProviders: "
              "no valid providers in chain. Deprecated.")
    fake = FakePulumi(version=GRPC_EVENTS_CLI, stack_exists=True,
                      overrides={"preview": lambda c: ("", stderr, 255)})
    with pytest.raises(CredentialsError, match="aws sso login"):
        deployment(fake).preview(progress=False)


def test_failed_resource_names_the_resource_and_the_provider_message() -> None:
    fake = FakePulumi(stack_exists=True, events=failure_events)
    seen: list[Any] = []
    with pytest.raises(DeploymentFailedError) as info:
        deployment(fake).up(on_progress=seen.append, progress=False)
    assert info.value.resource == "rclaude-dev-asg"
    assert "valid fully-formed launch template" in info.value.provider_message
    assert "create of rclaude-dev-asg (aws:autoscaling/group:Group) failed" in str(info.value)
    assert any(isinstance(e, ResourceFailed) for e in seen)
    assert any(isinstance(e, Diagnostic) and e.severity == "error" for e in seen)


def test_no_pulumi_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PulumiNotFoundError, match="install_pulumi=True") as info:
        Deployment("dev").up(progress=False)
    assert "get.pulumi.com" in str(info.value)


def test_install_pulumi_uses_the_sdk_installer(monkeypatch: pytest.MonkeyPatch,
                                               _home: Path) -> None:
    from pulumi import automation as auto

    installed: dict[str, Any] = {}
    fake = FakePulumi()

    def install(root: str | None = None, **kwargs: Any) -> FakePulumi:
        installed["root"] = root
        return fake

    monkeypatch.setattr(auto.PulumiCommand, "install", staticmethod(install))
    Deployment("dev", install_pulumi=True).up(progress=False)
    assert installed["root"] == str(_home / "pulumi")
    assert fake.verbs()[0] == "stack select"


# -- threads, event loops, output ------------------------------------------------------


def test_two_deployments_run_at_once_without_sharing_a_work_directory() -> None:
    fakes = {name: FakePulumi() for name in ("alpha", "beta")}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            Deployment(name, pulumi_command=fakes[name]).up(progress=False)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in fakes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    dirs = {name: {c.cwd for c in fake.calls} for name, fake in fakes.items()}
    assert all(len(d) == 1 for d in dirs.values())
    assert dirs["alpha"] != dirs["beta"]


def test_calls_work_inside_a_running_event_loop() -> None:
    fake = FakePulumi()

    async def notebook_cell() -> str | None:
        d = deployment(fake)
        outputs = d.up(progress=False)          # blocking call from the loop's thread
        again = await d.up_async(progress=False)  # or awaited in a worker thread
        assert again == outputs
        return outputs.bucket

    assert asyncio.run(notebook_cell()) == "rclaude-dev-results-9a8b7c6"


def test_engine_output_goes_to_logging_not_stdout(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="rclaude_infra.engine")
    deployment(FakePulumi(), api_key=KEY).up(progress=False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert "up of dev done" in caplog.text
    assert KEY not in caplog.text


def test_live_display_renders(capsys: pytest.CaptureFixture[str]) -> None:
    deployment(FakePulumi()).up(progress=True)
    out = capsys.readouterr().out
    assert "up dev" in out


def test_api_key_from_the_environment_is_sent_as_a_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    fake = FakePulumi()
    deployment(fake).up(progress=False)
    assert fake.config["rclaude:anthropic_api_key"] == {"value": KEY, "secret": True}
    assert all(KEY not in value for c in fake.calls for value in c.env.values())
    assert os.environ["ANTHROPIC_API_KEY"] == KEY


def test_the_plan_is_computed_once_per_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``up``'s policy and budget guards, and an estimate before it, read one plan."""
    from rclaude_infra._pulumi import mock_plan as module

    calls = []
    real = module.mock_plan

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "mock_plan", counted)
    d = deployment(FakePulumi(), DeploymentConfig(
        max_monthly_usd=100, usage=Usage(model_usd_per_task=0.2)))
    d.estimate_cost()
    d.up(progress=False)
    d.check_policies()
    assert len(calls) == 1


def test_the_policy_pack_runs_in_this_interpreter() -> None:
    """The pack ships in the package; the engine runs it with the interpreter that has the
    package installed, wherever that is (a wheel, a notebook's kernel)."""
    import sys

    fake = FakePulumi()
    deployment(fake).up(progress=False)
    up = next(c for c in fake.calls if c.verb == "up")
    assert up.env["PULUMI_PYTHON_CMD"] == sys.executable
    pack = Path(up.args[up.args.index("--policy-pack") + 1])
    assert (pack / "PulumiPolicy.yaml").is_file() and (pack / "__main__.py").is_file()


# -- the ECS service-linked role: a fresh account ---------------------------------------

def _without_ecs_role(session: Any) -> Any:
    """moto's IAM as a fresh account has it: no AWSServiceRoleForECS (the role is the
    account's, so another test's up() may have made it in this worker's server)."""
    iam = session.client("iam")
    with contextlib.suppress(iam.exceptions.NoSuchEntityException):
        iam.delete_service_linked_role(RoleName="AWSServiceRoleForECS")
    return iam


def test_up_in_a_fresh_account_creates_the_ecs_service_linked_role_first(aws: Any) -> None:
    iam = _without_ecs_role(aws)
    fake = FakePulumi()
    ran_before: list[list[str]] = []  # the pulumi verbs run when the role was created
    aws.events.register("before-call.iam.CreateServiceLinkedRole",
                        lambda **_: ran_before.append(list(fake.verbs())))
    deployment(fake, aws_session=aws).up(progress=False)
    role = iam.get_role(RoleName="AWSServiceRoleForECS")["Role"]
    assert role["Path"] == "/aws-service-role/ecs.amazonaws.com/"
    [before] = ran_before
    assert "up" not in before and "up" in fake.verbs()


def test_up_with_the_role_present_does_not_create_it(aws: Any) -> None:
    _without_ecs_role(aws).create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    created: list[Any] = []
    aws.events.register("before-call.iam.CreateServiceLinkedRole",
                        lambda **kw: created.append(kw))
    deployment(FakePulumi(), aws_session=aws).up(progress=False)
    assert created == []


def test_up_that_may_not_create_the_role_stops_with_the_command_before_the_engine(
        aws: Any) -> None:
    """IAM's answer to a caller without iam:CreateServiceLinkedRole (IAM API Reference,
    Common Errors: AccessDenied, 403); moto enforces no IAM, so it is given at the botocore
    boundary."""
    from moto_stack import answer

    from rclaude_infra import ServiceLinkedRoleError

    _without_ecs_role(aws)
    answer(aws, ["CreateServiceLinkedRole"], lambda _: (403, (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error>'
        "<Type>Sender</Type><Code>AccessDenied</Code><Message>User: "
        "arn:aws:iam::123456789012:user/dev is not authorized to perform: "
        "iam:CreateServiceLinkedRole on resource: arn:aws:iam::123456789012:role/"
        "aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS</Message></Error>"
        "<RequestId>4f1e-denied</RequestId></ErrorResponse>")), service="iam")
    fake = FakePulumi()
    with pytest.raises(ServiceLinkedRoleError) as info:
        deployment(fake, aws_session=aws).up(progress=False)
    command = "aws iam create-service-linked-role --aws-service-name ecs.amazonaws.com"
    assert info.value.command == command and command in str(info.value)
    assert "up" not in fake.verbs()  # nothing deployed, no half-made cluster


SERVICE = DeploymentConfig(mode="service", service={"http_only": True})


def test_service_mode_sends_its_settings_from_the_environment_as_one_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vault_key = "x" * 43 + "="
    monkeypatch.setenv("RCLAUDE_SECRETS_KEY", vault_key)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_boundary")
    monkeypatch.setenv("RCLAUDE_NOT_A_SETTING", "kept-out")
    fake = FakePulumi()
    deployment(fake, SERVICE, api_key=KEY).up(progress=False)
    [settings] = [c for c in fake.stdin_calls if "rclaude:service_settings" in c["args"]]
    # On standard input, never in a process's arguments; only the settings' names.
    assert json.loads(settings["stdin"]) == {"RCLAUDE_SECRETS_KEY": vault_key,
                                             "STRIPE_SECRET_KEY": "sk_test_boundary"}
    assert all(vault_key not in arg for c in fake.calls for arg in c.args)
    assert fake.config["rclaude:service_settings"]["secret"] is True
    # The next up with the same settings sends nothing again; without the key, the stack
    # keeps what it holds.
    sent = len(fake.stdin_calls)
    monkeypatch.delenv("RCLAUDE_SECRETS_KEY")
    attached = Deployment.attach("dev", pulumi_command=fake)
    attached.up(progress=False)
    assert len(fake.stdin_calls) == sent
    assert attached.config.mode == "service"


def test_service_mode_without_a_secrets_key_is_refused_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RCLAUDE_SECRETS_KEY", raising=False)
    fake = FakePulumi()
    with pytest.raises(MissingCredentialError) as raised:
        deployment(fake, SERVICE, api_key=KEY).up(progress=False)
    assert raised.value.env == "RCLAUDE_SECRETS_KEY"
    assert "Fernet" in str(raised.value)
    assert "up" not in fake.verbs() and "config set-all" not in fake.verbs()
