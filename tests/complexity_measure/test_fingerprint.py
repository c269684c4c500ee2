"""``registry.code_fingerprint``: the key that keeps a value from being reused once the code changed."""

import shutil
import types

from complexity_measure import registry

from ..conftest import REPO


def fingerprint_of(folder):
    """``code_fingerprint`` run as the copy of registry.py in ``folder`` would run it."""
    function = registry.code_fingerprint
    return types.FunctionType(function.__code__, {**vars(registry), "__file__": str(folder / "registry.py")})()


def test_the_fingerprint_changes_with_any_source_file_of_the_package(tmp_path):
    copy = tmp_path / "complexity_measure"
    shutil.copytree(REPO / "complexity_measure", copy, ignore=shutil.ignore_patterns("__pycache__"))
    original = fingerprint_of(copy)
    assert original == registry.code_fingerprint()  # the same files, the same fingerprint

    source = (copy / "registry.py").read_text()
    (copy / "registry.py").write_text(source + "\n# any changed source file changes every measure's key\n")
    changed = fingerprint_of(copy)
    assert changed != original
    (copy / "registry.py").write_text(source)
    assert fingerprint_of(copy) == original

    (copy / "new_measure.py").write_text("def measure(model, inputs, labels):\n    return 0.0\n")
    assert fingerprint_of(copy) not in (original, changed)
    (copy / "new_measure.py").unlink()
    (copy / "notes.txt").write_text("not source")
    assert fingerprint_of(copy) == original
