"""Pieces of one-line error messages: a value shown short, whatever its size or depth, and an
unknown name with the closest known one."""

from __future__ import annotations

import difflib
import reprlib

_SHORT = reprlib.Repr()  # attributes, not arguments: Python 3.11 has no keyword form
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxtuple = 2, 4, 4, 4
_SHORT.maxstring = _SHORT.maxother = 40


def excerpt(value, limit: int = 80) -> str:
    """A repr of `value` short enough for a one-line message, whatever its size or depth."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unknown_name(kind: str, identifier, allowed) -> ValueError:
    """The error for a name that is not one of `allowed`: `Unknown layer 'dropout'. Did you mean
    'Dropout'? Allowed: ...` (a name differing only in case is the first suggestion)."""
    allowed = [str(name) for name in allowed]
    close = []
    if isinstance(identifier, str):
        close = [name for name in allowed if name.lower() == identifier.lower()]
        close = close or difflib.get_close_matches(identifier, allowed, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"Unknown {kind} {excerpt(identifier)}.{hint} Allowed: {', '.join(allowed)}.")
