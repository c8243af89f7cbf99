"""Bad input refused early and quietly: before any cloud call or process, with the
library's own error naming the field, and never echoing a credential."""

from __future__ import annotations

from pathlib import Path

import pytest

from rclaude_infra import ConfigError, TaskSpec


def test_a_repo_url_with_a_credential_is_refused_without_showing_it() -> None:
    for url in ("https://me:hunter2-PLANTED@example.com/app.git",
                "https://ghp_PLANTEDtoken0123456789@github.com/me/app"):
        with pytest.raises(ConfigError) as info:
            TaskSpec(command="true", repo=url)
        assert info.value.field == "repo" and "git_token_secret" in str(info.value)
        assert "PLANTED" not in str(info.value) and "hunter2" not in str(info.value)
    # An ssh user is no secret.
    assert TaskSpec(command="true", repo="ssh://git@github.com/me/app").repo


@pytest.mark.parametrize(("field", "value"), [
    ("env", {"A": "x\x00y"}), ("env", {"BIG": "x" * 10_000_000}),
    ("env", {f"V{i}": "x" * 30_000 for i in range(10)}),
    ("command", "echo a\x00b"), ("command", ["echo", "a\x00b"]), ("prompt", "hi\x00there"),
])
def test_nul_bytes_and_huge_values_are_refused_at_the_spec(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        TaskSpec(**{field: value, **({} if field in ("command", "prompt") else
                                       {"command": "true"})})
    assert info.value.field.startswith(field)
    assert len(str(info.value)) < 500  # a 10 MB value is not echoed back


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from rclaude_infra.cli import main

    (tmp_path / "rclaude.toml").write_bytes(b'region = "eu-west-1"\nname = "caf\xe9"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["plan"]) == 2
    err = capsys.readouterr().err
    assert "--config" in err and "UTF-8" in err and "Traceback" not in err
