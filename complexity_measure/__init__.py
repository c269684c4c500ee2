"""Complexity measures for trained classifiers: pure functions of a Keras model and its training data.

``complexity.complexity(model, dataset)`` is the PGDL drop-in; ``registry.MEASURES`` names every
measure the harness can run; ``fragmentation.fragmentation_score`` is the main measure.
"""
