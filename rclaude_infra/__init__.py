"""rclaude-infra: run coding-agent tasks on your own AWS account.

Provision an ECS-on-EC2 stack with the Pulumi Automation API, plan it offline,
and (as the library grows) run tasks on it, price them and tear it down.

Importing this package is cheap: pulumi, pulumi_aws, boto3 and rich are imported
only by the functions that need them.
"""

from ._plan import SECRET_MASK, Plan, PlannedResource
from .config import LOG_RETENTION_DAYS, NAT_MODES, DeploymentConfig, validate_name
from .deployment import Deployment, plan
from .errors import ConfigError, MissingDependencyError, PlanError, RclaudeError
from .instance_types import InstanceType, instance_types

__version__ = "0.1.0"

__all__ = [
    "LOG_RETENTION_DAYS",
    "NAT_MODES",
    "SECRET_MASK",
    "ConfigError",
    "Deployment",
    "DeploymentConfig",
    "InstanceType",
    "MissingDependencyError",
    "Plan",
    "PlanError",
    "PlannedResource",
    "RclaudeError",
    "__version__",
    "instance_types",
    "plan",
    "validate_name",
]
