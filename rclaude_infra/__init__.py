"""rclaude-infra: run coding-agent tasks on your own AWS account.

Provision an ECS-on-EC2 stack with the Pulumi Automation API, plan and price it offline,
check it against security rules, run tasks on it (or locally), follow them, price them,
and tear it down.

Importing this package is cheap: pulumi, pulumi_aws, boto3 and rich are imported
only by the functions that need them.
"""

from typing import TYPE_CHECKING, Any

from ._plan import SECRET_MASK, Plan, PlannedResource
from .config import (
    AUTH_MODES,
    IMAGE_BUILDS,
    LOG_RETENTION_DAYS,
    NAT_MODES,
    DeploymentConfig,
    Usage,
    validate_name,
)
from .deployment import Deployment, StackInfo, plan
from .errors import (
    BudgetExceededError,
    ConfigError,
    CredentialsError,
    DeploymentClosedError,
    DeploymentFailedError,
    EngineError,
    ExecError,
    ImageBuildError,
    ImageNotReadyError,
    MissingCredentialError,
    MissingDependencyError,
    PlanError,
    PolicyViolationError,
    PriceNotFoundError,
    PricingUnavailableError,
    PulumiNotFoundError,
    RclaudeError,
    RegionNotEnabledError,
    ServiceLinkedRoleError,
    SessionManagerPluginNotFoundError,
    StackLockedError,
    StackNotFoundError,
    SweepError,
)
from .instance_types import InstanceType, instance_types
from .ledger import Spend
from .service_config import DEPLOYMENT_MODES, ServiceConfig
from .tasks.spec import TaskSpec

if TYPE_CHECKING:
    from ._aws.pricing import live_prices
    from .checks import CheckItem, CheckReport
    from .client import ServiceClient, ServiceError
    from .cost import (
        CostDiff,
        CostEstimate,
        CostLine,
        InstancePrice,
        TaskCost,
        estimate_cost,
        instance_prices,
        task_cost,
    )
    from .image_source import ImageBuild
    from .outputs import StackOutputs
    from .permissions import submitter_policy
    from .policy import Finding, PolicyReport, check_policies
    from .prices import HOURS_PER_MONTH, Price, PriceBook
    from .progress import (
        Diagnostic,
        ImageBuildPhase,
        ResourceDone,
        ResourceFailed,
        ResourceStarted,
        Summary,
    )
    from .status import DeploymentStatus, InstanceInfo
    from .sweep_report import SweepReport
    from .tasks.agent import AgentResult
    from .tasks.best_of import BestOf
    from .tasks.downloads import Downloaded
    from .tasks.model import (
        LogLine,
        Task,
        TaskNotFoundError,
        TaskResult,
        TaskState,
        TaskStatus,
        TaskTimeoutError,
    )

__version__ = "0.1.0"

# Names loaded on first use, so `import rclaude_infra` stays cheap: the I/O edges and the
# pricing modules most imports never touch.
_LAZY = {
    "live_prices": "._aws.pricing",
    "SweepReport": ".sweep_report",
    **dict.fromkeys(
        ["CostDiff", "CostEstimate", "CostLine", "InstancePrice", "TaskCost", "estimate_cost",
         "instance_prices", "task_cost"], ".cost"),
    **dict.fromkeys(["HOURS_PER_MONTH", "Price", "PriceBook"], ".prices"),
    **dict.fromkeys(["Finding", "PolicyReport", "check_policies"], ".policy"),
    **dict.fromkeys(["CheckItem", "CheckReport"], ".checks"),
    **dict.fromkeys(["DeploymentStatus", "InstanceInfo"], ".status"),
    **dict.fromkeys(["Diagnostic", "ImageBuildPhase", "ResourceDone", "ResourceFailed",
                     "ResourceStarted", "Summary"], ".progress"),
    "AgentResult": ".tasks.agent",
    "BestOf": ".tasks.best_of",
    "Downloaded": ".tasks.downloads",
    "ImageBuild": ".image_source",
    "StackOutputs": ".outputs",
    "submitter_policy": ".permissions",
    **dict.fromkeys(["ServiceClient", "ServiceError"], ".client"),
    **dict.fromkeys(["LogLine", "Task", "TaskNotFoundError", "TaskResult", "TaskState",
                     "TaskStatus", "TaskTimeoutError"], ".tasks.model"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "AUTH_MODES",
    "DEPLOYMENT_MODES",
    "HOURS_PER_MONTH",
    "IMAGE_BUILDS",
    "LOG_RETENTION_DAYS",
    "NAT_MODES",
    "SECRET_MASK",
    "AgentResult",
    "BestOf",
    "BudgetExceededError",
    "CheckItem",
    "CheckReport",
    "ConfigError",
    "CostDiff",
    "CostEstimate",
    "CostLine",
    "CredentialsError",
    "Deployment",
    "DeploymentClosedError",
    "DeploymentConfig",
    "DeploymentFailedError",
    "DeploymentStatus",
    "Diagnostic",
    "Downloaded",
    "EngineError",
    "ExecError",
    "Finding",
    "ImageBuild",
    "ImageBuildError",
    "ImageBuildPhase",
    "ImageNotReadyError",
    "InstanceInfo",
    "InstancePrice",
    "InstanceType",
    "LogLine",
    "MissingCredentialError",
    "MissingDependencyError",
    "Plan",
    "PlanError",
    "PlannedResource",
    "PolicyReport",
    "PolicyViolationError",
    "Price",
    "PriceBook",
    "PriceNotFoundError",
    "PricingUnavailableError",
    "PulumiNotFoundError",
    "RclaudeError",
    "RegionNotEnabledError",
    "ResourceDone",
    "ResourceFailed",
    "ResourceStarted",
    "ServiceClient",
    "ServiceConfig",
    "ServiceError",
    "ServiceLinkedRoleError",
    "SessionManagerPluginNotFoundError",
    "Spend",
    "StackInfo",
    "StackLockedError",
    "StackNotFoundError",
    "StackOutputs",
    "Summary",
    "SweepError",
    "SweepReport",
    "Task",
    "TaskCost",
    "TaskNotFoundError",
    "TaskResult",
    "TaskSpec",
    "TaskState",
    "TaskStatus",
    "TaskTimeoutError",
    "Usage",
    "__version__",
    "check_policies",
    "estimate_cost",
    "instance_prices",
    "instance_types",
    "live_prices",
    "plan",
    "submitter_policy",
    "task_cost",
    "validate_name",
]
