"""Command line: ``python -m pgdl_harness {score,evaluate,compare,select,measures,make-task} ...`` (or
``pgdl-harness``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .errors import HarnessError, OptionError
from .quiet import import_tensorflow
from .uncertainty import DEFAULT_DRAWS

# The commands that load models and data with TensorFlow.
LOADS_MODELS = ("score", "compare", "make-task")
# Exit codes: 0 all done; 1 something asked for was not produced (a model failed, a task could not
# be read or scored; the rest were scored); 2 a usage or input error stopped the command; 130
# interrupted.
EXIT_FAILED_MODELS = 1
EXIT_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in LOADS_MODELS:
        # TensorFlow is imported here, not at the top of the module, so that its C++ start-up lines
        # (absl's warning, the oneDNN notice, CPU features) can be kept off the terminal; and only
        # for the commands that load models: evaluate, select and measures read files and scores.
        import_tensorflow(verbose=getattr(args, "verbose", False))
    try:
        return args.run(args)
    except OptionError as error:  # a value the library cannot take, named by this command's flag for it
        print(f"error: {_flag(args, error.option)} {error.problem}", file=sys.stderr)
        return EXIT_ERROR
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:  # a file or folder that cannot be read or written: "[Errno 13] Permission denied: 'x'"
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted: every value computed so far is cached; run the same command again "
              "to resume", file=sys.stderr)
        return 130


def _flag(args, option: str) -> str:
    """The flag of the command ``args`` were parsed for that sets the library's ``option``
    (``model_timeout``: ``--model-timeout``, as argparse names its destinations), or ``option`` itself
    where the command has no such flag."""
    return "--" + option.replace("_", "-") if hasattr(args, option) else option


def build_parser() -> argparse.ArgumentParser:
    from complexity_measure.dataset import DEFAULT_MAX_EXAMPLES
    from complexity_measure.registry import DEFAULT_MEASURE, MEASURES

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
    _add_run_arguments(score)
    score.add_argument("--budget", type=float, metavar="SECONDS",
                       help="the kit's time budget: SECONDS per model, summed over a task; models past it are "
                            "written as EXCEEDED (the kit then scores 0). Off by default")
    score.set_defaults(run=run_score)

    evaluate = commands.add_parser("evaluate", help="score .predict files produced elsewhere (e.g. by the kit)")
    _add_data_arguments(evaluate)
    evaluate.add_argument("--predictions", type=Path, required=True, metavar="DIR",
                          help="folder holding <task>.predict files")
    evaluate.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up and log lines")
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
    compare.add_argument("--max-examples", type=int, default=DEFAULT_MAX_EXAMPLES, metavar="N",
                         help=f"training examples handed to the measures (default: {DEFAULT_MAX_EXAMPLES})")
    _add_run_arguments(compare)
    compare.set_defaults(run=run_compare)

    select = commands.add_parser("select", help="choose a measure leaving one model family out, and report it on "
                                                "the tasks it was not chosen on (from a compare run)")
    _add_data_arguments(select)
    select.add_argument("--results", type=Path, required=True, metavar="DIR",
                        help="a compare run's --out folder (its <measure>/<task>.predict files)")
    select.add_argument("--candidates", nargs="+", required=True, metavar="NAME",
                        help="the measures to choose among, by mean CMI (a tie goes to the one named first)")
    select.add_argument("--fixed", nargs="*", default=[], metavar="NAME",
                        help="measures reported on the same tasks without any choice")
    select.add_argument("--reference", default=DEFAULT_MEASURE, metavar="NAME",
                        help=f"the measure the paired columns compare with (default: {DEFAULT_MEASURE})")
    select.add_argument("--family", action="append", default=[], metavar="TASK=NAME",
                        help="a task's family (default: the family in its generation_log.json)")
    select.set_defaults(run=run_select)

    measures = commands.add_parser("measures", help="list the registered measures and their parameters")
    measures.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)
    measures.set_defaults(run=run_list_measures)

    _add_optional_commands(commands)
    return parser


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that run measures on models (score, compare)."""
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="set a measure parameter (repeatable), e.g. --param n_pairs=1024 --param layer=-2; "
                             "`measures` lists each measure's parameters")
    parser.add_argument("--partial", action="store_true",
                        help="when a model fails, still write the task's values as <task>.partial.predict")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up and log lines")
    cluster = parser.add_argument_group("engine", "where models are measured (the values, caches and files are "
                                                  "the same either way)")
    cluster.add_argument("--engine", choices=("local", "ray"), default="local",
                         help="local: models measured on this machine, in --workers processes (default); ray: one "
                              "Ray task per model, on a local or an existing cluster (pip install -e '.[ray]')")
    cluster.add_argument("--workers", type=_count, default=None, metavar="N",
                         help="worker processes of the local engine, each with its share of the cores; 1 measures "
                              "in this process (default: $PGDL_HARNESS_WORKERS, or one per core)")
    cluster.add_argument("--model-timeout", type=float, metavar="SECONDS",
                         help="with worker processes: a model that takes longer is stopped and recorded as failed "
                              "(default: no limit)")
    cluster.add_argument("--retry-failed", action="store_true",
                         help="measure again the models whose failure is cached (a crash, a timeout, an error)")
    cluster.add_argument("--max-parameters", type=float, default=None, metavar="N",
                         help="refuse a model whose config.json asks for more parameters, before building it "
                              "(default: 2e8, about 200 times PGDL's largest models)")
    cluster.add_argument("--address", metavar="ADDR",
                         help="an existing Ray cluster ('auto' or HOST:PORT); without it --engine ray starts a "
                              "local one on 127.0.0.1")
    cluster.add_argument("--task-cpus", type=float, default=1, metavar="N",
                         help="CPUs per model's Ray task (default 1)")
    cluster.add_argument("--task-gpus", type=float, default=0, metavar="N",
                         help="GPUs per model's Ray task (default 0)")


def _engine(args):
    """The engine the command line asks for (a context manager that stops what it started)."""
    import contextlib

    from .runner import LocalEngine, check_budget
    if args.engine == "local":
        if args.address:
            raise HarnessError("--address is for --engine ray")
        from .workers import WorkerEngine, default_workers
        workers = default_workers() if args.workers is None else args.workers
        budget = getattr(args, "budget", None)
        if budget is not None and args.workers is None:
            workers = 1  # the budget rule (runner.check_budget) wants the in-process engine
        if workers == 1:
            if args.model_timeout is not None:
                raise HarnessError("--model-timeout needs worker processes (--workers 2 or more): a model measured "
                                   "in this process cannot be stopped")
            return contextlib.nullcontext(LocalEngine())
        engine = WorkerEngine(workers, model_timeout=args.model_timeout, verbose=args.verbose)
        try:
            check_budget(budget, engine)
        except HarnessError:
            raise HarnessError("--budget follows the kit's one-model-at-a-time clock: use it with --workers 1") from None
        return engine
    if args.workers is not None or args.model_timeout is not None:
        raise HarnessError("--workers and --model-timeout are for the local engine; Ray sizes its own workers")
    from .ray_engine import RayEngine
    engine = RayEngine(args.address, task_cpus=args.task_cpus, task_gpus=args.task_gpus)
    try:
        check_budget(getattr(args, "budget", None), engine)
    except HarnessError:
        raise HarnessError("--budget follows the kit's one-model-at-a-time clock: use it with --engine local "
                           "--workers 1") from None
    return engine


def _run_options(args) -> dict:
    """The options of ``run_measures`` the run arguments set."""
    options = {"retry_failed": args.retry_failed}
    if args.max_parameters is not None:
        if not args.max_parameters > 0:
            raise HarnessError(f"--max-parameters must be positive, got {args.max_parameters:g}")
        options["max_parameters"] = int(args.max_parameters)
    return options


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
    make.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up and log lines")
    make.set_defaults(run=make_task.run)


def run_score(args) -> int:
    from complexity_measure.dataset import DEFAULT_MAX_EXAMPLES

    from .outputs import write_run_files
    from .report import TaskReport, report_run
    from .runner import run_tasks
    from .tasks import find_tasks

    tasks = find_tasks(args.data, args.task)
    if args.submission is not None:
        if args.param:
            raise HarnessError("--param sets parameters of a registered measure (--measure), not of a submission")
        from .submission import load_submission
        measure = load_submission(args.submission)
        label, max_examples = measure.label, args.max_examples
    else:
        measure = _measure_with_params(args.measure, args.param)
        label, max_examples = args.measure, args.max_examples or DEFAULT_MAX_EXAMPLES
    _refuse_unscorable(tasks)
    reports, runs = [], []
    with _engine(args) as engine:
        for task, run in run_tasks(tasks, {label: measure}, args.out, fresh=args.fresh, max_examples=max_examples,
                                   progress=not args.no_progress, budget=args.budget, engine=engine,
                                   **_run_options(args)):
            if isinstance(run, HarnessError):  # the task's data cannot be read: the other tasks go on
                reason = _task_failure(run)
                print(f"failed: {reason}", file=sys.stderr)
                reports.append(TaskReport(task.name, label, 0, note=f"failed: {reason}"))
                continue
            runs.append(run)
            write_run_files(run, label, args.out, partial=args.partial)
            reports.append(report_run(run, label, null=args.null, bootstrap=args.bootstrap))
    _finish(reports, args.out, args.report)
    return _exit_code(reports, hints=_failure_hints(runs, engine))


def _measure_with_params(name: str, texts: list[str]):
    """The registered measure ``name`` with ``--param NAME=VALUE`` settings, checked; HarnessError if not."""
    from complexity_measure.registry import get_measure, parse_parameter
    try:
        return get_measure(name, **dict(parse_parameter(text) for text in texts))
    except (KeyError, ValueError) as error:
        raise HarnessError(error.args[0]) from None  # KeyError's str() would quote the message


def _exit_code(reports, lost_tasks: Sequence[str] = (), hints: Sequence[str] = ()) -> int:
    """Non-zero when something asked for was not produced, each thing listed with its one-line reason:
    a model that failed (then ``hints``, what the flags can do about the failures), a report without
    any score (its task could not be read or scored), and ``lost_tasks`` (why each task that has no
    report at all was lost)."""
    failures = [(report.task, model_id, reason) for report in reports for model_id, reason in report.failed.items()]
    if failures:
        print(f"\n{len(failures)} model(s) failed (their tasks are incomplete and have no CMI):", file=sys.stderr)
        for task, model_id, reason in failures:
            print(f"  {task}/{model_id}: {reason}", file=sys.stderr)
        for hint in hints:
            print(hint, file=sys.stderr)
    unscored = [f"{report.task} ({report.measure}): {report.note.removeprefix('not scored: ')}" for report in reports
                if not report.failed and report.cmi is None and report.kendall_tau is None]
    unscored += list(lost_tasks)
    if unscored:
        print(f"\n{len(unscored)} task(s) not scored:", file=sys.stderr)
        for reason in unscored:
            print(f"  {reason}", file=sys.stderr)
    return EXIT_FAILED_MODELS if failures or unscored else 0


def _failure_hints(runs, engine) -> list[str]:
    """What this command's flags can do about the failures of ``runs`` (``TaskRun``s measured by
    ``engine``): measure the cached ones again, give the timed-out ones longer."""
    from .runner import CACHED_MARK
    from .workers import WorkerEngine

    hints = []
    if any(count for run in runs for count in run.cached_failures.values()):
        hints.append(f"a failure marked {CACHED_MARK} was read from an earlier run's cache: --retry-failed "
                     f"measures those models again")
    if isinstance(engine, WorkerEngine) and engine.timed_out:
        hints.append(f"{engine.timed_out} model(s) ran past --model-timeout {engine.model_timeout:g}: a larger "
                     f"value gives them longer")
    return hints


def _task_failure(error: HarnessError) -> str:
    """Why a task was lost, as this command says it: a worker that cannot start is avoided with ``--workers 1``."""
    from .workers import WorkerStartError

    return f"{error}; --workers 1 measures in this process" if isinstance(error, WorkerStartError) else str(error)


def _refuse_unscorable(tasks, *, cmi: bool = False) -> None:
    """HarnessError when a task's ``model_configs.json`` cannot score its models, before anything is
    measured (nothing could be scored after): missing, not valid JSON, not a complete grid of
    hyperparameters, without the accuracies, listing other models than the task's folders, or one
    model only. ``cmi``: also when CMI is undefined (fewer than two hyperparameters)."""
    problems = []
    for task in tasks:
        try:
            _check_scorable(task, cmi)
        except (HarnessError, ValueError) as error:  # the scoring module's errors are one-line ValueErrors
            problems.append(str(error))
    if len(problems) == 1:
        raise HarnessError(problems[0])
    if problems:
        raise HarnessError(f"{len(problems)} tasks cannot be scored:\n  " + "\n  ".join(problems))


def _check_scorable(task, cmi: bool) -> None:
    """Raise, naming the file, what keeps ``task``'s predictions from being scored (see ``_refuse_unscorable``)."""
    from .scoring import generalization_gaps, validate_hyperparameter_grid

    specs = task.model_specs()
    source = task.model_configs_path
    validate_hyperparameter_grid(specs, str(source))
    listed, folders = list(generalization_gaps(specs)), task.model_ids  # ids as the scorer names them
    unlisted = sorted(set(folders) - set(listed))
    absent = sorted(set(listed) - set(folders))
    if unlisted or absent:
        problems = ([f"the model folder(s) {_some(unlisted)} are not in it"] if unlisted else []) + (
            [f"it lists {_some(absent)}, which {task.folder} does not hold"] if absent else [])
        raise HarnessError(f"{source}: " + "; ".join(problems))
    if len(listed) < 2:
        raise HarnessError(f"{source}: a task needs at least two models to be scored, it has {len(listed)}")
    hyperparameters = next(iter(specs.values()))["hparams"]
    if cmi and len(hyperparameters) < 2:
        raise HarnessError(f"{source}: CMI needs at least two hyperparameters, the task has "
                           f"{len(hyperparameters)} ({', '.join(hyperparameters)})")


def _some(names: list[str], shown: int = 5) -> str:
    """The first ``shown`` names, and how many there are in all when there are more."""
    text = ", ".join(names[:shown])
    return text + (f", ... ({len(names)} in all)" if len(names) > shown else "")


def run_compare(args) -> int:
    from complexity_measure.registry import MEASURES

    from .compare import compare_runs, seeded_measures
    from .outputs import write_comparison, write_report_json
    from .runner import run_tasks
    from .tasks import find_tasks

    if args.seeds < 1:
        raise HarnessError(f"--seeds must be 1 or more, got {args.seeds}")
    tasks = find_tasks(args.data, args.task)
    names = args.measures or sorted(MEASURES)
    settings = _parse_parameters(args.param)
    unused = [key for key in settings if not any(key in MEASURES[name].parameters for name in names)]
    if unused:
        raise HarnessError(f"no chosen measure has the parameter(s) {', '.join(unused)}")
    # Each setting goes to the measures that have that parameter.
    labelled = seeded_measures({name: _measure_with_params(name, [text for text, key in zip(args.param, settings)
                                                                  if key in MEASURES[name].parameters])
                                for name in names}, args.seeds)
    measures = {label.name: measure for label, measure in labelled.items()}
    _refuse_unscorable(tasks)
    if not args.no_figures:  # found missing now, not once every model has been measured
        from .figures import pyplot
        try:
            pyplot()
        except ImportError as error:
            raise HarnessError(f"{error} (or pass --no-figures)") from None
    results, lost = {}, []
    with _engine(args) as engine:
        for task, run in run_tasks(tasks, measures, args.out, fresh=args.fresh, max_examples=args.max_examples,
                                   progress=not args.no_progress, engine=engine, **_run_options(args)):
            if isinstance(run, HarnessError):  # the task's data cannot be read: the other tasks go on
                reason = _task_failure(run)
                print(f"failed: {reason}", file=sys.stderr)
                lost.append(f"{task.name}: failed: {reason}")
            else:
                results[task] = run
    comparison = compare_runs(results, {label.name: label for label in labelled}, null=args.null,
                              bootstrap=args.bootstrap)
    written = write_comparison(comparison, args.out, figures=not args.no_figures, partial=args.partial)
    reports = comparison.reports
    if args.report is not None:
        write_report_json(reports, args.report)
    print((args.out / "comparison.md").read_text())
    print("wrote: " + ", ".join(str(path) for path in written if path.suffix == ".md" or path.suffix == ".csv")
          + f" and {sum(path.suffix == '.predict' for path in written)} .predict files")
    return _exit_code(reports, lost, _failure_hints(results.values(), engine))


def run_select(args) -> int:
    from .outputs import write_selection
    from .selection import UnknownFamilyError, run_selection, selection_markdown
    from .tasks import find_tasks

    families = {}
    for text in args.family:
        task, sep, family = text.partition("=")
        if not sep or not task or not family:
            raise HarnessError(f"--family takes TASK=NAME, got {text!r}")
        families[task] = family
    tasks = find_tasks(args.data, args.task)
    _refuse_unscorable(tasks, cmi=True)
    try:
        selection = run_selection(tasks, args.results, args.candidates, args.fixed, reference=args.reference,
                                  families=families, bootstrap=args.bootstrap or 1, null=args.null)
    except UnknownFamilyError as error:
        raise HarnessError(f"{error}; give it with --family {error.task}=NAME") from None
    except ValueError as error:  # a .predict file the task's models cannot be scored with (scoring's one line)
        raise HarnessError(f"cannot score the predictions in {args.results}: {error}") from None
    text = selection_markdown(selection, args.reference)
    markdown, *tables = write_selection(selection, text, args.results)
    print(text)
    print(f"wrote: {markdown}, {', '.join(path.name for path in tables)}")
    return 0


def _parse_parameters(texts: list[str]) -> list[str]:
    """The parameter names of ``--param NAME=VALUE`` settings; HarnessError on a malformed one."""
    from complexity_measure.registry import parse_parameter
    try:
        return [parse_parameter(text)[0] for text in texts]
    except ValueError as error:
        raise HarnessError(str(error)) from None


def run_evaluate(args) -> int:
    from .report import score_predictions
    from .predictions import predictions_path, read_predictions
    from .tasks import find_tasks

    tasks = find_tasks(args.data, args.task)
    reports = []
    for task in tasks:
        path = predictions_path(args.predictions, task.name)
        if not path.exists() and not args.task:
            continue  # scoring what was predicted: tasks without a .predict are not an error
        reports.append(score_predictions(task, args.predictions.resolve().name, read_predictions(path),
                                         null=args.null, bootstrap=args.bootstrap))
    if not reports:
        raise HarnessError(f"no <task>.predict file in {args.predictions} for the tasks under {args.data} "
                           f"({', '.join(task.name for task in tasks)})")
    _finish(reports, args.predictions, args.report)
    return _exit_code(reports)


def _finish(reports, out_dir: Path, report_path: Path | None) -> None:
    """Write the report files and print the table."""
    from .outputs import write_report
    from .render import format_table

    frame = write_report(reports, out_dir, report_path)
    print(format_table(frame))
    print(f"\nreport: {out_dir / 'report.csv'}, {out_dir / 'report.json'}"
          + (f", {report_path}" if report_path else ""))


def run_list_measures(args) -> int:
    from complexity_measure.registry import MEASURES

    width = max(len(name) for name in MEASURES)
    for name in sorted(MEASURES):
        measure = MEASURES[name]
        print(f"{name:<{width}}  {measure.description}")
        if measure.parameters:
            settings = " ".join(f"{key}={value!r}" for key, value in measure.parameters.items())
            print(f"{'':<{width}}    parameters: {settings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
