"""Worker processes: the same values and files as one process, and faults that lose only their model.

A worker killed by a signal, one that runs past the model timeout and a config that asks for 2e9
units are each reported with a one-line reason, every other model is measured, and a second run
does not measure them again unless asked to. No healthy model is measured under a timeout (on a
busy machine a healthy model may take any time): the timeout is tested on a model that never ends.
"""

import json
import pickle
import shutil

import pytest

from pgdl_harness.cli import main
from pgdl_harness.errors import OptionError
from pgdl_harness.loading import build_model, load_arrays, load_model
from pgdl_harness.runner import MeasureRun, run_measures
from pgdl_harness.tasks import find_tasks
from pgdl_harness.workers import WorkerEngine, WorkerStartError, describe_exit

from ..conftest import DATA, TOY_TASK
from . import fault_measures

CHEAP = ["--param", "n_pairs=8", "--param", "n_points=5"]


def test_bad_options_are_named_by_their_keyword_in_the_library_and_by_their_flag_in_the_cli(tmp_path, capsys):
    for options, option, problem in [({"workers": 0}, "workers", "must be 1 or more, got 0"),
                                     ({"workers": 2, "model_timeout": 0}, "model_timeout",
                                      "must be a positive number of seconds, got 0")]:
        with pytest.raises(OptionError) as raised:
            WorkerEngine(**options)
        copy = pickle.loads(pickle.dumps(raised.value))
        for error in (raised.value, copy):
            assert (error.option, error.problem, str(error)) == (option, problem, f"{option} {problem}")
    arguments = ["score", "--data", str(DATA), "--task", "toy_data", "--measure", "parameter_norm", "--out",
                 str(tmp_path), "--no-progress"]
    assert main([*arguments, "--workers", "0"]) == 2
    assert capsys.readouterr().err == "error: --workers must be 1 or more, got 0\n"
    assert main([*arguments, "--workers", "2", "--model-timeout", "-1"]) == 2
    assert capsys.readouterr().err == "error: --model-timeout must be a positive number of seconds, got -1.0\n"
    assert not tmp_path.joinpath("cache").exists()


def test_a_worker_that_cannot_start_is_worded_with_the_flag_that_avoids_workers():
    from pgdl_harness.cli import _task_failure
    from pgdl_harness.errors import HarnessError

    assert _task_failure(WorkerStartError("a worker process could not start (...)")) == (
        "a worker process could not start (...); --workers 1 measures in this process")
    assert _task_failure(HarnessError("shard_1.tfrecord: truncated")) == "shard_1.tfrecord: truncated"


def test_exit_codes_are_described_by_their_signal():
    assert describe_exit(-9) == "worker killed by signal 9 (SIGKILL)"
    assert describe_exit(-11) == "worker killed by signal 11 (SIGSEGV)"
    assert describe_exit(3) == "worker exited with code 3"


@pytest.mark.slow
def test_two_workers_write_the_files_of_one_process(tmp_path):
    """Every bundled task, scored in this process and by two workers: byte-identical .predict files."""
    for workers in ("1", "2"):
        out = tmp_path / workers
        assert main(["score", "--data", str(DATA), "--measure", "fragmentation", *CHEAP, "--out", str(out),
                     "--no-progress", "--workers", workers, "--null", "0", "--bootstrap", "0"]) == 0
    names = sorted(path.name for path in (tmp_path / "1").glob("*.predict"))
    assert names == sorted(f"{task.name}.predict" for task in find_tasks(DATA))
    for name in names:
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name


def _set_first_width(folder, units):
    """Model ``folder`` with ``units`` in its first Dense layer, and weights that fit."""
    config = json.loads((folder / "config.json").read_text())
    config["model_config"][0]["units"] = units
    (folder / "config.json").write_text(json.dumps(config))
    if units < 1000:
        tf_keras = pytest.importorskip("tf_keras")
        build_model(config, folder / "config.json", keras=tf_keras).save_weights(str(folder / "weights.hdf5"))
        (folder / "weights_init.hdf5").unlink(missing_ok=True)


@pytest.fixture
def hostile_task(tmp_path):
    """The toy task with a model that kills its worker and one of 2e9 units."""
    shutil.copytree(TOY_TASK, tmp_path / "data" / "toy_data")
    task = find_tasks(tmp_path / "data")[0]
    _set_first_width(task.model_folder("model_3"), fault_measures.KILLED_WIDTH)
    # 8e9 weights in the first layer alone: refused from the config before anything is allocated.
    _set_first_width(task.model_folder("model_7"), 2_000_000_000)
    return find_tasks(tmp_path / "data")[0]


@pytest.mark.slow
def test_a_model_past_the_timeout_loses_only_itself(tmp_path):
    shutil.copytree(TOY_TASK, tmp_path / "data" / "toy_data")
    task = find_tasks(tmp_path / "data")[0]
    _set_first_width(task.model_folder("model_5"), fault_measures.HUNG_WIDTH)
    inputs, labels = load_arrays(task, "train", None)
    runs = {"faulty": MeasureRun.of("faulty", fault_measures.kill_or_hang)}
    with WorkerEngine(1, model_timeout=1) as engine:
        [hung] = engine.outcomes(task, [("model_5", ["faulty"])], runs, inputs, labels)
        assert engine.replaced == 1 and engine.timed_out == 1
        engine.model_timeout = None  # the replacement worker measures the next model, untimed
        [healthy] = engine.outcomes(task, [("model_0", ["faulty"])], runs, inputs, labels)
        assert engine.timed_out == 1
    assert hung.values == {} and hung.failures == {"faulty": f"{task.model_folder('model_5')}: took longer than "
                                                             f"the model timeout of 1 s; its worker was stopped"}
    width = fault_measures.first_width(load_model(task.model_folder("model_0")))
    assert healthy.values["faulty"][0] == pytest.approx(width + float(inputs[0, 0]), rel=1e-6)
    assert healthy.where != hung.where  # a new worker


@pytest.mark.slow
def test_a_killed_and_an_oversized_model_lose_only_themselves(hostile_task, tmp_path):
    measures = {"faulty": fault_measures.kill_or_hang}
    out = tmp_path / "out"
    with WorkerEngine(2) as engine:
        run = run_measures(hostile_task, measures, out, engine=engine, progress=False)
        assert engine.replaced == 1 and engine.timed_out == 0
    failures = run.failures["faulty"]
    assert sorted(failures) == ["model_3", "model_7"]
    assert failures["model_3"].endswith("model_3: worker killed by signal 9 (SIGKILL) while measuring model_3")
    assert "model_7/config.json: the layers would hold 12,000,000,002 parameters" in failures["model_7"]
    assert all("\n" not in reason for reason in failures.values())
    healthy = sorted(set(hostile_task.model_ids) - set(failures))
    assert sorted(run.results["faulty"]) == healthy and len(healthy) == 16
    inputs, _ = load_arrays(hostile_task, "train", None)
    for model_id in healthy:  # the values a worker sent back are the measure's, model by model
        width = fault_measures.first_width(load_model(hostile_task.model_folder(model_id)))
        assert run.results["faulty"][model_id].value == pytest.approx(width + float(inputs[0, 0]), rel=1e-6)

    # A second run reads the two failures from the cache and measures nothing.
    with WorkerEngine(2) as engine:
        again = run_measures(hostile_task, measures, out, engine=engine, progress=False)
        assert engine.replaced == 0
    assert again.workers == {} and again.cached_failures == {"faulty": 2}
    assert sorted(again.failures["faulty"]) == sorted(failures)
    assert all(again.failures["faulty"][model_id] == f"{reason} (cached)" for model_id, reason in failures.items())

    # Asked to, it measures them again (the killed one is killed again).
    with WorkerEngine(2) as engine:
        retried = run_measures(hostile_task, {"faulty": fault_measures.kill_or_hang}, out, engine=engine,
                               progress=False, retry_failed=True)
        assert engine.replaced == 1
    assert sorted(retried.failures["faulty"]) == sorted(failures)
    assert "(cached" not in retried.failures["faulty"]["model_3"]
