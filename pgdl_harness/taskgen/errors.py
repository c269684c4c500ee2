"""The task generator's one error type, shared by its modules."""


class TaskGenerationError(ValueError):
    """A task cannot be generated as asked (bad argument, existing folder, mismatching data)."""
