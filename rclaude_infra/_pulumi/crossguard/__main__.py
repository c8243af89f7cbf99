"""CrossGuard policy pack: the rules of rclaude_infra.policy, enforced by the engine."""

from pulumi_policy import EnforcementLevel, Policy, PolicyPack

from rclaude_infra._pulumi.policy_pack import PACK_NAME, build_policies

policies: list[Policy] = list(build_policies())
PolicyPack(
    name=PACK_NAME,
    policies=policies,
    enforcement_level=EnforcementLevel.MANDATORY,
)
