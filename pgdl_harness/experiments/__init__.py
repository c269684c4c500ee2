"""Experiments that reproduce Mouton et al.'s observations on fragmentation during training.

Each is one command (``python -m pgdl_harness.experiments NAME`` or ``make experiment NAME=...``)
writing a CSV and PNG figures under ``results/experiments/NAME/``:

- ``through_training``: fragmentation per epoch beside training and validation error;
- ``double_descent``: test error and fragmentation against width, with the interpolation threshold;
- ``weight_norms``: fragmentation against the parameter norm, reusing the other two's outputs.
"""
