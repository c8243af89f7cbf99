"""Pulumi entry point: `pulumi up` from the repository root runs this.

The same program the library's Automation API runs: it reads the ``rclaude:*`` stack
config into a DeploymentConfig and declares the stack.
"""

from rclaude_infra._pulumi.program import program_from_stack_config

program_from_stack_config()
