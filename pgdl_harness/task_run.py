"""What a run of measures did on one task: its values, failures and cache use, by measure label.

Its own module, without TensorFlow: the reports, comparisons and output files read a ``TaskRun``
without loading a model (``runner.run_measures`` makes them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .cache import ModelResult
from .scoring import EXCEEDED
from .tasks import Task


@dataclass(kw_only=True)
class TaskRun:
    """What ``run_measures`` did on one task, by measure label (made with keywords only: nine fields
    are too many to pass by position).

    ``results``: values by model id (the models that have one, in the task's order);
    ``failures``: one-line reasons by model id (``cached_failures``: how many of them were read from
    the cache rather than met in this run, their reasons ending in ``runner.CACHED_MARK``;
    ``retry_failed`` measures those models again); ``exceeded``: models left unmeasured when the time
    budget ran out; ``reused``/``recomputed``: how many values came from the cache, and how many
    cached values were not reused because their key differed; ``keys``: each label's run key;
    ``workers``: how many models each engine worker measured in this run.
    """

    task: Task
    results: dict[str, dict[str, ModelResult]]
    failures: dict[str, dict[str, str]] = field(default_factory=dict)
    exceeded: list[str] = field(default_factory=list)
    reused: dict[str, int] = field(default_factory=dict)
    recomputed: dict[str, int] = field(default_factory=dict)
    keys: dict[str, dict] = field(default_factory=dict)
    workers: dict[str, int] = field(default_factory=dict)  # where models were measured -> how many
    cached_failures: dict[str, int] = field(default_factory=dict)

    def complete(self, label: str) -> bool:
        """Every model of the task has a value of ``label`` (none failed, none left unmeasured)."""
        return len(self.results.get(label, {})) == len(self.task.model_ids)

    def predictions(self, label: str) -> dict[str, float | str]:
        """``label``'s values by model id, and the kit's ``"EXCEEDED"`` for the models the time budget
        left unmeasured: what the kit's ``.predict`` file holds and what its scorer reads."""
        values: dict[str, float | str] = {model_id: result.value for model_id, result in
                                          self.results.get(label, {}).items()}
        values.update(dict.fromkeys(self.exceeded, EXCEEDED))
        return values
