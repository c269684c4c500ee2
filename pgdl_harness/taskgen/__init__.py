"""The task generator: small, real PGDL-format image tasks, one complete hyperparameter grid each.

One module per part, shared by ``make-task`` and the development suite:

- ``images``: offline image sources (``mnist``, ``mnist14``, ``digits``) and the class-balanced split;
- ``families``: model families (``vgg``, ``nin``, ``allconv``, ``mlp``), their axes and layer lists;
- ``spec``: a task's checked settings, its grid of model points and the command that regenerates it;
- ``training``: the seeded training loop, its stopping rule, the saved model's accuracies;
- ``writer``: the task folder (shards, model folders, model_configs.json, README, NOTICE, log, resume);
- ``generate``: ``make_task``, which puts them together; ``cli``: its command line;
- ``dev_suite``: the development suite of tasks, as data, and the function that generates it.
"""

from .errors import TaskGenerationError
from .families import FAMILIES
from .generate import make_task
from .images import DATASETS

__all__ = ["DATASETS", "FAMILIES", "TaskGenerationError", "make_task"]
