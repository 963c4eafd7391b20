"""utils.linear_probe: C chosen on validation; standardize=False fits the raw features."""
from __future__ import annotations

import numpy as np
import pytest

import utils


def _blobs(n: int, seed: int, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, 5)) + 2.0 * y[:, None]
    return (x * scale).astype(np.float32), y


def test_raw_and_standardised_probes_differ_only_in_the_scaler():
    (tx, ty), (vx, vy) = _blobs(40, 0), _blobs(40, 1)
    raw = utils.linear_probe(tx, ty, vx, vy, cs=(1.0,), standardize=False)
    std = utils.linear_probe(tx, ty, vx, vy, cs=(1.0,))
    assert [type(s).__name__ for s in raw.model] == ["LogisticRegression"]
    assert [type(s).__name__ for s in std.model] == ["StandardScaler", "LogisticRegression"]
    assert raw.score(vx, vy) > 0.9 and std.score(vx, vy) > 0.9


def test_raw_probe_depends_on_feature_scale_and_standardised_does_not():
    (tx, ty), (vx, vy) = _blobs(40, 0), _blobs(40, 1)
    (sx, _), (svx, _) = _blobs(40, 0, scale=1e-3), _blobs(40, 1, scale=1e-3)
    raw, raw_small = (utils.linear_probe(a, ty, b, vy, cs=(0.01,), standardize=False) for a, b in ((tx, vx), (sx, svx)))
    std, std_small = (utils.linear_probe(a, ty, b, vy, cs=(0.01,)) for a, b in ((tx, vx), (sx, svx)))
    assert np.allclose(std.predict_proba(vx), std_small.predict_proba(svx), atol=1e-4)
    assert not np.allclose(raw.predict_proba(vx), raw_small.predict_proba(svx), atol=1e-2)  # strong L2 on tiny features


def test_standardize_must_be_a_bool():
    (tx, ty), (vx, vy) = _blobs(10, 0), _blobs(10, 1)
    with pytest.raises(TypeError, match="standardize"):
        utils.linear_probe(tx, ty, vx, vy, standardize="no")
