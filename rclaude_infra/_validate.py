"""Validators and converters shared by the config values (``config``) and the task spec
(``tasks.spec``): each raises :class:`~rclaude_infra.errors.ConfigError` naming the field."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from .errors import ConfigError


class Pattern:
    """A regular expression compiled on first use: the config module is imported by
    ``import rclaude_infra`` and most of its patterns are never needed."""

    def __init__(self, pattern: str) -> None:
        self._pattern = pattern
        self._compiled: re.Pattern[str] | None = None

    def fullmatch(self, text: str) -> re.Match[str] | None:
        """The whole of ``text`` matched, or ``None``: never a prefix (``re.match`` with
        ``$`` accepts a trailing newline, and an id ending in one is a path).

        >>> Pattern(r"[a-z]+").fullmatch("abc" + chr(10)) is None
        True
        """
        if self._compiled is None:
            self._compiled = re.compile(self._pattern)
        return self._compiled.fullmatch(text)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_between(low: int, high: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not is_int(value) or not low <= value <= high:  # type: ignore[operator]
            raise ConfigError(attribute.name, value, f"an integer from {low} to {high}")

    return check


def one_of(choices: tuple[Any, ...]) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or value not in choices:
            shown = ", ".join(repr(c) for c in choices)
            raise ConfigError(attribute.name, value, f"one of {shown}")

    return check


def is_bool(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(attribute.name, value, "true or false")


def as_tuple(value: object) -> object:
    """Accept a list where a tuple is wanted (TOML and JSON give lists); leave the rest."""
    return tuple(value) if isinstance(value, list) else value


def frozen_mapping(value: object) -> object:
    # A read-only copy, so a frozen config cannot change through the caller's dict.
    if isinstance(value, Mapping):
        from types import MappingProxyType

        return MappingProxyType(dict(value))
    return value


def number_between(name: str, value: object, low: float, high: float, *,
                   low_open: bool = False) -> float:
    """``value`` as a float when it is a finite number from ``low`` (or above it, with
    ``low_open``) to ``high``; else a :class:`ConfigError` naming ``name``.

    >>> number_between("poll_interval", 2, 0, 3600)
    2.0
    """
    ok = (
        isinstance(value, int | float) and not isinstance(value, bool)
        and math.isfinite(value)
        and (low < value if low_open else low <= value) and value <= high
    )
    if not ok:
        bound = f"above {low}" if low_open else f"from {low}"
        raise ConfigError(name, value, f"a number {bound} to {high}")
    return float(value)  # type: ignore[arg-type]


def float_between(low: float, high: float, *, low_open: bool = False) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        number_between(attribute.name, value, low, high, low_open=low_open)

    return check


def known_fields(cls: type, data: object, what: str, prefix: str = "") -> dict[str, Any]:
    """``data`` as keyword arguments for the attrs class ``cls``; an unknown key is an
    error naming the key and the fields there are."""
    if not isinstance(data, Mapping):
        raise ConfigError(what, data, f"a mapping of {cls.__name__} fields")
    names = [a.name for a in attrs.fields(cls)]
    for key in data:
        if key not in names:
            raise ConfigError(f"{prefix}{key}", data[key],
                              f"a {cls.__name__} field: " + ", ".join(names))
    return dict(data)


def matching(pattern: Pattern, allowed: str, *, optional: bool = False) -> Any:
    """A validator: a string matching ``pattern`` in full (or ``None``, when ``optional``)."""
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ConfigError(attribute.name, value, allowed)

    return check


def distinct_matching(pattern: Pattern, allowed: str) -> Any:
    """A validator: a tuple of distinct strings, each matching ``pattern``."""
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if (
            not isinstance(value, tuple)
            or len(set(value)) != len(value)
            or not all(isinstance(item, str) and pattern.fullmatch(item) for item in value)
        ):
            raise ConfigError(attribute.name, value, allowed)

    return check
