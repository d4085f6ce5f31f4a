"""Config faults: `ConfigError`, one line naming the file and key path, and the checks whose
failures it reports (types, choices, unknown keys with a did-you-mean)."""

from __future__ import annotations

import difflib
import types
import typing

from gpunet.messages import excerpt

MAX_MESSAGE = 1000  # characters in one error line


class ConfigError(ValueError):
    """A config fault; `str()` is the one-line message the CLI prints."""

    def __init__(self, source: str, key: str, message: str):
        key = key if key.isprintable() else repr(key)
        self.source, self.key = source, key
        where = f"{source}: {key}" if key else source
        text = " ".join(f"{where}: {message}".splitlines())
        if len(text) > MAX_MESSAGE:  # a safety net: values in messages are excerpts already
            text = text[: MAX_MESSAGE - 3] + "..."
        super().__init__(text)


def type_name(hint) -> str:
    """How a message names a type hint: `int | None` -> "an int or null"."""
    names = {
        int: "an int",
        float: "a number",
        bool: "true/false",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        type(None): "null",
    }
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " or ".join(type_name(h) for h in typing.get_args(hint))
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def matches(value, hint) -> bool:
    """Whether a YAML value fits a type hint (an int is a number; a bool is neither)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def unknown_key(source: str, path: str, key, allowed) -> ConfigError:
    """The error for a key not in `allowed`, with the closest allowed one as a did-you-mean."""
    close = difflib.get_close_matches(str(key), [str(a) for a in allowed], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(
        source,
        f"{path}{key}" if path else str(key),
        f"unknown key.{hint} Allowed: {', '.join(map(str, allowed))}.",
    )


def check_choice(source: str, key: str, value, allowed) -> None:
    """Refuse a value that is not one of `allowed`, listing them."""
    if value not in allowed:
        raise ConfigError(
            source,
            key,
            f"{excerpt(value)} is not allowed; expected one of {', '.join(map(str, allowed))}.",
        )
