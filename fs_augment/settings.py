"""How a setting is declared: once, as a dataclass field with its rule and help.

A settings class is a frozen dataclass whose fields are made by :func:`setting`
(a value: default, :class:`Rule`, help) or :func:`section` (a nested settings
class). The field's annotation is its type, the rule its bounds and check, so
:func:`fs_augment.config.load_config` validates from the same declaration that
:func:`fs_augment.config.describe_settings` lists for the docs.

A rule's ``check`` returns the value to keep or raises ``TypeError`` whose text
completes "``KEY must be ...``"; the loader adds the file, the dotted key and the
value it got.

Examples
--------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Retry:
...     attempts: int = setting(3, Integer(0, 100, "enough"), "Retries of a failed call.")
>>> rule = setting_of(Retry, "attempts").rule
>>> rule.check(5), rule.bounds
(5, '0 to 100')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any

__all__ = [
    "Flag",
    "Integer",
    "Number",
    "OneOf",
    "Rule",
    "Secret",
    "SecretText",
    "Setting",
    "Text",
    "section",
    "sections_of",
    "setting",
    "setting_of",
    "settings_of",
]


class Secret:
    """A string that keeps out of reprs, logs and pickles.

    Examples
    --------
    >>> s = Secret("hunter2")
    >>> s, str(s), s.get()
    (Secret('***'), '***', 'hunter2')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret value itself; pass it only to the client that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is never pickled; resolve it from the config where it is used")


# --- rules ---------------------------------------------------------------------------

class Rule:
    """The check and the documented bounds of one setting's values.

    ``text`` rules keep a value produced by ``${VAR}`` interpolation as text
    (``"0x10"`` stays a password); other rules read it as a YAML scalar
    (``"${DB:-3}"`` → 3).
    """

    text: bool = False
    #: Bounds or allowed values, for the docs ("" when any value of the type goes).
    bounds: str = ""

    def check(self, value: Any) -> Any:
        """The value to keep; raise ``TypeError("<what it must be>")`` otherwise."""
        return value


class Integer(Rule):
    """An integer ``>= minimum`` and, with ``maximum``, at most that (``why`` says why)."""

    def __init__(self, minimum: int, maximum: int | None = None, why: str = "") -> None:
        self.minimum, self.maximum, self.why = minimum, maximum, why
        self.bounds = f">= {minimum}" if maximum is None else f"{minimum} to {maximum}"

    def check(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < self.minimum:
            raise TypeError(f"an integer >= {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise TypeError(f"at most {self.maximum} ({self.why})")
        return value


class Number(Rule):
    """A number ``>= 0``; None too when ``optional``."""

    bounds = ">= 0"

    def __init__(self, *, optional: bool = False) -> None:
        self.optional = optional

    def check(self, value: Any) -> float | None:
        if value is None and self.optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise TypeError("a number >= 0")
        return value


class Flag(Rule):
    """``true`` or ``false``."""

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise TypeError("true or false")
        return value


class Text(Rule):
    """A string; with ``optional`` an empty or missing one is None. ``shape`` checks it further."""

    text = True

    def __init__(self, *, optional: bool = True, shape: Callable[[str], str | None] | None = None,
                 bounds: str = "") -> None:
        self.optional, self.shape, self.bounds = optional, shape, bounds

    def check(self, value: Any) -> str | None:
        if self.optional and (value is None or value == ""):
            return None
        if not isinstance(value, str):
            raise TypeError("a string")
        problem = self.shape(value) if self.shape is not None else None
        if problem is not None:
            raise TypeError(problem)
        return value


class OneOf(Rule):
    """One of a fixed set of strings, or of the keys a callable returns when the value is checked."""

    def __init__(self, values: Iterable[str] | Callable[[], Iterable[str]]) -> None:
        self._values = values

    @property
    def values(self) -> tuple[str, ...]:
        """The allowed values, now."""
        return tuple(self._values() if callable(self._values) else self._values)

    @property
    def bounds(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(repr(v) for v in self.values)

    def check(self, value: Any) -> str:
        allowed = self.values
        if value not in allowed:
            raise TypeError("one of " + ", ".join(repr(a) for a in allowed))
        return str(value)


class SecretText(Rule):
    """A password: text (or digits) kept as a :class:`Secret`; empty or missing is None."""

    text = True

    def check(self, value: Any) -> Secret | None:
        if value is None or value == "":
            return None
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str | int):
            raise TypeError("a string (use '${VARIABLE}' to read it from the environment)")
        return Secret(str(value))


# --- declarations ----------------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    """What a field made by :func:`setting` carries: its rule, help and the backend it is for."""

    rule: Rule
    help: str
    backend: str | None = None


def setting(default: Any, rule: Rule, help: str, *, backend: str | None = None) -> Any:
    """A settings-class field: its default, the :class:`Rule` its values follow, and one line of help."""
    return field(default=default, metadata={"setting": Setting(rule, help, backend)})


def section(cls: type, help: str) -> Any:
    """A settings-class field holding a nested settings class (a map in the YAML file)."""
    return field(default_factory=cls, metadata={"section": cls, "help": help})


@cache
def settings_of(cls: type) -> dict[str, Setting]:
    """A settings class's value fields, by name, in declaration order."""
    return {f.name: f.metadata["setting"] for f in fields(cls) if "setting" in f.metadata}


@cache
def sections_of(cls: type) -> dict[str, type]:
    """A settings class's section fields → their settings classes."""
    return {f.name: f.metadata["section"] for f in fields(cls) if "section" in f.metadata}


def setting_of(cls: type, name: str) -> Setting:
    """The declaration of one field."""
    return settings_of(cls)[name]
