"""The public surface: what `import rclaude_infra` exports and what it costs."""

from __future__ import annotations

import json
import subprocess
import sys

import rclaude_infra

HEAVY = ["pulumi", "pulumi_aws", "pulumi_awsx", "boto3", "botocore", "rich"]


def test_import_pulls_in_no_heavy_dependency() -> None:
    code = (
        "import json, sys, rclaude_infra;"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_constructing_a_config_pulls_in_no_heavy_dependency() -> None:
    code = (
        "import json, sys; from rclaude_infra import DeploymentConfig, Deployment;"
        "Deployment('dev', DeploymentConfig(region='eu-west-1'));"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_all_is_pinned() -> None:
    assert sorted(rclaude_infra.__all__) == sorted([
        "LOG_RETENTION_DAYS", "NAT_MODES", "SECRET_MASK", "ConfigError", "Deployment",
        "DeploymentConfig", "InstanceType", "MissingDependencyError", "Plan", "PlanError",
        "PlannedResource", "RclaudeError", "__version__", "instance_types", "plan",
        "validate_name",
    ])
    for name in rclaude_infra.__all__:
        assert hasattr(rclaude_infra, name), name


def test_public_names_have_docstrings() -> None:
    for name in rclaude_infra.__all__:
        obj = getattr(rclaude_infra, name)
        if callable(obj) and isinstance(obj, type | type(len) | type(test_all_is_pinned)):
            assert obj.__doc__, name


def test_errors_form_one_tree() -> None:
    from rclaude_infra import ConfigError, MissingDependencyError, PlanError, RclaudeError

    for error in (ConfigError, MissingDependencyError, PlanError):
        assert issubclass(error, RclaudeError)
    assert issubclass(ConfigError, ValueError)
    assert issubclass(MissingDependencyError, ImportError)
