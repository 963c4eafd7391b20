"""utils.deploy: exported programs and ONNX files reproduce the PyTorch model, int8 files are smaller and still agree,
and the usual mistakes get a clear error."""
from __future__ import annotations

import pytest
import torch

import utils
from utils import deploy, zoo


@pytest.fixture(scope="module")
def cnn():
    model = utils.small_cnn(5, (8, 16), input_size=16, seed=0).eval()
    x = torch.randn(40, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    return model, x


@pytest.fixture(scope="module")
def onnx_file(cnn, tmp_path_factory):
    model, x = cnn
    return deploy.export_onnx(model, tmp_path_factory.mktemp("onnx") / "cnn.onnx", x[:4])


def test_exported_program_matches_the_model_at_another_batch_size(cnn):
    model, x = cnn
    program = deploy.export_program(model, x[:4])
    with torch.no_grad():
        assert deploy.max_abs_diff(program.module()(x[:7]), model(x[:7])) < 1e-5  # 7 != 4: the batch is dynamic


def test_onnx_runtime_reproduces_the_model_and_the_batch_is_dynamic(cnn, onnx_file):
    model, x = cnn
    ort_model = deploy.OnnxModel(onnx_file, threads=1)
    with torch.no_grad():
        for n in (1, 7, 40):  # exported with a batch of 4
            assert deploy.max_abs_diff(ort_model(x[:n]), model(x[:n])) < 1e-4
    assert deploy.file_mb(onnx_file) * 1e6 > 4 * sum(p.numel() for p in model.parameters())  # float32 weights inside
    assert "cnn.onnx" in repr(ort_model)


def test_a_fixed_batch_export_refuses_another_batch(cnn, tmp_path):
    model, x = cnn
    path = deploy.export_onnx(model, tmp_path / "fixed.onnx", x[:4], dynamic_batch=False)
    ort_model = deploy.OnnxModel(path, threads=1)
    assert ort_model(x[:4]).shape == (4, 5)
    with pytest.raises(Exception):
        ort_model(x[:5])


def test_static_int8_is_smaller_and_close(cnn, onnx_file, tmp_path):
    model, x = cnn
    q = deploy.quantize_onnx(onnx_file, tmp_path / "static.onnx", "static", calibration=x)
    assert deploy.file_mb(q) < deploy.file_mb(onnx_file)
    with torch.no_grad():
        z, z_q = model(x), deploy.OnnxModel(q, threads=1)(x)
    assert z_q.shape == z.shape and torch.isfinite(z_q).all()
    assert 0 < deploy.max_abs_diff(z_q, z) < 0.25 * z.abs().max()  # int8 changes the numbers, a little
    assert torch.corrcoef(torch.stack([z.flatten(), z_q.flatten()]))[0, 1] > 0.95


def test_quantising_only_the_classifier_leaves_the_convolutions_in_float(cnn, onnx_file, tmp_path):
    import onnx

    q = deploy.quantize_onnx(onnx_file, tmp_path / "gemm.onnx", "dynamic", op_types=["Gemm", "MatMul"])
    ops = {n.op_type for n in onnx.load(str(q)).graph.node}
    assert "Conv" in ops and "ConvInteger" not in ops
    full = deploy.quantize_onnx(onnx_file, tmp_path / "all.onnx", "dynamic")
    assert "ConvInteger" in {n.op_type for n in onnx.load(str(full)).graph.node}
    assert not list(tmp_path.glob("*.prep.onnx"))  # the intermediate file is cleaned up


def test_latency_of_an_onnx_model_is_measured_like_a_torch_model(onnx_file):
    lat = zoo.measure_latency(deploy.OnnxModel(onnx_file, threads=1), 16, batch_size=2, min_run_time=0.05)
    assert lat.ms_per_batch > 0 and lat.batch_size == 2


@pytest.mark.parametrize("call, error, words", [
    (lambda m, x, d: deploy.export_onnx(m, d / "a.onnx", x[:1]), ValueError, "at least 2"),
    (lambda m, x, d: deploy.export_onnx(m, d / "a.pt", x[:4]), ValueError, ".onnx"),
    (lambda m, x, d: deploy.export_onnx(m, d / "a.onnx", x[:4].numpy()), TypeError, "example"),
    (lambda m, x, d: deploy.export_program(m, x[0]), TypeError, "(N, C, H, W)"),
    (lambda m, x, d: deploy.OnnxModel(d / "missing.onnx"), FileNotFoundError, "export_onnx"),
    (lambda m, x, d: deploy.quantize_onnx(d / "missing.onnx", d / "b.onnx", "dynamic"), FileNotFoundError, "export"),
    (lambda m, x, d: deploy.max_abs_diff(x[:2], x[:3]), ValueError, "shape"),
])
def test_mistakes_get_clear_errors(cnn, tmp_path, call, error, words):
    model, x = cnn
    with pytest.raises(error, match=__import__("re").escape(words)):
        call(model, x, tmp_path)


def test_quantize_checks_its_arguments(onnx_file, tmp_path):
    with pytest.raises(ValueError, match="calibration"):
        deploy.quantize_onnx(onnx_file, tmp_path / "s.onnx", "static")
    with pytest.raises(ValueError, match="'dynamic' or 'static'"):
        deploy.quantize_onnx(onnx_file, tmp_path / "s.onnx", "int4")
    with pytest.raises(TypeError, match="op_types"):
        deploy.quantize_onnx(onnx_file, tmp_path / "s.onnx", "dynamic", op_types="Conv")
