"""Money as the service keeps it: whole micro-dollars (integers add up exactly), shown
as dollars, billed as whole cents."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def micro_usd(usd: float | None) -> int:
    """Dollars as whole micro-dollars (half up): money is kept in integers."""
    if not usd:
        return 0
    return int(Decimal(repr(float(usd))).scaleb(6).quantize(Decimal(1), ROUND_HALF_UP))


def cents(micro: int) -> int:
    """Micro-dollars as whole cents, half up (what a meter event of model use carries)."""
    return int((Decimal(micro) / 10_000).quantize(Decimal(1), ROUND_HALF_UP))


def usd(micro: int) -> float:
    """Micro-dollars as dollars (what the API answers).

    >>> usd(1_250_000)
    1.25
    """
    return micro / 1_000_000
