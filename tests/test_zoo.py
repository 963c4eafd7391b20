"""utils.zoo: the torchvision zoo table, its Pareto front, MAC counting and latency measurement (offline, tiny models)."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.text import Text
from torch import nn

from utils import zoo


@pytest.fixture(scope="module")
def table():
    return zoo.zoo_table()


def tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def classification_enums() -> list[tuple[str, str]]:
    import torchvision.models as tvm

    return [(n, w.name) for n in tvm.list_models(module=tvm) for w in tvm.get_model_weights(n)
            if not math.isnan(w.meta["_metrics"]["ImageNet-1K"]["acc@1"])]


def test_zoo_table_has_one_row_per_classification_weight_enum(table):
    expected = classification_enums()
    assert len(table) == len(expected) > 100
    assert sorted(zip(table["model"], table["weights"])) == sorted(expected)
    assert ("vgg16", "IMAGENET1K_FEATURES") not in set(zip(table["model"], table["weights"]))  # no head, no accuracy


def test_zoo_table_columns_are_numeric_and_complete(table):
    numeric = ["acc1", "acc5", "gflops", "params_m", "file_mb", "resolution"]
    assert all(pd.api.types.is_numeric_dtype(table[c]) for c in numeric)
    assert not table.isna().any().any()
    assert table["acc1"].between(50, 100).all() and (table["acc5"] >= table["acc1"]).all()
    assert (table["gflops"] > 0).all() and (table["params_m"] > 0).all()
    assert table["acc1"].is_monotonic_decreasing
    assert "other" not in set(table["family"])  # every torchvision name maps to a family


def test_resnet50_row_matches_torchvision_metadata(table):
    row = table[(table["model"] == "resnet50") & (table["weights"] == "IMAGENET1K_V2")].iloc[0]
    assert row["acc1"] == pytest.approx(80.858) and row["gflops"] == pytest.approx(4.089)
    assert row["params_m"] == pytest.approx(25.557032) and row["resolution"] == 224 and row["family"] == "ResNet"


def test_model_family_prefers_the_most_specific_prefix():
    assert zoo.model_family("efficientnet_v2_s") == "EfficientNetV2"
    assert zoo.model_family("efficientnet_b0") == "EfficientNet"
    assert zoo.model_family("resnext50_32x4d") == "ResNeXt"
    assert zoo.model_family("maxvit_t") == "MaxViT"
    assert zoo.model_family("no_such_net") == "other"


def assert_is_pareto_front(df, front, cost="gflops", score="acc1"):
    c, s = front[cost].to_numpy(), front[score].to_numpy()
    for i in range(len(front)):  # no front point is dominated by another point of the table
        dominated = (df[cost] <= c[i]) & (df[score] >= s[i]) & ((df[cost] < c[i]) | (df[score] > s[i]))
        assert not dominated.any(), front.iloc[i]
    for _, row in df.drop(index=front.index).iterrows():  # every other point is (weakly) dominated by a front point
        assert ((c <= row[cost]) & (s >= row[score])).any(), row
    assert np.all(np.diff(c) >= 0) and np.all(np.diff(s) > 0)


def test_pareto_front_of_the_zoo_is_non_dominated(table):
    front = zoo.pareto_front(table)
    assert 3 <= len(front) < len(table)
    assert_is_pareto_front(table, front)
    assert table["acc1"].idxmax() in front.index and table["gflops"].idxmin() in front.index


@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_property_on_random_points_with_ties(seed):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"gflops": rng.integers(1, 6, 40).astype(float), "acc1": rng.integers(60, 70, 40).astype(float)})
    assert_is_pareto_front(df, zoo.pareto_front(df))


def test_pareto_front_rejects_missing_columns_and_nans():
    with pytest.raises(ValueError, match="needs columns"):
        zoo.pareto_front(pd.DataFrame({"gflops": [1.0]}))
    with pytest.raises(ValueError, match="NaN"):
        zoo.pareto_front(pd.DataFrame({"gflops": [1.0, 2.0], "acc1": [70.0, float("nan")]}))


def test_plot_zoo_draws_every_family_and_the_front(table):
    import matplotlib

    matplotlib.use("Agg")
    fig = zoo.plot_zoo(table, zoo.pareto_front(table), label_front=False)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(table["family"]) | {"Pareto front"} == set(labels)
    assert ax.get_xscale() == "log"
    renderer = fig.canvas.get_renderer()
    assert not ax.get_legend().get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))  # legend outside


def test_front_labels_overlap_neither_each_other_nor_any_marker_nor_the_front(table):
    import matplotlib
    import matplotlib.pyplot as plt

    matplotlib.use("Agg")
    front = zoo.pareto_front(table)
    fig = zoo.plot_zoo(table, front)
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in ax.texts if t.get_text() in set(front["model"])]
    assert sorted(t.get_text() for t in texts) == sorted(front["model"])  # every front point is labelled
    boxes = [Text.get_window_extent(t, renderer) for t in texts]  # the text itself, without its leader line
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    circles = zoo._marker_circles(ax)
    assert len(circles) == len(table) + len(front)
    assert not any(zoo._hits_a_marker(bb, circles) for bb in boxes)
    axes_box = ax.get_window_extent(renderer)
    assert all(axes_box.x0 <= bb.x0 and bb.x1 <= axes_box.x1 and bb.y1 <= axes_box.y1 for bb in boxes)
    plt.close(fig)


def test_label_placement_avoids_a_crowded_spot():
    import matplotlib
    import matplotlib.pyplot as plt

    matplotlib.use("Agg")
    df = pd.DataFrame({"model": ["a_long_name", "b_long_name", "c_long_name"], "family": ["X"] * 3,
                       "gflops": [1.0, 1.05, 1.1], "acc1": [70.0, 70.05, 70.1], "params_m": [1.0] * 3})
    fig = zoo.plot_zoo(df, zoo.pareto_front(df))  # three points almost on top of each other
    fig.canvas.draw()
    boxes = [Text.get_window_extent(t, fig.canvas.get_renderer()) for t in fig.axes[0].texts]
    assert len(boxes) == 3 and not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(fig)


def test_count_gmacs_counts_multiply_accumulates():
    conv = nn.Conv2d(3, 4, 3, bias=False)  # 6x6 outputs x 4 channels x (3x3x3) MACs each on an 8x8 input
    assert zoo.count_gmacs(conv, 8) == pytest.approx(6 * 6 * 4 * 27 / 1e9)
    model = tiny_cnn().train()
    zoo.count_gmacs(model, (8, 8))
    assert model.training  # mode restored


def test_measure_latency_returns_positive_consistent_numbers():
    model = tiny_cnn().train()
    lat = zoo.measure_latency(model, input_size=16, batch_size=4, min_run_time=0.01, warmup=1)
    assert lat.ms_per_batch > 0 and lat.ms_iqr >= 0 and lat.runs >= 1
    assert lat.images_per_s == pytest.approx(4 / (lat.ms_per_batch / 1e3))
    assert (lat.batch_size, lat.input_size, lat.device, lat.threads) == (4, 16, "cpu", torch.get_num_threads())
    assert model.training  # the caller's mode is restored
    assert zoo.measure_latency(model, (12, 20), min_run_time=0.01, warmup=0).input_size == (12, 20)


def test_measure_latency_uses_torch_benchmark_timer(monkeypatch):
    from torch.utils import benchmark

    calls = []
    real = benchmark.Timer.blocked_autorange

    def spy(self, *args, **kwargs):
        calls.append((self._task_spec.num_threads, kwargs.get("min_run_time")))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(benchmark.Timer, "blocked_autorange", spy)
    lat = zoo.measure_latency(tiny_cnn(), input_size=8, min_run_time=0.01, num_threads=1)
    assert calls[0] == (1, 0.01) and all(t == 1 for t, _ in calls) and lat.threads == 1  # more calls: min_runs


class Sleeper(nn.Module):
    """A model whose forward pass takes a known time, so the measured latency can be checked against it."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        import time

        time.sleep(self.seconds)
        return x.mean() + self.weight


def test_measure_latency_measures_the_forward_pass_time():
    fast = zoo.measure_latency(Sleeper(0.002), input_size=4, min_run_time=0.05, warmup=0)
    slow = zoo.measure_latency(Sleeper(0.02), input_size=4, min_run_time=0.1, warmup=0)
    # sleep() never returns early; a busy machine may add a few ms. A time per block instead of per pass (the fast
    # model runs in blocks of 10 or more) or the total time would land far above these bounds.
    assert 2.0 <= fast.ms_per_batch < 15.0 and fast.runs >= 10
    assert 20.0 <= slow.ms_per_batch < 45.0 and slow.runs >= 5  # min_runs=5: timed again when 0.1 s held fewer


def test_measure_latency_times_a_slow_model_at_least_min_runs_times():
    lat = zoo.measure_latency(Sleeper(0.03), input_size=4, min_run_time=0.01, warmup=0, min_runs=4)
    assert lat.runs >= 4 and 30.0 <= lat.ms_per_batch < 60.0


def test_measure_latency_runs_in_inference_mode_and_eval_mode():
    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            seen.append((torch.is_inference_mode_enabled(), self.training))
            return self.lin(x.mean((2, 3)))

    zoo.measure_latency(Probe().train(), input_size=4, min_run_time=0.01, warmup=2)
    assert len(seen) >= 4 and all(inf and not training for inf, training in seen)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 2.0}, "batch_size"), ({"min_run_time": 0}, "min_run_time"),
    ({"min_run_time": float("nan")}, "min_run_time"), ({"warmup": -1}, "warmup"), ({"num_threads": 0}, "num_threads"), ({"min_runs": 0}, "min_runs"),
    ({"input_size": 0}, "input_size"), ({"input_size": (3,)}, "input_size"),
    ({"input_size": "224"}, "input_size"), ({"input_size": (1, 3, 8, 8)}, "input_size"),
])
def test_measure_latency_rejects_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        zoo.measure_latency(tiny_cnn(), **{"input_size": 16, **kwargs})


def test_measure_latency_rejects_a_non_integer_batch_size_as_a_type_error():
    with pytest.raises(TypeError, match=r"batch_size must be an integer, got 2\.0 \(float\)"):
        zoo.measure_latency(tiny_cnn(), input_size=16, batch_size=2.0)


def test_measure_latency_explains_an_input_the_model_cannot_take():
    with pytest.raises(ValueError, match=r"does not accept input of shape \(1, 1, 16, 16\)"):
        zoo.measure_latency(tiny_cnn(), input_size=(1, 16, 16))  # the first conv wants 3 channels
    with pytest.raises(ValueError, match="does not accept input"):
        zoo.measure_latency(nn.Conv2d(3, 4, 5), input_size=2)  # smaller than the kernel
    with pytest.raises(TypeError, match="nn.Module"):
        zoo.measure_latency(lambda x: x, input_size=8)


def test_latency_table_has_one_row_per_model_and_setting():
    df = zoo.latency_table({"a": tiny_cnn(), "b": tiny_cnn()}, settings=((8, 1), (16, 2)), min_run_time=0.01, warmup=0)
    assert list(df["model"]) == ["a", "a", "b", "b"] and list(df["batch_size"]) == [1, 2, 1, 2]
    assert (df["ms_per_batch"] > 0).all() and (df["runs"] >= 1).all()


def test_zoo_helpers_need_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("zoo_table tried to use the network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr("socket.create_connection", refuse)
    assert len(zoo.zoo_table()) > 100
