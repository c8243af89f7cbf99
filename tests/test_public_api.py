"""The public surface: what `import rclaude_infra` exports and what it costs."""

from __future__ import annotations

import json
import subprocess
import sys

import rclaude_infra

HEAVY = ["pulumi", "pulumi_aws", "pulumi_awsx", "boto3", "botocore", "rich",
         # the hosted service's stack, an extra: never on `import rclaude_infra`
         "fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "authlib", "httpx",
         "keyring", "rclaude_infra.service"]


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
        "from rclaude_infra import PriceBook, instance_prices;"
        "instance_prices(['t3.medium'], PriceBook.snapshot());"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_reports_load_rich_only_when_rendered() -> None:
    """A report is built and read without rich; ``str()`` is what imports it."""
    code = (
        "import json, sys; from rclaude_infra import CheckItem, CheckReport, BestOf, Deployment;"
        "import rclaude_infra.cost, rclaude_infra.policy, rclaude_infra.status, "
        "rclaude_infra.sweep_report, rclaude_infra.outputs;"
        "r = CheckReport(items=(CheckItem(name='Docker', status='ok', detail='running'),));"
        "before = 'rich' in sys.modules; text = str(r);"
        "print(json.dumps([before, 'rich' in sys.modules, 'Docker' in text]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False, True, True]


def test_all_is_pinned() -> None:
    assert sorted(rclaude_infra.__all__) == sorted([
        "AUTH_MODES", "AgentResult", "BestOf", "MissingCredentialError", "ServiceClient",
        "ServiceError", "ServiceConfig", "DEPLOYMENT_MODES",
        "BudgetExceededError", "CheckItem", "CheckReport", "ConfigError", "CostDiff",
        "CostEstimate", "CostLine", "CredentialsError", "Deployment", "DeploymentClosedError",
        "DeploymentConfig", "DeploymentFailedError", "DeploymentStatus", "Diagnostic",
        "Downloaded", "EngineError", "ExecError",
        "Finding",
        "HOURS_PER_MONTH", "IMAGE_BUILDS", "ImageBuild", "ImageBuildError", "ImageBuildPhase",
        "ImageNotReadyError",
        "InstanceInfo", "InstancePrice", "InstanceType", "LOG_RETENTION_DAYS", "LogLine",
        "MissingDependencyError", "NAT_MODES", "Plan", "PlanError",
        "PlannedResource", "PolicyReport", "PolicyViolationError", "Price", "PriceBook",
        "PriceNotFoundError", "PricingUnavailableError", "PulumiNotFoundError", "RclaudeError",
        "RegionNotEnabledError", "ResourceDone", "ResourceFailed", "ResourceStarted",
        "ServiceLinkedRoleError",
        "SessionManagerPluginNotFoundError",
        "SECRET_MASK", "Spend", "StackInfo", "StackLockedError", "StackNotFoundError",
        "StackOutputs",
        "Summary", "SweepError", "SweepReport", "Task", "TaskCost", "TaskNotFoundError",
        "TaskResult",
        "TaskSpec", "TaskState", "TaskStatus", "TaskTimeoutError", "Usage", "__version__",
        "check_policies", "estimate_cost", "instance_prices", "instance_types", "live_prices",
        "plan", "submitter_policy", "task_cost", "validate_name",
    ])
    for name in rclaude_infra.__all__:
        assert hasattr(rclaude_infra, name), name


def test_public_names_have_docstrings() -> None:
    for name in rclaude_infra.__all__:
        obj = getattr(rclaude_infra, name)
        if callable(obj) and isinstance(obj, type | type(len) | type(test_all_is_pinned)):
            assert obj.__doc__, name


def test_errors_form_one_tree() -> None:
    from rclaude_infra import (
        BudgetExceededError,
        ConfigError,
        MissingDependencyError,
        PlanError,
        PolicyViolationError,
        PriceNotFoundError,
        PricingUnavailableError,
        RclaudeError,
    )

    for error in (ConfigError, MissingDependencyError, PlanError, PriceNotFoundError,
                  PricingUnavailableError, BudgetExceededError, PolicyViolationError):
        assert issubclass(error, RclaudeError)
    assert issubclass(ConfigError, ValueError)
    assert issubclass(MissingDependencyError, ImportError)


def test_lazy_names_resolve_and_unknown_names_fail() -> None:
    code = (
        "import json, sys, rclaude_infra;"
        "before = 'rclaude_infra.cost' in sys.modules;"
        "names = dir(rclaude_infra);"
        "book = rclaude_infra.PriceBook.snapshot();"
        "print(json.dumps([before, 'live_prices' in names, 'rclaude_infra.cost' in sys.modules,"
        " callable(rclaude_infra.live_prices)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False, True, False, True]
    try:
        rclaude_infra.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("unknown attribute did not raise")


def test_every_public_name_has_a_docstring_with_an_example() -> None:
    import inspect

    missing = []
    for name in rclaude_infra.__all__:
        value = getattr(rclaude_infra, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue  # constants and the version
        doc = inspect.getdoc(value) or ""
        if ">>>" not in doc and "::" not in doc:
            missing.append(name)
    assert missing == []
