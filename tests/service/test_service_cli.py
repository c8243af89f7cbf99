"""The task verbs with ``--server``: the real CLI in its own processes, signed in by the
device flow with its token in an OS keyring (the keyring library's interface over a test
file: tests/service/file_keyring.py), running, listing, following, reading and stopping
tasks on the started service over HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Service, wait_done

HERE = Path(__file__).parent


@pytest.fixture(name="cli_env")
def _cli_env(service: Service, alice: str, tmp_path: Path) -> dict[str, str]:
    """A CLI signed in to the service as Alice, its token in the keyring."""
    env = {**os.environ, "RCLAUDE_HOME": str(tmp_path / "cli-home"),
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "PYTHON_KEYRING_BACKEND": "file_keyring.FileKeyring",
           "RCLAUDE_TEST_KEYRING": str(tmp_path / "keyring.json")}
    env.pop("RCLAUDE_SERVER", None)
    login = subprocess.Popen([sys.executable, "-m", "rclaude_infra", "login", "--server",
                              service.url], env=env, stderr=subprocess.PIPE, text=True)
    assert login.stderr is not None
    code = re.search(r"approve the code (\S+)", login.stderr.readline())
    assert code
    with service.client(alice) as a:
        assert a.post("/v1/device/approve", json={"user_code": code.group(1)}
                      ).status_code == 200
    _, err = login.communicate(timeout=60)
    assert login.returncode == 0, err
    assert "OS keyring (FileKeyring)" in err
    return env


def _cli(env: dict[str, str], *argv: str, timeout: float = 120
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rclaude_infra", *argv], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_token_is_kept_in_the_keyring_not_the_file(
        service: Service, cli_env: dict[str, str], tmp_path: Path) -> None:
    stored = json.loads((tmp_path / "cli-home" / "credentials.json").read_text())
    assert stored == {"servers": {service.url: {"keyring": True}}, "default": service.url}
    ring = json.loads((tmp_path / "keyring.json").read_text())
    token = ring[f"rclaude-infra|{service.url}"]
    assert token.startswith("rci_")
    out = _cli(cli_env, "logout")
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "keyring.json").read_text()) == {}
    with service.client(token) as revoked:
        assert revoked.get("/v1/me").status_code == 401


def test_run_follow_tasks_logs_and_result_over_http(service: Service, alice: str,
                                                    cli_env: dict[str, str]) -> None:
    ran = _cli(cli_env, "run", "--server", "--command", "echo from the remote cli",
               "--follow")
    assert ran.returncode == 0, ran.stderr
    assert "from the remote cli" in ran.stdout
    task_id = re.search(r"task (\S+) started on", ran.stderr)
    assert task_id
    tid = task_id.group(1)
    listed = _cli(cli_env, "tasks", "--server", "--json")
    assert [(t["task_id"], t["status"]) for t in json.loads(listed.stdout)] == [
        (tid, "SUCCEEDED")]
    logs = _cli(cli_env, "logs", tid, "--server")
    assert "from the remote cli" in logs.stdout.splitlines()
    result = _cli(cli_env, "result", tid, "--server", "--json")
    assert json.loads(result.stdout)["status"] == "SUCCEEDED"
    # A failing command's exit code is the CLI's, as it is locally.
    failed = _cli(cli_env, "run", "--server", "--command", "echo about to fail; exit 3",
                  "--follow")
    assert failed.returncode == 3 and "about to fail" in failed.stdout


def test_stop_over_http_and_bad_input_is_named(service: Service, alice: str,
                                               cli_env: dict[str, str]) -> None:
    started = _cli(cli_env, "run", "--server", "--command", "sleep 300", "--json")
    assert started.returncode == 0, started.stderr
    tid = json.loads(started.stdout)["task_id"]
    stopped = _cli(cli_env, "stop", tid, "--server", "--json")
    assert stopped.returncode == 0, stopped.stderr
    with service.client(alice) as a:
        assert wait_done(a, tid)["status"] == "STOPPED"
    # The service's 422 names the field; the CLI exits 2 as for any bad input.
    local = _cli(cli_env, "run", "--server", "--command", "true", "--repo", "/etc")
    assert local.returncode == 2 and "repo" in local.stderr
    unknown = _cli(cli_env, "logs", "../../etc", "--server")
    assert unknown.returncode == 2 and "task" in unknown.stderr
    missing = _cli(cli_env, "result", "t-nope", "--server")
    assert missing.returncode == 1 and "404" in missing.stderr
    elsewhere = _cli(cli_env, "tasks", "--server", "http://127.0.0.1:9")
    assert elsewhere.returncode == 2 and "--server" in elsewhere.stderr
