"""Complexity measures for trained classifiers: pure functions of a model and its training data.

``complexity.complexity(model, dataset)`` is the PGDL drop-in; ``registry.MEASURES`` names every
measure the harness can run; ``fragmentation.fragmentation_score`` is the main measure. A model is
a Keras model (Keras 2, or Keras 3 on TensorFlow, JAX or PyTorch), a ``torch.nn.Module`` or any
callable ``f(inputs) -> logits``: ``classifier.as_classifier`` is the one seam between the
measures and the frameworks, and a framework is imported only when a model of it is passed.
"""
