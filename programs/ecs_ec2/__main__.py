"""Pulumi entry point: `pulumi up` from the repository root runs this.

It reads the stack config under the ``rclaude`` namespace into the same
DeploymentConfig the library uses and declares the same stack.
"""

import attrs
import pulumi

from rclaude_infra._pulumi.program import define_stack
from rclaude_infra.config import DeploymentConfig, validate_name

settings = pulumi.Config("rclaude")
values = {
    field.name: raw
    for field in attrs.fields(DeploymentConfig)
    if (raw := settings.get(field.name)) is not None
}
if "region" not in values and (region := pulumi.Config("aws").get("region")):
    values["region"] = region

define_stack(
    validate_name(pulumi.get_stack()),
    DeploymentConfig.from_stack_config(values),
    api_key=settings.get_secret("anthropic_api_key"),
)
