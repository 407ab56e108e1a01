"""Errors the user can act on.

A `UserError` is bad input (a config key, a data file, a plugin): the CLI prints its message as one
line and exits with code 2, without a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2, no traceback."""


EXIT_USAGE = 2


def closest(name: str, candidates: Iterable[str]) -> str:
    """A ``" (did you mean 'x'?)"`` hint for a misspelt name, or an empty string."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""
