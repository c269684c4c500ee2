"""The task generator's command line: ``python -m pgdl_harness.make_task`` and ``pgdl-harness make-task``."""

from __future__ import annotations

import argparse
import os
import sys

from .errors import TaskGenerationError
from .families import FAMILIES
from .generate import make_task
from .images import DATASETS
from .spec import DEFAULTS


def _grid_argument(text: str) -> tuple[str, list[str]]:
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,..., got {text!r}")
    return name.strip(), [v for v in values.split(",") if v.strip()]


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the task generator's arguments to ``parser`` (used by ``make-task`` and ``__main__``)."""
    families = "; ".join(f"{k}: " + ", ".join(f"{a}={','.join(map(str, v))}" for a, v in f.default_grid.items())
                         for k, f in FAMILIES.items())
    parser.description = "Train a complete hyperparameter grid of small networks and write it as a PGDL task."
    parser.add_argument("name", help="task folder name, created under --out")
    parser.add_argument("--out", default="data", help="folder that receives the task folder (default: data)")
    parser.add_argument("--family", required=True, choices=sorted(FAMILIES), help="model family")
    parser.add_argument("--dataset", default="mnist14", choices=sorted(DATASETS),
                        help="image data (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="task seed (default: %(default)s)")
    parser.add_argument("--grid", action="append", type=_grid_argument, default=[], metavar="NAME=V1,V2",
                        help=f"override one hyperparameter's values (repeatable). Default grids: {families}")
    parser.add_argument("--n-train", type=int, default=DEFAULTS["n_train"],
                        help="training images (default: %(default)s)")
    parser.add_argument("--n-test", type=int, default=DEFAULTS["n_test"], help="test images (default: %(default)s)")
    parser.add_argument("--shards", type=int, default=DEFAULTS["num_shards"],
                        help="shards per split (default: %(default)s)")
    parser.add_argument("--max-epochs", type=int, default=DEFAULTS["max_epochs"],
                        help="epoch limit of the stopping rule (default: %(default)s)")
    parser.add_argument("--target-train-acc", type=float, default=DEFAULTS["target_train_acc"],
                        help="stop once inference-mode train accuracy reaches this (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=DEFAULTS["learning_rate"],
                        help="Adam learning rate, unless --grid gives learning_rate (default: %(default)s)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an interrupted run with the same settings")
    mode.add_argument("--force", action="store_true", help="delete an existing task folder and start again")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-model lines")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the generator from parsed arguments; return the process exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    grid: dict[str, list[str]] = {}
    for axis, values in args.grid:
        if axis in grid:
            print(f"error: --grid gives {axis!r} twice", file=sys.stderr)
            return 2
        grid[axis] = values
    try:
        task_dir = make_task(
            args.name, args.out, family=args.family, dataset=args.dataset, seed=args.seed, grid=grid,
            n_train=args.n_train, n_test=args.n_test, num_shards=args.shards, max_epochs=args.max_epochs,
            target_train_acc=args.target_train_acc, learning_rate=args.learning_rate,
            resume=args.resume, force=args.force, progress=not args.quiet,
        )
    except TaskGenerationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(task_dir)
    return 0
