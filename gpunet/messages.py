"""Pieces of one-line error messages: a value shown short, whatever its size or depth."""

from __future__ import annotations

import reprlib

_SHORT = reprlib.Repr()  # attributes, not arguments: Python 3.11 has no keyword form
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxtuple = 2, 4, 4, 4
_SHORT.maxstring = _SHORT.maxother = 40


def excerpt(value, limit: int = 80) -> str:
    """A repr of `value` short enough for a one-line message, whatever its size or depth."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
