"""The harness's own errors: each names the file or folder at fault and what is wrong with it."""


class HarnessError(Exception):
    """Base of the errors the CLI reports as a one-line message instead of a traceback."""
