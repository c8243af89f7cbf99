"""CrossGuard policy pack entry for the Pulumi CLI: the pack shipped in the package."""

import runpy

runpy.run_module("rclaude_infra._pulumi.crossguard", run_name="__main__")
