"""WeightWatcher's metrics as measures: its own library's values, with the definitions checked by hand."""

import numpy as np
import pytest
import tensorflow as tf
import torch

from complexity_measure.classifier import ModelRefused
from complexity_measure.registry import MEASURES, get_measure
from complexity_measure.weightwatcher_metrics import METRICS
from pgdl_harness.torch_port import torch_port


def mlp():
    keras = tf.keras
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])


def test_every_summary_metric_is_registered():
    assert {f"weightwatcher_{metric}" for metric in METRICS} <= set(MEASURES)


def test_the_norm_metrics_are_their_definitions_over_the_layers():
    model = mlp()
    matrices = [w.astype(np.float64) for w in model.get_weights() if w.ndim == 2]
    frobenius = [np.sum(w ** 2) for w in matrices]
    spectral = [np.linalg.svd(w, compute_uv=False)[0] ** 2 for w in matrices]
    value = {metric: get_measure(f"weightwatcher_{metric}")(model, None, None) for metric in METRICS}
    assert value["log_norm"] == pytest.approx(np.mean(np.log10(frobenius)), rel=1e-6)
    assert value["log_spectral_norm"] == pytest.approx(np.mean(np.log10(spectral)), rel=1e-6)
    assert value["stable_rank"] == pytest.approx(np.mean(np.divide(frobenius, spectral)), rel=1e-6)
    assert 1 < value["alpha"] < 10  # a power-law exponent fitted to each layer's spectrum


def test_the_same_network_in_pytorch_has_the_same_metrics():
    model = mlp()
    module = torch_port(model)
    for metric in METRICS:
        name = f"weightwatcher_{metric}"
        assert get_measure(name)(module, None, None) == pytest.approx(get_measure(name)(model, None, None), rel=1e-9)


def test_the_six_metrics_of_one_network_come_from_one_analysis(monkeypatch):
    import weightwatcher
    analyses = []
    analyze = weightwatcher.WeightWatcher.analyze

    def counted(self, *args, **kwargs):
        analyses.append(1)
        return analyze(self, *args, **kwargs)

    monkeypatch.setattr(weightwatcher.WeightWatcher, "analyze", counted)
    model = mlp()
    model.layers[0].kernel.assign(model.layers[0].kernel * 1.5)  # weights no other test analysed
    first = {metric: get_measure(f"weightwatcher_{metric}")(model, None, None) for metric in METRICS}
    assert len(analyses) == 1
    model.layers[1].kernel.assign(model.layers[1].kernel * 2.0)  # other weights: analysed again
    second = {metric: get_measure(f"weightwatcher_{metric}")(model, None, None) for metric in METRICS}
    assert len(analyses) == 2
    assert second["log_norm"] > first["log_norm"]
    assert get_measure("weightwatcher_log_norm")(torch_port(model), None, None) == pytest.approx(second["log_norm"])
    assert len(analyses) == 3  # a PyTorch module is another architecture: analysed by itself


def test_what_weightwatcher_cannot_analyse_is_refused():
    model = mlp()
    with pytest.raises(ModelRefused, match="^weightwatcher_alpha: weightwatcher analyses Keras models on TensorFlow "
                                           "and PyTorch modules, not a plain callable"):
        get_measure("weightwatcher_alpha")(lambda batch: model(batch).numpy(), np.zeros((2, 64), np.float32), None)
    with torch.no_grad():
        broken = torch_port(model)
        broken[0].weight.fill_(float("nan"))
    with pytest.raises(ModelRefused, match="weights are not finite"):
        get_measure("weightwatcher_log_norm")(broken, None, None)
