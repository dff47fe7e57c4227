"""Errors that the command line reports to the user as one line (exit code 2)."""


class UserError(Exception):
    """A problem the user can fix; the CLI prints it on one line and exits with code 2."""
