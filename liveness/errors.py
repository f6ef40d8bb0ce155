"""The one exception type the command line turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user (a file, a folder, a camera, an option): the message says the fix."""
