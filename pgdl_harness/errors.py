"""The harness's own errors: each names the file or folder at fault and what is wrong with it."""


class HarnessError(Exception):
    """Base of the errors the CLI reports as a one-line message instead of a traceback."""


class OptionError(HarnessError):
    """An option of a harness call has a value it cannot take.

    ``option`` is the option's keyword (``"workers"``), ``problem`` what is wrong with its value
    ("must be 1 or more, got 0"); the message is the two together. A front end that knows the
    option by another name (the CLI's ``--workers``) words the message with that name.
    """

    def __init__(self, option: str, problem: str):
        super().__init__(option, problem)  # both in args, so that a copy (pickle) is made the same way
        self.option, self.problem = option, problem

    def __str__(self) -> str:
        return f"{self.option} {self.problem}"
