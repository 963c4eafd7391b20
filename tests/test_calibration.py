"""utils.calibration: known answers for ECE, the reliability curve and temperature scaling, and clear errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils import calibration


def _synthetic(n: int = 20000, classes: int = 4, true_t: float = 1.0, seed: int = 0):
    """Logits, and labels drawn from softmax(logits / true_t): calibrated at temperature true_t by construction."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=g) * 3
    labels = torch.multinomial((logits / true_t).softmax(-1), 1, generator=g).squeeze(1)
    return logits, labels


def test_ece_by_hand():
    probs = torch.tensor([[0.9, 0.1]] * 10, dtype=torch.float64)
    assert calibration.expected_calibration_error(probs, [0] * 9 + [1]) == pytest.approx(0.0, abs=1e-12)  # 90 % right
    assert calibration.expected_calibration_error(probs, [0] * 10) == pytest.approx(0.1)  # under-confident by 0.1
    assert calibration.expected_calibration_error(probs, [1] * 10) == pytest.approx(0.9)  # always wrong at 0.9


def test_a_calibrated_predictor_has_near_zero_ece_and_an_over_confident_one_does_not():
    logits, labels = _synthetic()
    calibrated = calibration.expected_calibration_error(logits.softmax(-1), labels)
    over = calibration.expected_calibration_error((logits * 3).softmax(-1), labels)
    assert calibrated < 0.02  # what is left is sampling noise of 20,000 examples in 15 bins
    assert over > 0.1


def test_reliability_curve_counts_every_example_once_and_bins_by_confidence():
    logits, labels = _synthetic(n=2000)
    curve = calibration.reliability_curve(logits.softmax(-1), labels, n_bins=10)
    assert len(curve) == 10 and curve["count"].sum() == 2000
    full = curve[curve["count"] > 0]
    assert ((full["confidence"] > full["low"]) & (full["confidence"] <= full["high"] + 1e-12)).all()
    assert curve.loc[curve["count"] == 0, "accuracy"].isna().all()


def test_ece_equals_the_weighted_gap_of_the_curve():
    logits, labels = _synthetic(n=3000, seed=1)
    p = (logits * 2).softmax(-1)
    curve = calibration.reliability_curve(p, labels, 15)
    full = curve[curve["count"] > 0]
    by_hand = float((full["count"] / 3000 * (full["accuracy"] - full["confidence"]).abs()).sum())
    assert calibration.expected_calibration_error(p, labels, 15) == pytest.approx(by_hand)


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.0])
def test_fit_temperature_recovers_a_known_temperature(true_t):
    logits, labels = _synthetic(true_t=true_t)
    assert calibration.fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.06)


def test_temperature_scaling_keeps_predictions_and_lowers_nll_and_ece():
    logits, labels = _synthetic(n=40000, true_t=2.5, seed=2)
    t = calibration.fit_temperature(logits[:20000], labels[:20000])  # fitted on one half ("validation")
    test_z, test_y = logits[20000:], labels[20000:]
    scaled = calibration.scale_logits(test_z, t)
    assert torch.equal(scaled.argmax(1), test_z.argmax(1))
    assert calibration.nll(test_z, test_y, t) < calibration.nll(test_z, test_y)
    ece = lambda z: calibration.expected_calibration_error(z.softmax(-1), test_y)  # noqa: E731
    assert ece(scaled) < 0.02 < ece(test_z)


def test_nll_matches_cross_entropy_and_accepts_arrays():
    logits, labels = _synthetic(n=100)
    expect = torch.nn.functional.cross_entropy(logits / 2, labels).item()
    assert calibration.nll(logits.numpy(), labels.numpy(), 2.0) == pytest.approx(expect, rel=1e-6)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: calibration.expected_calibration_error(torch.randn(5, 3), [0, 1, 2, 0, 1]), ValueError, "softmax"),
    (lambda: calibration.expected_calibration_error(torch.full((3, 2), 0.5), [0, 1]), ValueError, "same length"),
    (lambda: calibration.expected_calibration_error(torch.full((2, 2), 0.5), [0, 2]), ValueError, "labels"),
    (lambda: calibration.expected_calibration_error(torch.full((2, 2), 0.5), [0, 1], n_bins=0), ValueError, "n_bins"),
    (lambda: calibration.reliability_curve(torch.rand(4), [0, 1, 0, 1]), ValueError, "2-D"),
    (lambda: calibration.fit_temperature([[1.0, 2.0]], [0]), TypeError, "logits"),
    (lambda: calibration.fit_temperature(torch.tensor([[1.0, math.nan]]), [0]), ValueError, "NaN"),
    (lambda: calibration.fit_temperature(torch.randn(3, 2), [0, 1, 1], bounds=(2.0, 1.0)), ValueError, "bounds"),
    (lambda: calibration.scale_logits(torch.randn(3, 2), 0.0), ValueError, "temperature"),
    (lambda: calibration.nll(torch.randn(3, 1), [0, 0, 0]), ValueError, "column"),
    (lambda: calibration.plot_reliability({"a": np.zeros(3)}), TypeError, "reliability_curve"),
])
def test_bad_inputs_are_refused_with_a_message_that_says_what_to_do(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_plot_reliability_draws_one_line_per_curve_and_the_diagonal():
    import matplotlib

    matplotlib.use("Agg")
    logits, labels = _synthetic(n=500)
    curves = {n: calibration.reliability_curve((logits * s).softmax(-1), labels) for n, s in (("a", 1), ("b", 3))}
    ax = calibration.plot_reliability(curves)
    assert len(ax.get_lines()) == 3
    import matplotlib.pyplot as plt

    plt.close("all")
