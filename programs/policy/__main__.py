"""CrossGuard policy pack: the rules of rclaude_infra.policy, enforced by the engine.

    pulumi preview --policy-pack programs/policy
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from rclaude_infra._pulumi.policy_pack import PACK_NAME, build_policies

PolicyPack(
    name=PACK_NAME,
    policies=build_policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
)
