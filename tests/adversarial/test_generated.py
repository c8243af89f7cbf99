"""Generated hostile input at the public entry points: each either works or raises the
library's own error, never a traceback from below, and nothing lands outside its place."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rclaude_infra import ConfigError, TaskSpec
from rclaude_infra.tasks.downloads import place

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
_SETTINGS = settings(max_examples=300, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(ref=st.one_of(_TEXT, st.sampled_from(["-b", "--upload-pack=x", "a..b", "/x", "a b",
                                             "main\n", "v1.0", "feature/x"])))
def test_a_generated_ref_is_accepted_or_refused_naming_ref(ref: str) -> None:
    try:
        spec = TaskSpec(command="true", repo="https://example.com/app.git", ref=ref)
    except ConfigError as exc:
        assert exc.field == "ref"
        return
    # What is accepted cannot be read as an option or a path out of the checkout.
    assert not spec.ref.startswith(("-", "/")) and ".." not in spec.ref  # type: ignore[union-attr]
    assert "\n" not in spec.ref and " " not in spec.ref  # type: ignore[operator]


@_SETTINGS
@given(env=st.dictionaries(_TEXT, st.one_of(_TEXT, st.integers(), st.none()), max_size=5))
def test_a_generated_env_is_accepted_or_refused_naming_env(env: dict[str, object]) -> None:
    try:
        spec = TaskSpec(command="true", env=env)
    except ConfigError as exc:
        assert exc.field.startswith("env")
        return
    for key, value in spec.env.items():
        assert key.isascii() and not key.startswith("RCLAUDE_") and "\x00" not in value


@_SETTINGS
@given(name=st.one_of(_TEXT, st.lists(st.sampled_from(["..", ".", "", "a", "/", "b.txt"]),
                                      max_size=6).map("/".join)))
def test_a_generated_key_lands_inside_the_destination_or_nowhere(tmp_path: Path,
                                                                  name: str) -> None:
    dest = tmp_path / "out"
    try:
        path = place(dest, name)
    except ValueError:
        return
    assert path.resolve().is_relative_to(dest.resolve()) and path != dest


@pytest.mark.parametrize("url", ["https://example.com/a.git", "ssh://git@example.com/a",
                                 "git@example.com:me/a.git", "file:///srv/a.git"])
def test_ordinary_repo_urls_still_work(url: str) -> None:
    assert TaskSpec(command="true", repo=url).repo == url


# -- every entry point: the CLI's verbs, the ECS provider -----------------------------

_IDS = st.one_of(_TEXT, st.sampled_from(["../x", "/etc/passwd", "t-1\n", "t\x001", "-h",
                                         "--provider", "\u0430bc", "t-ok", ".."]))


@pytest.fixture(name="home")
def _home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generated-home")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(task_id=_IDS, verb=st.sampled_from(["result", "logs", "stop"]))
def test_a_generated_id_at_the_cli_is_refused_or_not_found_never_a_traceback(
        task_id: str, verb: str, home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from rclaude_infra.cli import main

    monkeypatch.setenv("RCLAUDE_HOME", str(home / "rc"))
    monkeypatch.chdir(home)
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    argv = [verb, "--provider", "local", "--", task_id]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusal of what is not one argument
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code in (1, 2), (argv, err)
    assert "Traceback" not in err
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before  # nothing written


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(task_id=_IDS)
def test_a_generated_id_reaches_no_s3_key_outside_its_task(
        task_id: str, aws: object, stack: object) -> None:
    from typing import Any

    from rclaude_infra import Deployment, StackOutputs
    from rclaude_infra.tasks.model import TaskNotFoundError
    from rclaude_infra.tasks.spec import is_task_id

    session: Any = aws
    assert isinstance(stack, StackOutputs)
    keys: list[str] = []
    d = Deployment.from_outputs("dev", stack, session=session)
    d._tasks().s3.meta.events.register(
        "before-parameter-build.s3.*",
        lambda params, **_: keys.append(str(params.get("Key", params.get("Prefix", "")))))
    try:
        d.task(task_id)
    except ConfigError as exc:
        assert not is_task_id(task_id) and exc.field == "task_id"
    except TaskNotFoundError:
        assert is_task_id(task_id)
    assert all(k.startswith(f"tasks/{task_id}/") or k in ("queue/", "control/closed.json")
               for k in keys if k), keys


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flag=st.sampled_from(["--env", "--timeout", "--ref", "--task-id", "--secret",
                             "--max-budget-usd", "--cpu"]),
       value=st.one_of(_TEXT, st.sampled_from(["-1", "nan", "inf", "1e309", "0", "A=B",
                                               "A", "=x", "RCLAUDE_X=1", "../x"])))
def test_a_generated_run_flag_is_refused_naming_it_or_runs(
        flag: str, value: str, home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before anything starts (exit 2, the field named), or the task runs."""
    from rclaude_infra.cli import main

    monkeypatch.setenv("RCLAUDE_HOME", str(home / "rc"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-generated")
    argv = ["run", "--provider", "local", "--command", "true", f"{flag}={value}"]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert code in (0, 2), (argv, err)
    if code == 2:  # the field (or the flag) named, and what is allowed
        named = flag.lstrip("-").replace("-", "_")
        assert any(name in err for name in (named, flag, "secrets", "max_budget_usd")), err
        assert "allowed" in err or "expected" in err or "invalid" in err, err
