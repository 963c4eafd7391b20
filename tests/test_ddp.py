"""scripts/ddp_finetune.py (+ utils.distributed): 2 CPU processes (torchrun, gloo) reach the same weights as 1 process,
and resume is exact.

The equivalence runs use `--model tiny`, a small SmallCNN without BatchNorm (pooled to 4 x 4, so that it learns).
With BatchNorm each process would normalise its 8 images with their own mean and variance, so 2 x 8 is *not* the
same computation as 1 x 16 (SyncBatchNorm would fix that, but PyTorch only implements it on CUDA). Without it, DDP's
gradient all-reduce averages two 8-image means into exactly the 16-image mean, and the only differences left are
float rounding (observed ~1e-7 after 12 AdamW steps).
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import utils
from utils import distributed as ddp


script = ddp.load_script()  # the command-line script as a module, for parse_args / build_model

COMMON = ["--model", "tiny", "--image-size", "16", "--train-size", "96", "--val-size", "0", "--epochs", "2", "--lr", "0.01",
          "--device", "cpu"]  # CPU processes and gloo even where a GPU exists
ATOL = 1e-5  # float32 rounding of a different summation order, compounded over 12 steps


def _launch(out: Path, *args: str, nproc: int = 1, launcher: str = "torchrun") -> dict:
    """Run the script as its own process(es), as a reader would (one thread each), and return its metrics."""
    return ddp.launch([*COMMON, "--out", str(out), *args], nproc=nproc, launcher=launcher, threads=1, timeout=120)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / ddp.WEIGHTS))


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Six short runs (about 40 s in all): one process, two (torchrun and accelerate), accumulation, interrupt + resume."""
    tmp = tmp_path_factory.mktemp("ddp")
    out = {name: tmp / name for name in ("single16", "ddp2x8", "accum8x2", "resumed", "accelerate")}
    _launch(out["single16"], "--batch-size", "16")
    _launch(out["ddp2x8"], "--batch-size", "8", nproc=2)
    _launch(out["accum8x2"], "--batch-size", "8", "--accum-steps", "2")
    stopped = _launch(out["resumed"], "--batch-size", "8", "--stop-after", "7", nproc=2)  # mid-way through epoch 2
    assert stopped["steps"] == 7 and stopped["stopped_early"]
    _launch(out["resumed"], "--batch-size", "8", "--resume", nproc=2)
    _launch(out["accelerate"], "--batch-size", "8", nproc=2, launcher="accelerate")
    return out


def test_two_processes_match_one_process_with_the_same_effective_batch(runs):
    m1, m2 = (json.loads((runs[k] / ddp.METRICS).read_text()) for k in ("single16", "ddp2x8"))
    assert m2["config"]["world_size"] == 2 and m2["config"]["effective_batch"] == m1["config"]["effective_batch"] == 16
    assert m1["steps"] == m2["steps"] == 12
    assert _max_diff(_weights(runs["single16"]), _weights(runs["ddp2x8"])) < ATOL
    assert m1["losses"] == pytest.approx(m2["losses"], abs=1e-5)
    assert m1["losses"][0] != m1["losses"][-1]  # it did train


def test_accelerate_launch_runs_the_same_ddp_job(runs):
    metrics = json.loads((runs["accelerate"] / ddp.METRICS).read_text())
    assert metrics["config"]["world_size"] == 2
    a, b = _weights(runs["accelerate"]), _weights(runs["ddp2x8"])
    assert all(torch.equal(a[k], b[k]) for k in a)  # same processes, same data, same kernels: bitwise equal


def test_launch_command_and_failures_are_clear(tmp_path):
    assert ddp.SCRIPT == Path(__file__).resolve().parents[1] / "scripts" / "ddp_finetune.py" and ddp.SCRIPT.is_file()
    assert ddp.launch_command(["--epochs", "1"]) == [sys.executable, str(ddp.SCRIPT), "--epochs", "1"]
    cmd = ddp.launch_command(["--epochs", "1"], nproc=2)
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--nproc_per_node", "2"] and "127.0.0.1" in cmd
    assert cmd[-3:] == [str(ddp.SCRIPT), "--epochs", "1"]
    acc = ddp.launch_command([], nproc=2, launcher="accelerate")
    assert acc[1:3] == ["-m", "accelerate.commands.launch"] and acc[acc.index("--num_processes") + 1] == "2"
    assert acc[-1] == str(ddp.SCRIPT)
    with pytest.raises(ValueError, match="launcher"):
        ddp.launch_command([], nproc=2, launcher="mpirun")
    with pytest.raises(FileNotFoundError, match="scripts/ddp_finetune.py"):
        ddp.launch_command([], script=tmp_path / "missing.py")
    with pytest.raises(FileNotFoundError, match="scripts/ddp_finetune.py"):
        ddp.load_script(tmp_path / "missing.py")
    assert ddp.load_script().__file__ == str(ddp.SCRIPT) and callable(ddp.load_script().main)


def test_launch_returns_metrics_and_log_and_reports_failures(tmp_path):
    """launch() with stand-in scripts (no torch import, so fast): what it passes on, returns and reports."""
    ok = tmp_path / "ok.py"
    ok.write_text("import json, os, sys\n"
                  "out = sys.argv[sys.argv.index('--out') + 1]\n"
                  "json.dump({'argv': sys.argv[1:], 'threads': os.environ['OMP_NUM_THREADS'],\n"
                  "           'path': os.environ['PYTHONPATH']}, open(os.path.join(out, 'metrics.json'), 'w'))\n"
                  "print('line one')\nprint('line two')\n")
    res = ddp.launch(["--x", "1", "--out", str(tmp_path)], threads=3, script=ok)
    assert res["argv"] == ["--x", "1", "--out", str(tmp_path)] and res["threads"] == "3"
    assert res["path"].split(":")[0] == str(Path(utils.__file__).resolve().parents[1])  # the script can import utils
    assert res["log"] == ["line one", "line two"]
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nprint('error: argument --batch-size: must be positive', file=sys.stderr)\nsys.exit(2)\n")
    with pytest.raises(RuntimeError, match=r"(?s)bad.py failed \(exit 2\).*--batch-size: must be positive"):
        ddp.launch(["--out", str(tmp_path)], script=bad)


def test_gradient_accumulation_matches_the_bigger_batch(runs):
    assert _max_diff(_weights(runs["accum8x2"]), _weights(runs["ddp2x8"])) < ATOL
    assert _max_diff(_weights(runs["accum8x2"]), _weights(runs["single16"])) < ATOL


def test_resume_from_a_mid_epoch_checkpoint_continues_exactly(runs):
    a, b = _weights(runs["resumed"]), _weights(runs["ddp2x8"])
    assert all(torch.equal(a[k], b[k]) for k in a)  # bitwise: CPU kernels are deterministic, the state is complete
    m_res, m_full = (json.loads((runs[k] / ddp.METRICS).read_text()) for k in ("resumed", "ddp2x8"))
    assert m_res["losses"] == m_full["losses"] and not m_res["stopped_early"]


@pytest.fixture(scope="module")
def dropout_runs(tmp_path_factory) -> dict[str, Path]:
    """With dropout the RNG matters: uninterrupted, resumed, and resumed without the saved RNG states (one process)."""
    import shutil

    tmp = tmp_path_factory.mktemp("ddp_dropout")
    out = {name: tmp / name for name in ("full", "resumed", "no_rng")}
    drop = ["--batch-size", "16", "--dropout", "0.3"]
    _launch(out["full"], *drop)
    _launch(out["resumed"], *drop, "--stop-after", "7")
    shutil.copytree(out["resumed"], out["no_rng"])
    _launch(out["resumed"], *drop, "--resume")
    _launch(out["no_rng"], *drop, "--resume", "--no-rng-restore")
    return out


def test_resume_with_dropout_is_exact_because_the_rng_state_is_restored(dropout_runs):
    full, resumed, no_rng = (_weights(dropout_runs[k]) for k in ("full", "resumed", "no_rng"))
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    # the control: the same resume without the saved RNG states draws other dropout masks and ends elsewhere
    assert _max_diff(full, no_rng) > 100 * ATOL


def test_dropout_option_reaches_the_model():
    assert script.build_model("tiny", 10, 0, seed=0, dropout=0.3).drop.p == 0.3
    assert script.build_model("tiny", 10, 0, seed=0).drop.p == 0.0


def test_untrained_weights_differ_so_the_comparison_has_teeth(runs):
    fresh = script.build_model("tiny", 10, 0, seed=0).state_dict()
    assert _max_diff(fresh, _weights(runs["single16"])) > 100 * ATOL


def test_training_state_loads_with_weights_only(runs):
    state = torch.load(runs["resumed"] / ddp.STATE, map_location="cpu", weights_only=True)
    assert {"optimizer", "scheduler", "progress", "rng", "world_size", "config"} <= set(state)
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["progress"]["step"] == 12
    assert not torch.equal(state["rng"][0]["torch"], torch.zeros_like(state["rng"][0]["torch"]))


def test_resume_refuses_a_different_effective_batch(runs, tmp_path):
    d = ddp.Dist(0, 1, 0, torch.device("cpu"))
    saved = torch.load(runs["resumed"] / ddp.STATE, weights_only=True)["config"]
    model = script.build_model("tiny", 10, 0, seed=0)
    trainer = {"optimizer": torch.optim.AdamW(model.parameters())}
    with pytest.raises(ValueError, match="effective batch"):
        ddp.load_state(runs["resumed"], model, trainer, d, {**saved, "effective_batch": 32})
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        ddp.load_state(tmp_path, model, trainer, d, saved)


def test_sampler_splits_one_permutation_across_ranks_and_resumes_mid_epoch():
    data = list(range(40))
    one = ddp.ResumableSampler(data, 1, 0, seed=3)
    two = [ddp.ResumableSampler(data, 2, r, seed=3) for r in range(2)]
    for s in (one, *two):
        s.set_epoch(1)
    full, parts = list(one), [list(s) for s in two]
    assert sorted(parts[0] + parts[1]) == sorted(full)
    assert set(parts[0][:4] + parts[1][:4]) == set(full[:8])  # step 1 of 2 x 4 sees the examples of 1 x 8
    two[0].set_start(6)
    assert list(two[0]) == parts[0][6:] and len(two[0]) == 14


def test_rng_state_round_trips():
    state = ddp.capture_rng()
    a = (torch.rand(3), np.random.rand(), random.random())
    ddp.restore_rng(state)
    b = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_bad_options_are_clear_errors():
    with pytest.raises(SystemExit):
        script.parse_args(["--batch-size", "0"])
    args = script.parse_args(["--model", "tiny", "--sync-bn"])
    with pytest.raises(ValueError, match="needs CUDA"):
        script._prepare_model(args, ddp.Dist(0, 1, 0, torch.device("cpu")))


def test_tiny_model_is_a_small_cnn_without_batchnorm():
    """The equivalence runs rest on this: without BatchNorm, 2 x 8 images compute exactly what 1 x 16 do."""
    model = script.build_model("tiny", 10, 0, seed=0)
    assert isinstance(model, utils.SmallCNN) and not model.norm
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    same = script.build_model("tiny", 10, 0, seed=0).state_dict()
    assert all(torch.equal(v, same[k]) for k, v in model.state_dict().items())  # identical on every rank
    assert model.classifier.in_features == 32 * 16 and model(torch.zeros(2, 3, 16, 16)).shape == (2, 10)  # a 4 x 4 grid
    assert script.parse_args([]).model == "effnet" and script.parse_args([]).schedule == "cosine"


def test_sgd_option_keeps_the_parameter_groups_and_adds_momentum():
    """--optimizer sgd: the same groups as AdamW (no decay on biases and norms), SGD with momentum 0.9."""
    args = script.parse_args(["--model", "tiny", "--optimizer", "sgd", "--lr", "0.05"])
    model = script.build_model("tiny", 10, 0, seed=0)
    trainer, _ = script._make_trainer(args, model, torch.device("cpu"), total_steps=10)
    opt = trainer["optimizer"]
    assert isinstance(opt, torch.optim.SGD) and all(g["momentum"] == 0.9 for g in opt.param_groups)
    decays = sorted({g["weight_decay"] for g in opt.param_groups})
    assert decays == [0.0, args.weight_decay]
    assert script.parse_args([]).optimizer == "adamw"
