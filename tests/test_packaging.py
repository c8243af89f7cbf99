"""A wheel that deploys: the runner's Dockerfile and the CrossGuard pack travel inside the
package, ``up()`` finds them from a non-editable install, and the image holds only what
the runner needs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("rclaude_infra/_pulumi/runner/Dockerfile",
           "rclaude_infra/_pulumi/runner/requirements.txt",
           "rclaude_infra/_pulumi/runner/service.Dockerfile",
           "rclaude_infra/_pulumi/runner/service-requirements.txt",
           "rclaude_infra/_pulumi/runner/buildspec.yml",
           "rclaude_infra/_pulumi/crossguard/PulumiPolicy.yaml",
           "rclaude_infra/_pulumi/crossguard/__main__.py",
           "rclaude_infra/.dockerignore",
           "rclaude_infra/data/instance_types.csv")


@pytest.fixture(scope="module", name="wheel")
def _wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import fcntl

    out = tmp_path_factory.mktemp("wheel")
    # Two test workers building from one checkout at once share its build/ and
    # egg-info folders, and one of them failed now and then: one build at a time.
    with open(tmp_path_factory.getbasetemp().parent / "wheel.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                        "--quiet", "-w", str(out), str(ROOT)], check=True, timeout=300,
                       capture_output=True)
    [built] = out.glob("rclaude_infra-*.whl")
    return built


def test_the_wheel_carries_the_dockerfile_and_the_policy_pack(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in SHIPPED if name not in names]
    assert not missing


def test_up_finds_them_from_an_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                    "--target", str(site), str(wheel)], check=True, timeout=300,
                   capture_output=True)
    code = (
        "import json, rclaude_infra;"
        "from rclaude_infra._pulumi import engine, program;"
        "print(json.dumps({'package': rclaude_infra.__file__,"
        " 'pack': str(engine.POLICY_PACK_DIR), 'packs': engine.StackSession("
        "  'dev', rclaude_infra.DeploymentConfig())._policy_packs(),"
        " 'dockerfile': str(program.RUNNER_DOCKERFILE), 'context': str(program.IMAGE_CONTEXT)}))"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "RCLAUDE_HOME": str(tmp_path / "home")}
    # Away from this checkout: `python -c` imports from its working directory first.
    found = json.loads(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                      cwd=tmp_path, capture_output=True, text=True,
                                      timeout=120).stdout)
    assert found["package"].startswith(str(site))  # the wheel's copy, not this checkout
    pack = Path(found["pack"])
    assert found["packs"] == [str(pack)] and str(pack).startswith(str(site))
    assert (pack / "PulumiPolicy.yaml").is_file() and (pack / "__main__.py").is_file()
    dockerfile, context = Path(found["dockerfile"]), Path(found["context"])
    assert dockerfile.is_file() and context == site / "rclaude_infra"
    # Everything the Dockerfile copies is in the build context.
    for source in re.findall(r"^COPY (\S+) ", dockerfile.read_text(), re.MULTILINE):
        assert (context / source).exists(), source


def test_the_image_installs_what_pyproject_requires_of_the_runner() -> None:
    declared = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0]: d for d in tomllib.loads(
        (ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    requirements = [line for line in (
        ROOT / "rclaude_infra/_pulumi/runner/requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")]
    assert requirements == [declared["attrs"], declared["boto3"]]


def test_the_service_image_installs_the_library_and_its_service_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [line for line in (
        ROOT / "rclaude_infra/_pulumi/runner/service-requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")]
    assert requirements == [*project["dependencies"],
                            *project["optional-dependencies"]["service"]]
    dockerfile = (ROOT / "rclaude_infra/_pulumi/runner/service.Dockerfile").read_text()
    for source in re.findall(r"^COPY (\S+) ", dockerfile, re.MULTILINE):
        assert (ROOT / "rclaude_infra" / source).exists(), source
    # The planned containers' command is the image's: python -m rclaude_infra ...
    assert '"python", "-m", "rclaude_infra"' in dockerfile and "USER 1000:1000" in dockerfile


def test_the_runner_needs_nothing_but_attrs_and_boto3(tmp_path: Path) -> None:
    """What the image has: a task runs with pulumi, rich and the rest unimportable."""
    task = tmp_path / "t-slim"
    task.mkdir()
    (task / "spec.json").write_text(json.dumps({"command": "echo slim", "task_id": "t-slim"}))
    code = (
        "import sys\n"
        "for name in ('pulumi', 'pulumi_aws', 'pulumi_awsx', 'pulumi_policy', 'rich',"
        " 'tomli_w'):\n"
        "    sys.modules[name] = None  # import fails, as in the image\n"
        "from rclaude_infra.runner import main\n"
        f"sys.exit(main(['--task-dir', {str(task)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads((task / "result.json").read_text())
    assert result["status"] == "succeeded"


def test_image_sources_from_the_wheel_match_the_checkout(wheel: Path, tmp_path: Path) -> None:
    """A user installs the wheel: the sources ``build_image="remote"`` uploads, made from
    that install, hold every file the image needs and hash the same as this checkout's,
    so both name (and build) the same image."""
    from rclaude_infra.image_source import BUILDSPEC, DOCKERFILE, image_source

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                    "--target", str(site), str(wheel)], check=True, timeout=300,
                   capture_output=True)
    code = ("import json; from rclaude_infra.image_source import image_source; "
            "s = image_source(); print(json.dumps([s.files, s.digest, str(s.root)]))")
    files, digest, root = json.loads(subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(site)},
        cwd=tmp_path, check=True, capture_output=True, text=True, timeout=120).stdout)
    assert root == str(site / "rclaude_infra")
    for needed in (DOCKERFILE, BUILDSPEC, "_pulumi/runner/requirements.txt", "runner.py",
                   "tasks/runner.py", "tasks/agent.py", "_aws/container.py"):
        assert needed in files
    local = image_source()
    assert files == list(local.files)
    assert digest == local.digest
