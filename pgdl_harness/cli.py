"""Command line: ``python -m pgdl_harness {score,evaluate,measures,make-task} ...`` (or ``pgdl-harness``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# TensorFlow's C++ start-up lines (oneDNN, CPU features) are noise on a terminal; hiding them
# costs nothing, unlike turning oneDNN off. Must be set before TensorFlow is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from complexity_measure.dataset import DEFAULT_MAX_EXAMPLES  # noqa: E402
from complexity_measure.registry import DEFAULT_MEASURE, MEASURES, get_measure  # noqa: E402

from .errors import HarnessError  # noqa: E402
from .report import TaskReport, format_table, score_predictions, write_report, write_report_json  # noqa: E402
from .runner import read_predictions, run_measure, write_predictions  # noqa: E402
from .tasks import find_tasks  # noqa: E402
from .uncertainty import DEFAULT_DRAWS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_tensorflow()
    try:
        return args.run(args)
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: every value computed so far is cached; run the same command again "
              "to resume", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgdl-harness", description=(
        "Run complexity measures over PGDL task folders, write the official .predict files and "
        "score them (conditional mutual information, Kendall's tau, granulated Kendall tau)."))
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="run a measure on every model of the tasks and score it")
    _add_data_arguments(score)
    which = score.add_mutually_exclusive_group()
    which.add_argument("--measure", default=DEFAULT_MEASURE, choices=sorted(MEASURES), metavar="NAME",
                       help=f"a registered measure (default: {DEFAULT_MEASURE}; list: `measures`)")
    which.add_argument("--submission", type=Path, metavar="DIR",
                       help="a PGDL submission folder (complexity.py), run as the kit runs it")
    score.add_argument("--out", type=Path, default=Path("results"),
                       help="where .predict files, caches and reports go (default: results)")
    score.add_argument("--fresh", action="store_true", help="recompute instead of reusing cached values")
    score.add_argument("--max-examples", type=int, default=None, metavar="N",
                       help=f"training examples handed to the measure (default: {DEFAULT_MAX_EXAMPLES} "
                            f"for registered measures, all of them for a submission)")
    score.add_argument("--no-progress", action="store_true", help="no progress bars")
    score.set_defaults(run=run_score)

    evaluate = commands.add_parser("evaluate", help="score .predict files produced elsewhere (e.g. by the kit)")
    _add_data_arguments(evaluate)
    evaluate.add_argument("--predictions", type=Path, required=True, metavar="DIR",
                          help="folder holding <task>.predict files")
    evaluate.set_defaults(run=run_evaluate)

    compare = commands.add_parser("compare", help="run several measures on the tasks and compare their scores")
    _add_data_arguments(compare)
    compare.add_argument("--measures", nargs="+", choices=sorted(MEASURES), metavar="NAME",
                         help="registered measures to compare (default: all of them)")
    compare.add_argument("--out", type=Path, default=Path("results/compare"),
                         help="where predictions, caches, comparison.{md,csv} and figures go "
                              "(default: results/compare)")
    compare.add_argument("--fresh", action="store_true", help="recompute instead of reusing cached values")
    compare.add_argument("--seeds", type=_count, default=1, metavar="K",
                         help="run each measure that samples (pairs, examples) with seeds 0..K-1 and report "
                              "the mean and spread over seeds (default: 1)")
    compare.add_argument("--no-figures", action="store_true", help="skip the per-task PNG figures")
    compare.add_argument("--no-progress", action="store_true", help="no progress bars")
    compare.set_defaults(run=run_compare)

    measures = commands.add_parser("measures", help="list the registered measures")
    measures.set_defaults(run=run_list_measures)

    _add_optional_commands(commands)
    return parser


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=Path("data"), metavar="ROOT",
                        help="a data root in the toy or the released layout, or one task folder (default: data)")
    parser.add_argument("--task", nargs="+", metavar="NAME", help="only these tasks (default: all found)")
    parser.add_argument("--report", type=Path, metavar="FILE",
                        help="also write the scores as JSON keyed by task to FILE")
    parser.add_argument("--null", type=_count, default=DEFAULT_DRAWS, metavar="N",
                        help=f"random measures scored for each task's chance level (default: {DEFAULT_DRAWS}; 0 skips)")
    parser.add_argument("--bootstrap", type=_count, default=DEFAULT_DRAWS, metavar="N",
                        help=f"resamples of each task's models for the 95%% intervals (default: {DEFAULT_DRAWS}; "
                             "0 skips)")


def _count(text: str) -> int:
    """A non-negative integer option value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def _add_optional_commands(commands) -> None:
    """Commands whose modules bring optional dependencies; imported only when present."""
    import importlib.util
    if importlib.util.find_spec(f"{__package__}.make_task") is None:
        return
    from . import make_task
    make = commands.add_parser("make-task", help="train a grid of small convnets and write a PGDL task")
    make_task.configure_parser(make)
    make.set_defaults(run=make_task.run)


def run_score(args) -> int:
    tasks = find_tasks(args.data, args.task)
    if args.submission is not None:
        from .submission import load_submission
        measure, name = load_submission(args.submission), f"submission-{args.submission.resolve().name}"
        max_examples = args.max_examples
    else:
        measure, name = get_measure(args.measure), args.measure
        max_examples = args.max_examples or DEFAULT_MAX_EXAMPLES
    reports = []
    for task in tasks:
        results = run_measure(task, measure, name, args.out, fresh=args.fresh,
                              max_examples=max_examples, progress=not args.no_progress)
        values = {model_id: result.value for model_id, result in results.items()}
        write_predictions(task, values, args.out)
        reports.append(score_predictions(task, name, values, [r.seconds for r in results.values()],
                                         null=args.null, bootstrap=args.bootstrap))
    return _finish(reports, args.out, args.report)


def run_compare(args) -> int:
    from .compare import seeded_measures, write_comparison
    from .runner import run_measures
    if args.seeds < 1:
        raise HarnessError(f"--seeds must be 1 or more, got {args.seeds}")
    tasks = find_tasks(args.data, args.task)
    measures = seeded_measures({name: get_measure(name) for name in (args.measures or sorted(MEASURES))},
                               args.seeds)
    results = {task: run_measures(task, measures, args.out, fresh=args.fresh, progress=not args.no_progress,
                                  skip_failing=True)
               for task in tasks}
    reports, frame, written = write_comparison(results, args.out, figures=not args.no_figures,
                                               null=args.null, bootstrap=args.bootstrap)
    if args.report is not None:
        write_report_json(reports, args.report)
    print((args.out / "comparison.md").read_text())
    print("wrote: " + ", ".join(str(path) for path in written if path.suffix != ".predict")
          + f" and {sum(path.suffix == '.predict' for path in written)} .predict files")
    return 0


def run_evaluate(args) -> int:
    tasks = find_tasks(args.data, args.task)
    reports = []
    for task in tasks:
        path = args.predictions / f"{task.name}.predict"
        if not path.exists() and not args.task:
            continue  # scoring what was predicted: tasks without a .predict are not an error
        reports.append(score_predictions(task, args.predictions.resolve().name, read_predictions(path),
                                         null=args.null, bootstrap=args.bootstrap))
    if not reports:
        raise HarnessError(f"no <task>.predict file in {args.predictions} for the tasks under {args.data} "
                           f"({', '.join(task.name for task in tasks)})")
    return _finish(reports, args.predictions, args.report)


def _finish(reports: list[TaskReport], out_dir: Path, report_path: Path | None) -> int:
    frame = write_report(reports, out_dir, report_path)
    print(format_table(frame))
    print(f"\nreport: {out_dir / 'report.csv'}, {out_dir / 'report.json'}"
          + (f", {report_path}" if report_path else ""))
    return 0


def run_list_measures(args) -> int:
    width = max(len(name) for name in MEASURES)
    for name in sorted(MEASURES):
        print(f"{name:<{width}}  {MEASURES[name].description}")
    return 0


def _quiet_tensorflow() -> None:
    import tensorflow as tf
    # Each model gets its own compiled functions; TF's retracing warning about that is noise.
    tf.get_logger().setLevel("ERROR")


if __name__ == "__main__":
    sys.exit(main())
