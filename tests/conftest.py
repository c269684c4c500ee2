import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Commands run in the test process unless a test asks for workers (test_workers.py does).
os.environ["PGDL_HARNESS_WORKERS"] = "1"
# Every Ray process a test starts stays on the loopback (read when ray is imported; see
# pgdl_harness.ray_engine.LOOPBACK_ONLY), and reports no usage statistics.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

REPO = Path(__file__).resolve().parents[1]
GOLDEN_DIR = REPO / "tests" / "golden"  # vendored: see its README
DATA = REPO / "data"
TOY_TASK = DATA / "toy_data"


@pytest.fixture(scope="session")
def toy_task():
    from pgdl_harness.tasks import find_tasks
    return find_tasks(DATA, ["toy_data"])[0]


@pytest.fixture(params=["keras3", "keras2"])
def keras(request):
    """Each Keras the measures must work with: Keras 3 (tf.keras in TF 2.21) and Keras 2 (tf_keras)."""
    if request.param == "keras2":
        return pytest.importorskip("tf_keras")
    import tensorflow as tf
    return tf.keras
