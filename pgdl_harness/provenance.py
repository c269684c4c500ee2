"""What made a value: fingerprints of files and the keys under which cached values are stored.

A cached value is reused only when everything that determines it is the same: the measure and
every one of its parameters (defaults included), how many training examples it was handed, the
project's version and the measure's code, the task's training data, and the model folder's files.
The first five make a task-wide *run key*; the model folder's files a per-model *model key*.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

# The files of a PGDL model folder that determine the model (config, trained and initial weights).
MODEL_FILES = ("config.json", "weights.hdf5", "weights_init.hdf5")
_CHUNK = 1 << 20


def project_version() -> str:
    """The installed version of this project ("unknown" when it runs from an uninstalled copy)."""
    try:
        return metadata.version("pgdl-fragmentation")
    except metadata.PackageNotFoundError:
        return "unknown"


def files_fingerprint(paths: Iterable[Path], root: Path | None = None) -> str:
    """SHA-256 over each file's name (relative to ``root``), size and bytes; a missing file counts as such."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        name = str(path.relative_to(root)) if root is not None else path.name
        if not path.is_file():
            digest.update(f"{name}\0missing\0".encode())
            continue
        digest.update(f"{name}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
    return digest.hexdigest()


def model_fingerprint(model_folder: Path) -> str:
    """Fingerprint of a model folder's ``config.json`` and weight files (sizes and contents)."""
    folder = Path(model_folder)
    return files_fingerprint(folder / name for name in MODEL_FILES)


def folder_fingerprint(folder: Path, pattern: str = "**/*") -> str:
    """Fingerprint of every file under ``folder`` matching ``pattern`` (caches and debris skipped)."""
    folder = Path(folder)
    files = sorted(path for path in folder.glob(pattern)
                   if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc")
    return files_fingerprint(files, root=folder)


def key_digest(key: Mapping[str, Any]) -> str:
    """A short, stable name for a key: 16 hex digits of the SHA-256 of its canonical JSON."""
    return hashlib.sha256(canonical_json(key).encode()).hexdigest()[:16]


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces; tuples become lists. Raises TypeError on anything else."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
