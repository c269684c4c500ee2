"""The Ray engine: the same caches, reports and .predict files as the local engine, on a two-node
cluster that runs on this machine's loopback (started and stopped here)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pgdl_harness.cli import main
from pgdl_harness.cache import ResultCache, cache_path, matching_results
from pgdl_harness.tasks import find_tasks

from ..conftest import DATA, REPO, TOY_TASK
from .test_submission import score_modified_copy

pytestmark = pytest.mark.slow
CHEAP = ["--measure", "fragmentation", "--param", "n_pairs=32", "--no-progress"]


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes of one CPU each, both on 127.0.0.1, with this process connected as the driver."""
    assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"  # set by conftest before ray is imported
    import ray
    from ray.cluster_utils import Cluster
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                          "include_dashboard": False})
    nodes.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    ray.init(address=nodes.address, log_to_driver=False, logging_level="ERROR")
    nodes.wait_for_nodes()
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    yield nodes
    ray.shutdown()
    nodes.shutdown()


@pytest.fixture(scope="module")
def local_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    assert main(["score", "--data", str(DATA), *CHEAP, "--out", str(out)]) == 0
    return out


def test_score_on_ray_writes_the_local_engines_files(cluster, local_out, tmp_path):
    import ray
    out = tmp_path / "ray"
    assert main(["score", "--data", str(DATA), *CHEAP, "--out", str(out), "--engine", "ray"]) == 0
    tasks = ("toy_data", "mnist_vgg", "mnist_nin_bn")
    for task in tasks:
        assert (out / f"{task}.predict").read_bytes() == (local_out / f"{task}.predict").read_bytes(), task
    workers = json.loads((out / "mnist_vgg.predict.json").read_text())["workers"]
    assert sum(workers.values()) == 32
    # Every model was measured on a node of this cluster (how many of the two take part is Ray's
    # best-effort spreading, not asserted).
    nodes = {node["NodeID"][:12] for node in ray.nodes()}
    assert all(where.split(" pid")[0].removeprefix("node ") in nodes for task in tasks
               for where in json.loads((out / f"{task}.predict.json").read_text())["workers"])
    # The cache is the local engine's: a local run reuses every value.
    assert main(["score", "--data", str(DATA), *CHEAP, "--out", str(out), "--task", "mnist_vgg"]) == 0
    assert json.loads((out / "mnist_vgg.predict.json").read_text())["reused_from_cache"] == 32


def test_compare_on_ray_writes_the_local_engines_files(cluster, tmp_path):
    arguments = ["compare", "--data", str(DATA), "--task", "toy_data", "--measures", "fragmentation_any",
                 "parameter_norm", "--param", "n_pairs=32", "--no-figures", "--no-progress"]
    assert main([*arguments, "--out", str(tmp_path / "local")]) == 0
    assert main([*arguments, "--out", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    for measure in ("fragmentation_any", "parameter_norm"):
        local = (tmp_path / "local" / measure / "toy_data.predict").read_bytes()
        assert (tmp_path / "ray" / measure / "toy_data.predict").read_bytes() == local, measure


def test_a_broken_model_is_isolated_as_the_local_engine_isolates_it(cluster, tmp_path):
    shutil.copytree(TOY_TASK, tmp_path / "data" / "toy_data")
    weights = tmp_path / "data" / "toy_data" / "model_3" / "weights.hdf5"
    weights.write_bytes(np.random.default_rng(0).bytes(weights.stat().st_size))
    reports = {}
    for engine in ("local", "ray"):
        assert main(["score", "--data", str(tmp_path / "data"), *CHEAP, "--out", str(tmp_path / engine),
                     "--engine", engine, "--report", str(tmp_path / f"{engine}.json")]) == 1
        reports[engine] = json.loads((tmp_path / f"{engine}.json").read_text())["toy_data"]
    assert list(reports["ray"]["failed"]) == ["model_3"]
    assert reports["ray"]["failed"] == reports["local"]["failed"]
    assert "model_3/weights.hdf5: cannot be loaded" in reports["ray"]["failed"]["model_3"]
    task = find_tasks(tmp_path / "data")[0]
    assert len(matching_results(ResultCache(cache_path(tmp_path / "ray", task, "fragmentation")).entries())) == 17


# A driver that kills itself (SIGKILL) as the outcome after its first KEPT ones arrives: exactly
# KEPT values are in the cache, whatever the speed of the machine, and the rest were in flight.
KILLED_DRIVER = textwrap.dedent('''
    import os, signal, sys
    from complexity_measure.registry import get_measure
    from pgdl_harness.ray_engine import RayEngine
    from pgdl_harness.runner import run_measures
    from pgdl_harness.tasks import find_tasks

    data, task_name, out, address, kept = sys.argv[1:6]

    class KilledDriver(RayEngine):
        def outcomes(self, *args, **options):
            for count, outcome in enumerate(super().outcomes(*args, **options)):
                if count == int(kept):
                    os.kill(os.getpid(), signal.SIGKILL)
                yield outcome

    task = find_tasks(data, [task_name])[0]
    measure = get_measure("fragmentation").with_params(n_pairs=32)
    run_measures(task, {"fragmentation": measure}, out, engine=KilledDriver(address), progress=False)
''')
KEPT = 5


def test_a_killed_driver_resumes_and_cached_models_are_not_sent_again(cluster, local_out, tmp_path):
    out = tmp_path / "ray"
    task = find_tasks(DATA, ["mnist_vgg"])[0]
    driver = subprocess.run([sys.executable, "-c", KILLED_DRIVER, str(DATA), task.name, str(out), cluster.address,
                             str(KEPT)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert driver.returncode == -signal.SIGKILL, driver.stderr[-3000:]
    assert len(matching_results(ResultCache(cache_path(out, task, "fragmentation")).entries())) == KEPT
    assert main(["score", "--data", str(DATA), "--task", "mnist_vgg", *CHEAP, "--out", str(out),
                 "--engine", "ray"]) == 0
    companion = json.loads((out / "mnist_vgg.predict.json").read_text())
    assert (companion["reused_from_cache"], companion["computed"]) == (KEPT, 32 - KEPT)
    assert sum(companion["workers"].values()) == 32 - KEPT  # cached models were not sent out
    assert (out / "mnist_vgg.predict").read_bytes() == (local_out / "mnist_vgg.predict").read_bytes()


def test_a_modified_copy_of_the_package_is_scored_as_itself_on_ray(cluster, tmp_path, toy_task):
    workers = score_modified_copy(tmp_path, toy_task, "complexity_measure", "--engine", "ray")
    assert all(where.startswith("node ") for where in workers)


def test_a_worker_that_sees_another_task_folder_stops_the_run(cluster, monkeypatch):
    import pgdl_harness.ray_engine as ray_engine
    engine = ray_engine.RayEngine()
    task = find_tasks(DATA, ["toy_data"])[0]
    engine.check_task_folder(task)  # the same folder on both sides: fine
    real = ray_engine.task_listing
    monkeypatch.setattr(ray_engine, "task_listing", lambda folder: dict(real(folder), model_ids=["model_0"]))
    with pytest.raises(ray_engine.ClusterDataError, match=r"a Ray worker sees the task folder .*toy_data "
                                                           r"differently from the driver \(18 models there, 1 here"):
        engine.check_task_folder(task)
