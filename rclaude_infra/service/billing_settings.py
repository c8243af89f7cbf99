"""How the service reaches Stripe, from the environment. Without ``STRIPE_SECRET_KEY``
there is no billing: plans are assigned by admins. The keys never appear in a repr, a log
or an error."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import ConfigError

#: Every setting's environment variable; the first four are needed together.
ENV = {"secret_key": "STRIPE_SECRET_KEY", "webhook_secret": "STRIPE_WEBHOOK_SECRET",
       "pro_price": "STRIPE_PRO_PRICE_ID", "api_base": "STRIPE_API_BASE",
       "executions_meter": "RCLAUDE_STRIPE_EXECUTIONS_METER",
       "model_meter": "RCLAUDE_STRIPE_MODEL_METER",
       "grace_days": "RCLAUDE_BILLING_GRACE_DAYS"}
METER_NAME = r"[A-Za-z0-9_.:-]{1,100}"


def _matches(pattern: str, what: str) -> Any:
    def check(_: object, attribute: attrs.Attribute[str], value: str) -> None:
        if not re.fullmatch(pattern, value):
            shown = value if attribute.name not in ("secret_key", "webhook_secret") else "…"
            raise ConfigError(ENV[attribute.name], shown, what)
    return check


@attrs.frozen(kw_only=True)
class StripeSettings:
    """Stripe's keys, the Pro plan's price, where the API is, and the meters usage is
    reported to.

    >>> StripeSettings(secret_key="sk_test_1", webhook_secret="whsec_1",
    ...                pro_price="price_1")  # doctest: +ELLIPSIS
    StripeSettings(pro_price='price_1', api_base=None, ...)
    """

    secret_key: str = attrs.field(repr=False, validator=_matches(
        r"(sk|rk)_(test|live)_[A-Za-z0-9_]+", "a Stripe secret key (sk_live_…, sk_test_…)"))
    webhook_secret: str = attrs.field(repr=False, validator=_matches(
        r"whsec_[A-Za-z0-9_+/=]+", "a webhook signing secret (whsec_…)"))
    pro_price: str = attrs.field(validator=_matches(r"price_[A-Za-z0-9_]+",
                                                    "a Stripe price id (price_…)"))
    #: Another address for Stripe's API (a test double); ``None``: api.stripe.com.
    api_base: str | None = attrs.field(default=None, validator=attrs.validators.optional(
        _matches(r"https?://[^\s/?#]+(:\d+)?", "an http(s):// origin without a path")))
    #: The Billing Meters' event names: executions beyond the allowance (value 1 each),
    #: and the model's cost on the service's key (value in cents).
    executions_meter: str = attrs.field(default="rclaude_overage_executions",
                                        validator=_matches(METER_NAME, "a meter event name"))
    model_meter: str = attrs.field(default="rclaude_model_cents",
                                   validator=_matches(METER_NAME, "a meter event name"))
    #: Days a plan holds after a failed payment before the user is back on free.
    grace_days: int = attrs.field(default=7, validator=lambda _, __, v: _days(v))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StripeSettings | None:
        """The settings in ``env``; ``None`` when ``STRIPE_SECRET_KEY`` is not set."""
        if not env.get(ENV["secret_key"]):
            return None
        values: dict[str, object] = {}
        for name, variable in ENV.items():
            value = env.get(variable)
            if value:
                values[name] = value
            elif name in ("webhook_secret", "pro_price"):
                raise ConfigError(variable, None, f"set with {ENV['secret_key']}")
        if "grace_days" in values:
            text = str(values["grace_days"])
            if not text.isdigit():
                raise ConfigError(ENV["grace_days"], text, "a whole number of days")
            values["grace_days"] = int(text)
        return cls(**values)  # type: ignore[arg-type]


def _days(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 60:
        raise ConfigError(ENV["grace_days"], value, "0 to 60 days")
