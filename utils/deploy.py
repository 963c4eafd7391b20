"""From notebook to product: export a model (`torch.export`, ONNX), run it with ONNX Runtime, quantise it to int8.

The calls are the libraries' own: `torch.export.export` for a whole-graph program, `torch.onnx.export(...,
dynamo=True)` for an ONNX file, `onnxruntime.InferenceSession` to run it, and `onnxruntime.quantization`
(`quantize_dynamic`, `quantize_static` with a calibration reader) for int8. What this module adds is the glue a
chapter would otherwise repeat: one file per model (weights inside, a dynamic batch dimension), a session that
behaves like an `nn.Module` (so `utils.evaluate` and `utils.zoo.measure_latency` work on it unchanged), and clear
errors for the usual mistakes.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .checks import check_int, check_model

__all__ = ["INPUT", "OUTPUT", "export_program", "export_onnx", "OnnxModel", "quantize_onnx", "file_mb",
           "max_abs_diff"]

INPUT, OUTPUT = "images", "logits"  # the names every exported file uses for its input and output


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ImportError(f"{err.name} is missing: `pip install onnx onnxruntime onnxscript` (all three are in the "
                          "book's requirements.txt).") from None


def _example(model: nn.Module, example) -> torch.Tensor:
    check_model(model)
    if not torch.is_tensor(example) or example.ndim != 4 or not example.is_floating_point():
        raise TypeError("example must be a float image batch of shape (N, C, H, W), e.g. "
                        "utils.normalize(test.images[:8], model); got "
                        f"{type(example).__name__}{tuple(example.shape) if torch.is_tensor(example) else ''}.")
    if len(example) < 2:
        raise ValueError("Give an example batch of at least 2 images: with one, the exporter would treat the batch "
                         "size 1 as a constant and the exported model would accept nothing else.")
    return example.detach().cpu()


def export_program(model: nn.Module, example: torch.Tensor, dynamic_batch: bool = True):
    """`torch.export.export` of the model in eval mode on CPU: a whole-graph `ExportedProgram` (no Python needed to
    run its graph), with the batch dimension left free when `dynamic_batch`."""
    x = _example(model, example)
    model = model.cpu().eval()
    shapes = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic_batch else None
    return torch.export.export(model, (x,), dynamic_shapes=_shapes_for(model, shapes))


def _shapes_for(model: nn.Module, shapes):
    # torch.export keys dynamic_shapes by the forward's argument name; the book's models call it `x`, others may not
    if shapes is None:
        return None
    import inspect

    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not params:
        raise TypeError(f"{type(model).__name__}.forward takes no positional input; export needs forward(x).")
    return {params[0].name: shapes["x"]}


def export_onnx(model: nn.Module, path: str | Path, example: torch.Tensor, dynamic_batch: bool = True,
                opset: int | None = None) -> Path:
    """Write the model to one ONNX file (weights inside, input `images`, output `logits`) with
    `torch.onnx.export(..., dynamo=True)`, which traces through `torch.export`; the batch dimension stays free."""
    _require_onnx()
    x = _example(model, example)
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"path should end in .onnx, got {str(path)!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    shapes = _shapes_for(model, {"x": {0: "batch"}}) if dynamic_batch else None
    kwargs = {"opset_version": opset} if opset is not None else {}
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(model, (x,), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                    dynamic_shapes=shapes, external_data=False, **kwargs)
        program.save(str(path), external_data=False)
    return path


class OnnxModel(nn.Module):
    """An ONNX file run by ONNX Runtime on the CPU, callable like the PyTorch model (tensor in, logits tensor out).

    It has no parameters; `utils.evaluate`, `utils.predict` and `utils.zoo.measure_latency` accept it as they are.
    `threads` sets ONNX Runtime's intra-op threads (default: torch's current number, for a like-for-like timing).
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        super().__init__()
        _require_onnx()
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"No ONNX file at {self.path}. Write one with utils.deploy.export_onnx(model, path, "
                                    "example).")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = check_int(threads if threads is not None else torch.get_num_threads(), "threads", 1)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # ONNX Runtime's threads spin after each run by default, stealing the cores from PyTorch in the same process
        # (a PyTorch timing taken after an ONNX one came out 1.5x slower); off, both measure fairly
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.threads = opts.intra_op_num_threads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x):
            raise TypeError(f"OnnxModel takes an image tensor, got {type(x).__name__}.")
        out = self.session.run(None, {self.input_name: x.detach().cpu().float().contiguous().numpy()})[0]
        return torch.from_numpy(out)

    def extra_repr(self) -> str:
        return f"{self.path.name}, {file_mb(self.path):.2f} MB, {self.threads} thread(s)"


class _Reader:
    """The calibration data ONNX Runtime's static quantiser reads: batches of images, then None."""

    def __init__(self, images: torch.Tensor, batch_size: int):
        self.batches = iter([{INPUT: images[i:i + batch_size].float().numpy()} for i in range(0, len(images), batch_size)])

    def get_next(self):
        return next(self.batches, None)


def quantize_onnx(src: str | Path, dst: str | Path, mode: str = "static", calibration: torch.Tensor | None = None,
                  per_channel: bool = True, batch_size: int = 32, op_types: list[str] | None = None) -> Path:
    """int8 weights with `onnxruntime.quantization`: `mode="dynamic"` quantises the weights and computes each
    activation's scale at run time; `"static"` fixes the activation scales from `calibration` images (training images
    the model has seen, never test images) and writes QDQ pairs that ONNX Runtime fuses into int8 kernels.
    `op_types` limits quantisation to those ONNX operators (e.g. ["Gemm"]: the classifier alone); default all."""
    _require_onnx()
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"No ONNX file at {src}; export one first with utils.deploy.export_onnx.")
    if mode not in ("dynamic", "static"):
        raise ValueError(f"mode must be 'dynamic' or 'static', got {mode!r}.")
    if mode == "static" and (not torch.is_tensor(calibration) or calibration.ndim != 4 or len(calibration) < 1):
        raise ValueError("Static quantisation needs `calibration`: a batch of normalised training images (N, C, H, W), "
                         "e.g. a few hundred; they fix the int8 range of every activation.")
    if op_types is not None and (isinstance(op_types, str) or not all(isinstance(o, str) for o in op_types)):
        raise TypeError(f"op_types must be a list of ONNX operator names, e.g. ['Conv', 'Gemm']; got {op_types!r}.")
    dst.parent.mkdir(parents=True, exist_ok=True)
    prepared = dst.with_name(dst.stem + ".prep.onnx")
    quiet = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            warnings.simplefilter("ignore")
            logging.getLogger().setLevel(logging.ERROR)
            quant_pre_process(str(src), str(prepared))  # shape inference and graph clean-up, as ORT recommends
            if mode == "dynamic":
                quantize_dynamic(str(prepared), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel,
                                 op_types_to_quantize=op_types)
            else:
                quantize_static(str(prepared), str(dst), _Reader(calibration.detach().cpu(), batch_size),
                                quant_format=QuantFormat.QDQ, per_channel=per_channel,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                op_types_to_quantize=op_types)
    finally:
        if prepared.exists():
            os.remove(prepared)
    return dst


def file_mb(path: str | Path) -> float:
    """The size of a file in megabytes (10^6 bytes): what a deployment ships."""
    return Path(path).stat().st_size / 1e6


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest absolute difference between two outputs of the same shape (the export check's number)."""
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    if a.shape != b.shape:
        raise ValueError(f"The outputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}; compare the same inputs.")
    return float((a - b).abs().max())
