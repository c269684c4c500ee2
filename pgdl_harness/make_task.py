"""``python -m pgdl_harness.make_task``: the task generator's command, kept at the path the bundled
tasks' READMEs cite. The generator itself is the package ``pgdl_harness.taskgen``."""

from __future__ import annotations

import argparse
import sys

from .taskgen import DATASETS, FAMILIES, TaskGenerationError, make_task
from .taskgen.cli import configure_parser, run
from .taskgen.spec import command_line

__all__ = ["DATASETS", "FAMILIES", "TaskGenerationError", "command_line", "configure_parser", "make_task", "run"]

if __name__ == "__main__":
    sys.exit(run(configure_parser(argparse.ArgumentParser(prog="python -m pgdl_harness.make_task")).parse_args()))
