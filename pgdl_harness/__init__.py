"""The PGDL harness: run complexity measures over PGDL task folders and score them.

Data flows one way: task folder -> (model, training data) -> measure value -> ``.predict`` file
-> scores (conditional mutual information, Kendall's tau, granulated Kendall) -> report.
"""
