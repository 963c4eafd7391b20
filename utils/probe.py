"""A linear probe trained to convergence: L2 logistic regression (L-BFGS) on frozen features, strength chosen on validation.

This is the fair "feature extraction" baseline. A probe trained with a few epochs of SGD/AdamW is usually still
improving when it stops, so comparing it with fine-tuning compares an unfinished run with a finished one.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .checks import check_features, check_int, check_labels, check_number, check_same_length

__all__ = ["Probe", "linear_probe", "CS"]

CS = tuple(float(c) for c in np.logspace(-5, 1, 13))  # inverse L2 strengths, 1e-5 ... 10: few labels need strong
# regularisation (validation often picks C <= 1e-3 with standardised features and a few hundred examples)


@dataclass
class Probe:
    """The fitted pipeline (standardise -> logistic regression), the chosen C and each C's validation accuracy."""

    model: object
    c: float
    val_scores: dict[float, float]

    def _x(self, x, name: str = "x") -> np.ndarray:
        x = check_features(x, name).numpy()
        if x.shape[1] != self.model.n_features_in_:
            raise ValueError(f"{name} has {x.shape[1]} features but the probe was fitted on {self.model.n_features_in_}; "
                             "use features from the same model and layer.")
        return x

    def score(self, x, y) -> float:
        """Accuracy on features `x` with labels `y`."""
        y = check_labels(y, "y")
        check_same_length(x, y, "x", "y")
        return float(self.model.score(self._x(x), y.numpy()))

    def predict_proba(self, x) -> np.ndarray:
        return self.model.predict_proba(self._x(x))


def linear_probe(train_x, train_y, val_x, val_y, cs: Sequence[float] = CS, max_iter: int = 5000,
                 standardize: bool = True) -> Probe:
    """Fit one probe per C in `cs` on the training features, keep the best on validation (ties: the smaller C).

    `standardize=False` fits on the raw features: with a handful of labelled examples per class the per-feature
    means and scales estimated from them are noisy, and standardising with them can cost accuracy.
    """
    tx, vx = check_features(train_x, "train_x").numpy(), check_features(val_x, "val_x").numpy()
    ty, vy = check_labels(train_y, "train_y").numpy(), check_labels(val_y, "val_y").numpy()
    check_same_length(tx, ty, "train_x", "train_y")
    check_same_length(vx, vy, "val_x", "val_y")
    if tx.shape[1] != vx.shape[1]:
        raise ValueError(f"Features must be (N, D) with the same D for train and val; got {tx.shape} and {vx.shape}.")
    if len(np.unique(ty)) < 2:
        raise ValueError("train_y holds a single class; a probe needs examples of at least two classes.")
    if isinstance(cs, (str, bytes)) or not hasattr(cs, "__iter__") or not list(cs):
        raise ValueError("cs must list at least one regularisation strength, e.g. (0.01, 0.1, 1.0).")
    cs = [check_number(c, "each of cs", 0, None, lo_open=True) for c in cs]
    max_iter = check_int(max_iter, "max_iter", 1)
    if not isinstance(standardize, bool):
        raise TypeError(f"standardize must be True or False, got {standardize!r}.")
    from sklearn.linear_model import LogisticRegression  # imported after the checks: a bad call fails at once
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from threadpoolctl import threadpool_limits

    scaler = StandardScaler().fit(tx) if standardize else None
    ftx, fvx = (scaler.transform(tx), scaler.transform(vx)) if scaler else (tx, vx)
    # The regularisation path, strongest first, each fit warm-started from the last (as LogisticRegressionCV does):
    # the same optima to the solver's tolerance in a fraction of the L-BFGS iterations.
    lr = LogisticRegression(max_iter=max_iter, warm_start=True)
    scores, best, best_c = {}, None, None
    # One BLAS thread: these products are small, and a multi-threaded OpenBLAS pool competing with torch's OpenMP
    # threads for the same cores made each fit about 8x slower at 2 threads (measured: bench/bench_probe.py).
    with threadpool_limits(limits=1, user_api="blas"):
        for c in sorted(cs):
            lr.set_params(C=c).fit(ftx, ty)
            scores[c] = float(lr.score(fvx, vy))
            if best is None or scores[c] > scores[best_c]:
                best, best_c = copy.deepcopy(lr), c
    steps = [scaler] if scaler else []
    return Probe(make_pipeline(*steps, best), best_c, scores)
