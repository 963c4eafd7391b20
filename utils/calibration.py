"""Is a model's confidence worth believing? Reliability curves, expected calibration error and temperature scaling.

A classifier is *calibrated* when, among the examples it labels with confidence p, a fraction p is right. The
reliability curve bins the test examples by the top-class probability and plots each bin's accuracy against its mean
confidence; the expected calibration error (ECE) is the gap between the two, averaged over bins weighted by their
size (Guo et al., 2017). Temperature scaling divides every logit by one number T fitted on the *validation* set
(minimum negative log-likelihood): T > 1 softens over-confident probabilities, T < 1 sharpens under-confident ones,
and the predicted class never changes, so accuracy is untouched.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .checks import check_int, check_labels, check_number, check_same_length

__all__ = ["expected_calibration_error", "reliability_curve", "fit_temperature", "scale_logits", "nll",
           "plot_reliability"]


def _matrix(x, name: str) -> torch.Tensor:
    """A finite float (N, C) tensor with N >= 1 and C >= 2, from a tensor or an array."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a numeric (N, C) array, got dtype {x.dtype}.")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a float tensor or array (N, C): one row per example, one column per class; "
                        f"got {type(x).__name__}.")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (examples, classes); got shape {tuple(x.shape)}. One example? Use x[None].")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows); pass the outputs for at least one example.")
    if x.shape[1] < 2:
        raise ValueError(f"{name} has {x.shape[1]} column; a classifier's output has one column per class (at least 2). "
                         "A single sigmoid output p? Stack it as torch.stack([1 - p, p], 1).")
    x = x.detach().cpu().double()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf ({int((~torch.isfinite(x)).sum())} values); check the model's "
                         "outputs before measuring calibration.")
    return x


def _probs(probs) -> torch.Tensor:
    p = _matrix(probs, "probs")
    if float(p.min()) < -1e-6 or float(p.max()) > 1 + 1e-6 or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-3):
        raise ValueError("probs must be probabilities (each row in [0, 1], summing to 1); these rows do not. Logits? "
                         "Pass logits.softmax(-1).")
    return p


def _labels_for(labels, n: int, n_classes: int) -> torch.Tensor:
    y = check_labels(labels, "labels", n_classes)
    check_same_length(torch.empty(n), y, "the model outputs", "labels")
    return y


def reliability_curve(probs, labels, n_bins: int = 15):
    """Per confidence bin (equal width over [0, 1]): the examples it holds, their mean confidence and their accuracy.

    Returns a DataFrame with columns `low`, `high`, `count`, `confidence`, `accuracy` (NaN for empty bins).
    """
    import pandas as pd

    p = _probs(probs)
    y = _labels_for(labels, len(p), p.shape[1])
    n_bins = check_int(n_bins, "n_bins", 1, hint="(equal-width confidence bins; 10 or 15 are usual)")
    conf, pred = p.max(1)
    right = (pred == y).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    # bin b holds confidences in (edge_b, edge_b+1]; a confidence of exactly 0 cannot occur for a top class
    which = torch.clamp(torch.bucketize(conf, edges, right=False) - 1, 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        m = which == b
        k = int(m.sum())
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": k,
                     "confidence": float(conf[m].mean()) if k else math.nan,
                     "accuracy": float(right[m].mean()) if k else math.nan})
    return pd.DataFrame(rows)


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """ECE: the size-weighted mean gap |accuracy - confidence| over equal-width confidence bins (0 = calibrated)."""
    curve = reliability_curve(probs, labels, n_bins)
    full = curve[curve["count"] > 0]
    return float((full["count"] * (full["accuracy"] - full["confidence"]).abs()).sum() / full["count"].sum())


def nll(logits, labels, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (cross-entropy) of the labels under softmax(logits / temperature)."""
    z = _matrix(logits, "logits")
    y = _labels_for(labels, len(z), z.shape[1])
    t = check_number(temperature, "temperature", 0, None, lo_open=True, hint="(1 = the model as trained)")
    return float(torch.nn.functional.cross_entropy(z / t, y))


def fit_temperature(logits, labels, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) on held-out (validation) logits and labels."""
    from scipy.optimize import minimize_scalar

    z = _matrix(logits, "logits")
    y = _labels_for(labels, len(z), z.shape[1])
    if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2):
        raise TypeError(f"bounds must be a pair (lowest, highest temperature), e.g. (0.05, 20.0); got {bounds!r}.")
    lo = check_number(bounds[0], "bounds[0]", 0, None, lo_open=True)
    hi = check_number(bounds[1], "bounds[1]", lo, None, lo_open=True, hint="(must exceed bounds[0])")

    def loss(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(z / math.exp(log_t), y))

    # the NLL is convex in 1/T, so a bounded scalar search on log T finds the optimum to the tolerance
    res = minimize_scalar(loss, bounds=(math.log(lo), math.log(hi)), method="bounded", options={"xatol": 1e-6})
    return float(math.exp(res.x))


def scale_logits(logits, temperature: float) -> torch.Tensor:
    """logits / temperature, as a float tensor (softmax of it gives the temperature-scaled probabilities)."""
    z = _matrix(logits, "logits").float()
    t = check_number(temperature, "temperature", 0, None, lo_open=True, hint="(from utils.calibration.fit_temperature)")
    return z / t


def plot_reliability(curves: dict, ax=None, title: str = ""):
    """Reliability diagram: accuracy against mean confidence per bin for each named curve, with the diagonal."""
    import matplotlib.pyplot as plt
    import pandas as pd

    if not isinstance(curves, dict) or not curves:
        raise TypeError("curves must be a non-empty dict {name: reliability_curve(...) DataFrame}, e.g. "
                        "{'before': reliability_curve(p, y)}.")
    for name, c in curves.items():
        if not isinstance(c, pd.DataFrame) or not {"confidence", "accuracy", "count"} <= set(c.columns):
            raise TypeError(f"curves[{name!r}] must be the DataFrame that utils.calibration.reliability_curve returns.")
    ax = ax or plt.subplots(figsize=(4.2, 4.2))[1]
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1, label="calibrated")
    for i, (name, c) in enumerate(curves.items()):
        full = c[c["count"] > 0]
        size = 12 + 180 * full["count"] / full["count"].max()
        ax.plot(full["confidence"], full["accuracy"], "-", color=f"C{i}", lw=1, label=str(name))
        ax.scatter(full["confidence"], full["accuracy"], s=size, color=f"C{i}", alpha=0.6, zorder=3)
    ax.set(xlim=(0, 1.05), ylim=(0, 1.05), xlabel="mean confidence in bin", ylabel="accuracy in bin",
           title=title or "reliability (dot area: examples in bin)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return ax
