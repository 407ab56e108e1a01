"""Errors the user can act on.

A `UserError` is bad input (a config key, a data file, a plugin): the CLI prints its message as one
line and exits with code 2, without a traceback (``--debug`` shows it).
"""


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2, no traceback."""


EXIT_USAGE = 2
