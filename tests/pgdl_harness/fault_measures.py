"""Test-only measures that fail the way no Python exception can: they kill or hang their process.

They live in an importable module (not in a test function) so that worker processes, which start
from a fresh interpreter, can unpickle them. Each one picks its victim by the width of the model's
first Dense layer, which the fault tests set on one model of a copy of the toy task.
"""

import os
import signal
import time

KILLED_WIDTH = 63  # the worker measuring a model whose first layer has 63 units is killed (SIGKILL)
HUNG_WIDTH = 62  # ... and one whose first layer has 62 units never finishes


def first_width(model) -> int:
    return int(model.layers[0].units)


def kill_or_hang(model, inputs, labels) -> float:
    """The first layer's width, except on the victims."""
    width = first_width(model)
    if width == KILLED_WIDTH:
        os.kill(os.getpid(), signal.SIGKILL)
    if width == HUNG_WIDTH:
        time.sleep(3600)
    return float(width + float(inputs[0, 0]))
