"""A sweep of bad inputs over the public API: every function in `utils.__all__` and in the submodules' `__all__` that
takes data, sizes, labels, files or names gets a table of wrong values per argument, and each must be refused by the
helper itself, early, with a message that names the argument (or the file).

"Clear" is checked mechanically: the exception is a TypeError/ValueError/FileNotFoundError, the frame that raised it
is in `utils/` (not deep in torch, NumPy or safetensors), and its message names the argument. `test_every_public_callable
_is_swept_or_exempt` keeps the table honest: a new public function must be added here or exempted with a reason.
Cases known to fail in modules outside this sweep's ownership are marked xfail (non-strict) with the module to fix.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import utils
from utils import text

UTILS = Path(utils.__file__).resolve().parent
NAN, INF = float("nan"), float("inf")


# --- Valid inputs, built lazily per test ------------------------------------------------------------------------------
class FakeTokenizer:
    """Just enough of a Hugging Face tokenizer (ids = word lengths) to run utils.bert without importing transformers."""

    model_max_length = 512

    def __call__(self, texts, truncation=False, max_length=None, padding=None, return_tensors=None, verbose=True):
        ids = [[101] + [min(len(w), 99) for w in t.split()] + [102] for t in texts]
        if truncation and max_length:
            ids = [i[:max_length] for i in ids]
        if return_tensors != "pt":
            return {"input_ids": ids}
        n = max(map(len, ids))
        input_ids = torch.tensor([i + [0] * (n - len(i)) for i in ids])
        return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long()}

    def __len__(self) -> int:
        return 128


class FakeEncoder(torch.nn.Module):
    """An 'encoder' with a Hugging Face-like config whose hidden states are an embedding of the ids."""

    def __init__(self, logits: bool = False):
        super().__init__()
        from types import SimpleNamespace

        self.emb, self.logits = torch.nn.Embedding(128, 4), logits
        self.query, self.value = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
        self.config = SimpleNamespace(hidden_size=4, num_labels=2, id2label={0: "a", 1: "b"}, model_type="fake")

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        from types import SimpleNamespace

        h = self.emb(input_ids)
        return SimpleNamespace(logits=h[:, 0, :2]) if self.logits else SimpleNamespace(last_hidden_state=h)


class Ctx:
    def __init__(self, tmp: Path):
        self.tmp = tmp

    @cached_property
    def model(self):
        return utils.small_cnn(2, (4, 8), input_size=16, seed=0)

    @cached_property
    def images(self):
        return torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))

    labels = property(lambda self: torch.tensor([0, 1, 0, 1]))
    classes = property(lambda self: ["a", "b"])

    @cached_property
    def ds(self):
        return utils.ImageTensorDataset(self.images, self.labels, self.classes, normalize=self.model)

    @cached_property
    def loader(self):
        return utils.make_loader(self.ds, 2, device="cpu")

    @cached_property
    def photo(self):
        return np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)

    texts = property(lambda self: ["a good film", "a bad film", "fine fun", "an awful mess"])

    @cached_property
    def feats(self):
        return torch.randn(8, 5, generator=torch.Generator().manual_seed(0))

    flabels = property(lambda self: torch.tensor([0, 1] * 4))

    @cached_property
    def history(self):
        rows = [{"epoch": e, "train_loss": 1 / e, "train_acc": 0.5, "val_loss": 1 / e, "val_acc": 0.5, "seconds": 1.0}
                for e in (1, 2)]
        return utils.History("run", rows)

    @cached_property
    def ckpt(self):
        return utils.save_model(self.model, self.tmp / "ok.safetensors", classes=self.classes)

    @cached_property
    def folder(self):
        from PIL import Image

        for split in ("train",):
            for c in ("cats", "dogs"):
                (self.tmp / "imgs" / split / c).mkdir(parents=True)
                Image.fromarray(self.photo).save(self.tmp / "imgs" / split / c / "a.png")
        return self.tmp / "imgs"

    @cached_property
    def vocab(self):
        return text.Vocab(self.texts, min_freq=1)

    tok = property(lambda self: FakeTokenizer())
    encoder = property(lambda self: FakeEncoder())
    classifier = property(lambda self: FakeEncoder(logits=True))

    @cached_property
    def optimizer(self):
        return torch.optim.SGD(self.model.parameters(), lr=0.1)

    @cached_property
    def frame(self):
        return pd.DataFrame({"model": ["a", "b"], "gflops": [1.0, 2.0], "acc1": [70.0, 80.0]})


# --- Bad values per kind of argument ------------------------------------------------------------------------------------
def _nan_images():
    x = torch.rand(4, 3, 16, 16)
    x[0, 0, 0, 0] = NAN
    return x


def _nan_photo():
    x = np.random.default_rng(0).random((16, 16, 3))
    x[3, 3, 1] = np.nan
    return x


def _bad_file(tmp: Path, name: str, content: bytes | None) -> Path:
    path = tmp / name
    if content is not None:
        path.write_bytes(content)
    return path


def _truncated(ctx: Ctx) -> Path:
    whole = Path(ctx.ckpt).read_bytes()
    return _bad_file(ctx.tmp, "truncated.safetensors", whole[: len(whole) // 2])


SIZE = {"zero": 0, "negative": -3, "float": 2.5, "string": "8", "bool": True}
COUNT0 = {"negative": -1, "float": 1.5, "string": "1"}
SEED = {"negative": -1, "too large": 2**32, "float": 0.5, "string": "0"}
PROB = {"negative": -0.1, "one": 1.0, "nan": NAN, "string": "0.1"}
POSITIVE = {"zero": 0.0, "negative": -1.0, "nan": NAN, "inf": INF, "string": "1e-3"}
IMAGES = {"one channel": lambda c: torch.rand(4, 1, 16, 16), "0-255 floats": lambda c: torch.rand(4, 3, 16, 16) * 255,
          "NaN pixels": lambda c: _nan_images(), "normalised": lambda c: torch.rand(4, 3, 16, 16) * 2 - 1,
          "no batch dim": lambda c: torch.rand(3, 16, 16), "channels last": lambda c: torch.rand(4, 16, 16, 3),
          "numpy": lambda c: np.random.rand(4, 3, 16, 16), "int64": lambda c: torch.randint(0, 255, (4, 3, 16, 16)),
          "empty": lambda c: torch.rand(0, 3, 16, 16)}
IMAGE = {"NaN pixels": lambda c: _nan_photo(), "0-255 floats": lambda c: np.random.rand(16, 16, 3) * 255,
         "int64 array": lambda c: np.full((16, 16, 3), 200, np.int64), "5 channels": lambda c: np.zeros((16, 16, 5), np.uint8),
         "list": [[0.1, 0.2]], "bool array": lambda c: np.zeros((16, 16), bool), "file name string": "photo.jpg",
         "normalised tensor": lambda c: torch.rand(3, 16, 16) * 2 - 1, "grayscale tensor": lambda c: torch.rand(1, 16, 16)}
LABELS = {"fractional": [0.5, 1, 0, 1], "negative": [-1, 1, 0, 1], "beyond the classes": [0, 1, 5, 0],
          "one-hot 2-D": [[1, 0], [0, 1], [1, 0], [0, 1]], "bare string": "0101", "too few": [0, 1, 0], "None": None,
          "bool tensor": lambda c: torch.tensor([True, False, True, False]), "NaN": [NAN, 1, 0, 1]}
LABEL_LIST = {"bare string": "0101", "2-D": [[0, 1], [1, 0]], "None": None, "empty": [], "NaN": [NAN, 1.0, 0.0, 1.0]}
TEXTS = {"bare string": "one whole review as a single string", "empty list": [], "None inside": ["ok", None],
         "blank": ["ok", "   "], "far too long": ["word " * 1000], "number": 42}
NAMES = {"bare string": "ab", "empty": [], "duplicates": ["a", "a"], "not strings": [0, 1]}
NAMES_N = {**NAMES, "wrong count": ["a", "b", "c"]}
LOAD_PATH = {"missing": lambda c: c.tmp / "missing.safetensors", "truncated": _truncated,
             "garbage": lambda c: _bad_file(c.tmp, "garbage.safetensors", b"not a checkpoint at all" * 4),
             "empty file": lambda c: _bad_file(c.tmp, "empty.safetensors", b""),
             "wrong suffix": lambda c: _bad_file(c.tmp, "model.pt", b"x"), "not a path": 123}
SAVE_PATH = {"wrong suffix": lambda c: c.tmp / "model.pt", "not a path": 123}
META = {"numpy int": {"epochs": np.int64(3)}, "tensor": {"acc": torch.tensor(0.9)}, "NaN": {"acc": NAN},
        "int key": {1: "x"}, "set": {"tags": {"a", "b"}}, "not a dict": "note"}
MODEL = {"string": "efficientnet_lite0", "None": None, "function": len}
FEATURES = {"3-D": lambda c: torch.rand(8, 2, 3), "NaN": lambda c: torch.full((8, 5), NAN), "empty": lambda c: torch.rand(0, 5),
            "strings": lambda c: np.array([["a"] * 5] * 8), "list of str": ["features"]}
CHOICE = {"unknown": "no-such-thing", "number": 3}
CALLABLE = {"string": "light", "number": 3}
SPLIT = {"unknown": "training", "capitalised": "Train", "number": 0}
EMPTY_LOADER = {"empty loader": lambda c: DataLoader(TensorDataset(torch.zeros(0, 3, 16, 16), torch.zeros(0, dtype=torch.long)))}
TRAIN_LOADER = {**EMPTY_LOADER,
                "labels beyond the head": lambda c: DataLoader(TensorDataset(c.images, torch.tensor([0, 1, 5, 0])), batch_size=2),
                "one-channel images": lambda c: DataLoader(TensorDataset(torch.rand(4, 1, 16, 16), c.labels), batch_size=2)}
HISTORIES = {"empty list": [], "not a history": [{"epoch": 1}], "dict": {"loss": [1.0]}}
DATASET = {"tensor": lambda c: torch.rand(4, 3), "number": 3, "None": None}
FOLDER = {"missing folder": lambda c: c.tmp / "nope", "not a path": 123}
TASK = {"one class": {"a": "plot"}, "unknown category": {"a": "nope", "b": "fresh"},
        "category twice": {"a": "plot", "b": ("plot", "fresh")}, "bare string": "plot", "no categories": {"a": (), "b": "fresh"}}
INPUT_SIZE = {"zero": 0, "string": "224", "too many dims": (1, 3, 8, 8)}


def _without(table: dict, *labels: str) -> dict:
    return {k: v for k, v in table.items() if k not in labels}


# --- The sweep table: function -> (valid arguments, {argument: bad values}) --------------------------------------------
# Out-of-scope modules whose failing cases are expected to fail (reported to their owners); non-strict xfail.
KNOWN = {
    ("utils.train.predict", "loader", "labels beyond the head"): "utils/train.py: predict does not read labels (harmless)",
}

SWEEP = {
    # data
    "utils.data.split_indices": (lambda c: dict(labels=[0, 1] * 10), {
        "labels": LABEL_LIST, "seed": SEED, "fractions": {"two": (0.5, 0.5), "negative": (1.2, -0.1, -0.1),
                                                          "strings": ("a", "b", "c"), "bare number": 0.6},
        "groups": {"too short": [1, 2, 3], "bare string": "abcd"}}),
    "utils.data.subsample_per_class": (lambda c: dict(labels=[0, 1] * 10, per_class=2),
                                       {"labels": LABEL_LIST, "per_class": SIZE, "seed": SEED}),
    "utils.data.ImageTensorDataset": (lambda c: dict(images=c.images, labels=c.labels, classes=c.classes), {
        "images": IMAGES, "labels": LABELS, "classes": NAMES, "transform": CALLABLE,
        "normalize": {"string": "imagenet", "dict": {"mean": 0.5}}}),
    "utils.data.TextDataset": (lambda c: dict(texts=c.texts, labels=[0, 1, 0, 1], classes=c.classes),
                               {"texts": TEXTS, "labels": _without(LABELS, "bool tensor"), "classes": NAMES}),
    "utils.data.images_from_arrays": (lambda c: dict(images=[c.photo] * 4, labels=[0, 1, 0, 1], classes=c.classes,
                                                     model=c.model), {
        "images": {**_without(IMAGES, "no batch dim", "numpy", "normalised", "one channel"), "empty list": [],
                   "one PIL image": lambda c: __import__("PIL.Image").Image.fromarray(c.photo),
                   "a NaN image": lambda c: [c.photo, _nan_photo(), c.photo, c.photo],
                   "0-255 floats in a list": lambda c: [c.photo.astype(float)] * 4, "string": "images/"},
        "labels": LABELS, "classes": NAMES, "model": {"string": "efficientnet_lite0", "function": len},
        "size": SIZE, "normalize": {"string": "imagenet"}, "transform": CALLABLE}),
    "utils.data.image_folder": (lambda c: dict(root=c.folder, split="train", model=c.model), {
        "root": FOLDER, "split": SPLIT, "size": SIZE, "classes": NAMES, "model": {"string": "efficientnet_lite0"}}),
    "utils.data.mnist_digits": (lambda c: dict(split="val"), {"split": SPLIT, "image_size": SIZE, "transform": CALLABLE}),
    "utils.data.digit_task": (lambda c: dict(split="val", digits=[0, 1]), {
        "split": SPLIT, "digits": {"bare string": "01", "number": 3, "repeated": [1, 1], "out of range": [3, 12],
                                   "empty": []}, "image_size": SIZE, "per_class": SIZE, "seed": SEED}),
    "utils.data.lfw_faces": (lambda c: dict(split="val"), {"split": SPLIT, "image_size": SIZE}),
    "utils.data.rotten_tomatoes": (lambda c: dict(split="val"), {"split": SPLIT}),
    "utils.data.review_task": (lambda c: dict(classes={"objective": "plot", "subjective": ("fresh", "rotten")}, split="val"),
                               {"classes": TASK, "split": SPLIT, "per_class": SIZE, "seed": SEED,
                                "balance": {"string": "yes"}}),
    "utils.data.few_labels": (lambda c: dict(splits={s: c.ds for s in ("train", "val", "test")}, labels=[1],
                                             seeds=2), {
        "splits": {"a list": lambda c: [c.ds] * 3, "no test split": lambda c: {"train": c.ds, "val": c.ds},
                   "tensors": lambda c: {s: torch.zeros(4) for s in ("train", "val", "test")}},
        "labels": {"bare number": 16, "zero": [0], "empty": [], "float": [1.5]}, "seeds": SIZE,
        "val_per_class": SIZE, "test_per_class": SIZE}),
    "utils.data.torchvision_dataset": (lambda c: dict(name="oxford_pets", root=c.tmp, split="val", download=False),
                                       {"name": CHOICE, "split": SPLIT}),
    "utils.data.check_split": (lambda c: dict(split="val"), {"split": SPLIT}),
    # loaders
    "utils.loaders.make_loader": (lambda c: dict(dataset=c.ds, batch_size=2, device="cpu"), {
        "dataset": {**DATASET, "empty": lambda c: TensorDataset(torch.zeros(0, 2)),
                    "pair with NaN": lambda c: (torch.full((4, 2), NAN), c.labels),
                    "pair of unequal length": lambda c: (torch.rand(5, 2), c.labels)},
        "batch_size": SIZE, "seed": SEED, "num_workers": COUNT0, "shuffle": {"string": "yes"}, "collate_fn": CALLABLE}),
    "utils.loaders.feature_loaders": (lambda c: dict(train_x=c.feats, train_y=c.flabels, val_x=c.feats, val_y=c.flabels,
                                                     batch_size=4), {
        "train_x": FEATURES, "train_y": _without(LABELS, "beyond the classes"), "val_x": FEATURES,
        "val_y": _without(LABELS, "beyond the classes"), "batch_size": SIZE, "seed": SEED}),
    # models
    "utils.models.create_backbone": (lambda c: dict(name="efficientnet_lite0", pretrained=False), {
        "name": {"unknown": "efficientnet_lite9", "number": 3, "empty": "", "bad source": "keras/resnet"},
        "num_classes": SIZE, "pretrained": {"string": "yes"}}),
    "utils.models.data_config": (lambda c: dict(model=c.model), {"model": {**MODEL, "plain module": torch.nn.Linear(2, 2)}}),
    "utils.models.replace_head": (lambda c: dict(model=c.model, num_classes=3), {
        "model": MODEL, "num_classes": SIZE, "dropout": PROB}),
    "utils.models.DataConfig": (lambda c: dict(mean=(0.5,) * 3, std=(0.5,) * 3, input_size=32), {
        "mean": {"one channel": (0.5,), "string": "0.5", "NaN": (NAN, 0.5, 0.5)},
        "std": {"zero": (0.0, 0.5, 0.5), "negative": (-1.0, 1.0, 1.0)}, "input_size": SIZE,
        "interpolation": {"unknown": "lanczos3"}, "crop_pct": {"zero": 0.0, "above one": 1.5, "string": "0.9"}}),
    "utils.models.track_fine_tuning": (lambda c: dict(model=c.model), {"model": MODEL}),
    "utils.models.list_backbones": (lambda c: dict(source="bundled"), {"source": CHOICE}),
    # vision
    "utils.vision.load_photo": (lambda c: dict(name="chelsea"), {"name": CHOICE}),
    "utils.vision.to_tensor": (lambda c: dict(image=c.photo), {"image": IMAGE}),
    "utils.vision.normalize": (lambda c: dict(x=c.images, cfg=c.model), {
        "x": _without(IMAGES, "no batch dim", "empty"), "cfg": MODEL}),
    "utils.vision.preprocess": (lambda c: dict(image=c.photo, cfg=c.model), {"image": IMAGE, "cfg": MODEL, "size": SIZE}),
    "utils.vision.resize_crop": (lambda c: dict(x=c.images, size=8), {"size": SIZE}),
    "utils.vision.topk": (lambda c: dict(probs=torch.tensor([0.2, 0.8]), labels=c.classes), {
        "probs": {"2-D": lambda c: torch.rand(1, 2), "NaN": lambda c: torch.tensor([NAN, 0.5]), "list": [0.2, 0.8]},
        "labels": NAMES_N, "k": SIZE}),
    "utils.vision.classify": (lambda c: dict(model=c.model, image=c.photo, labels=c.classes), {
        "model": MODEL, "image": IMAGE, "labels": NAMES_N, "k": SIZE}),
    # checkpoints
    "utils.checkpoint.save_checkpoint": (lambda c: dict(model=c.model, path=c.tmp / "a.safetensors"), {
        "model": MODEL, "path": SAVE_PATH, "meta": META, "overwrite": {"string": "yes"}}),
    "utils.checkpoint.load_checkpoint": (lambda c: dict(model=c.model, path=c.ckpt), {
        "model": MODEL, "path": LOAD_PATH}),
    "utils.checkpoint.read_metadata": (lambda c: dict(path=c.ckpt), {"path": LOAD_PATH}),
    "utils.checkpoint.save_model": (lambda c: dict(model=c.model, path=c.tmp / "b.safetensors", classes=c.classes), {
        "model": {**MODEL, "plain torchvision-like": torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2))},
        "path": SAVE_PATH, "classes": NAMES_N, "meta": {**META, "reserved key": {"classes": ["x"]}}}),
    "utils.checkpoint.load_model": (lambda c: dict(path=c.ckpt), {"path": {
        **LOAD_PATH, "a plain checkpoint": lambda c: utils.save_checkpoint(c.model, c.tmp / "plain.safetensors")}}),
    "utils.smallcnn.save_small_cnn": (lambda c: dict(model=c.model, path=c.tmp / "s.safetensors", classes=c.classes),
                                      {"model": MODEL, "path": SAVE_PATH, "classes": {"wrong count": ["a", "b", "c"]}}),
    "utils.smallcnn.load_small_cnn": (lambda c: dict(path=c.ckpt), {"path": LOAD_PATH}),
    # plots
    "utils.plots.show_images": (lambda c: dict(images=list(c.images)), {
        "images": {"empty list": [], "normalised": lambda c: list(c.images * 2 - 1), "NaN": lambda c: list(_nan_images()),
                   "a batch as one entry": lambda c: [torch.rand(2, 3, 8, 8, 8)], "number": 3},
        "titles": {"bare string": "cat", "too few": ["a"]}, "ncols": SIZE, "size": POSITIVE}),
    "utils.plots.plot_history": (lambda c: dict(histories=c.history), {
        "histories": {**HISTORIES, "untrained": utils.History("empty")}, "metrics": {"unknown": ("f1",), "empty": ()}}),
    "utils.plots.show_filters": (lambda c: dict(weight=torch.rand(4, 3, 3, 3)), {
        "weight": {"one channel": lambda c: torch.rand(4, 1, 3, 3), "array": np.zeros((4, 3, 3, 3))}, "ncols": SIZE}),
    "utils.plots.show_feature_maps": (lambda c: dict(maps=torch.rand(4, 5, 5)), {
        "maps": {"batch": lambda c: torch.rand(1, 4, 5, 5), "list": [[1.0]]}, "n": SIZE}),
    # probe
    "utils.probe.linear_probe": (lambda c: dict(train_x=c.feats, train_y=c.flabels, val_x=c.feats, val_y=c.flabels,
                                                cs=(1.0,)), {
        "train_x": FEATURES, "train_y": _without(LABELS, "beyond the classes"), "val_x": FEATURES,
        "cs": {"empty": (), "negative": (-1.0,), "bare number": 0.1}, "max_iter": SIZE}),
    # text
    "utils.text.tokenize": (lambda c: dict(text="a film"), {"text": {"list": ["a", "film"], "None": None}}),
    "utils.text.Vocab": (lambda c: dict(texts=c.texts, min_freq=1), {"texts": TEXTS, "min_freq": SIZE,
                                                                      "max_size": SIZE}),
    "utils.loaders.LengthGroupedSampler": (lambda c: dict(lengths=[3, 1, 2, 5], batch_size=2), {
        "lengths": {"empty": []}, "batch_size": SIZE, "seed": SEED, "mega_batches": SIZE}),
    "utils.text.collate_tokens": (lambda c: dict(vocab=c.vocab), {"vocab": {"dict": {"a": 1}}, "max_len": SIZE}),
    "utils.text.text_loader": (lambda c: dict(dataset=utils.TextDataset(c.texts, [0, 1, 0, 1], c.classes), vocab=c.vocab,
                                              shuffle=True), {
        "vocab": {"dict": {"a": 1}}, "max_len": SIZE, "batch_size": SIZE, "seed": SEED,
        "group_by_length": {"string": "yes"}}),
    "utils.text.glove_matrix": (lambda c: dict(vocab=c.vocab, glove=None), {"vocab": {"list": ["a"]}, "glove": {"None": None}}),
    "utils.text.LSTMClassifier": (lambda c: dict(vocab_size=10), {
        "vocab_size": SIZE, "num_classes": SIZE, "emb_dim": SIZE, "hidden": SIZE, "dropout": PROB,
        "embeddings": {"wrong shape": lambda c: torch.zeros(3, 50), "array": np.zeros((10, 50))}}),
    # bert (argument checks in the public functions)
    "utils.bert.token_lengths": (lambda c: dict(tokenizer=c.tok, texts=c.texts), {"texts": TEXTS}),
    "utils.bert.pool_hidden": (lambda c: dict(hidden=torch.rand(2, 3, 4), mask=torch.ones(2, 3), pooling="mean"), {
        "pooling": CHOICE, "hidden": {"2-D": lambda c: torch.rand(2, 4)}, "mask": {"wrong shape": lambda c: torch.ones(3, 2)}}),
    "utils.bert.encode_texts": (lambda c: dict(tokenizer=c.tok, model=c.encoder, texts=c.texts, progress=False), {
        "texts": TEXTS, "max_length": SIZE, "pooling": CHOICE, "batch_size": SIZE, "padding": CHOICE}),
    "utils.bert.cached_encode": (lambda c: dict(tokenizer=c.tok, model=c.encoder, texts=c.texts, folder=c.tmp, progress=False),
                                 {"texts": TEXTS, "max_length": SIZE, "pooling": CHOICE, "batch_size": SIZE}),
    "utils.bert.TokenizeCollate": (lambda c: dict(tokenizer=c.tok), {"max_length": SIZE, "classes": NAMES,
                                                                     "tokenizer": {"string": "minilm"}}),
    "utils.bert.text_loader": (lambda c: dict(dataset=utils.TextDataset(c.texts, [0, 1, 0, 1], c.classes), tokenizer=c.tok),
                               {"max_length": SIZE, "batch_size": SIZE, "seed": SEED, "classes": NAMES,
                                "group_by_length": {"string": "yes", "without shuffle": True}}),
    "utils.bert.MeanPoolClassifier": (lambda c: dict(encoder=c.encoder), {"num_labels": SIZE, "dropout": PROB,
                                                                          "encoder": {"string": "minilm"}}),
    "utils.bert.add_lora": (lambda c: dict(model=c.classifier), {
        "r": SIZE, "alpha": POSITIVE, "dropout": PROB,
        "target_modules": {"bare string": "query", "unknown": ["nope"], "empty": []}}),
    "utils.bert.predict_texts": (lambda c: dict(texts=c.texts, model=c.classifier, tokenizer=c.tok), {
        "texts": TEXTS, "labels": NAMES_N, "max_length": SIZE, "batch_size": SIZE, "max_chars": SIZE}),
    "utils.bert.load_classifier": (lambda c: dict(folder=c.tmp / "clf"), {"folder": {"missing": lambda c: c.tmp / "nope"}}),
    # augment
    "utils.augment.augmentation": (lambda c: dict(level="light", cfg=c.model), {
        "level": CHOICE, "cfg": {"dict": {"mean": 0.5}, "None": None}, "size": SIZE, "domain": CHOICE,
        "normalize": {"string": "yes"}}),
    "utils.augment.transform_gallery": (lambda c: dict(size=16), {"size": SIZE}),
    "utils.augment.denormalize": (lambda c: dict(x=c.images, cfg=c.model), {
        "x": {"one channel": lambda c: torch.rand(4, 1, 16, 16), "array": np.zeros((3, 4, 4))}, "cfg": MODEL}),
    "utils.augment.with_transform": (lambda c: dict(dataset=c.ds, transform=None), {
        "dataset": {"tensor dataset": lambda c: TensorDataset(c.images)}, "transform": CALLABLE}),
    "utils.augment.OnTheFly": (lambda c: dict(dataset=c.ds, transform=lambda x: x), {
        "dataset": {"number": 3}, "transform": {**CALLABLE, "None": None}}),
    "utils.augment.augment_grid": (lambda c: dict(image=c.images[0], transforms={"id": lambda x: x}), {
        "image": {"NaN": lambda c: _nan_images()[0], "0-255": lambda c: c.images[0] * 255, "batch": lambda c: c.images},
        "transforms": {"empty": {}, "list": [lambda x: x], "not callable": {"a": 3}}, "n": SIZE, "seed": SEED}),
    # adapt
    "utils.adapt.shift_images": (lambda c: dict(images=c.images, kind="invert"), {
        "images": _without(IMAGES, "one channel", "channels last", "empty"), "kind": CHOICE, "seed": SEED}),
    "utils.adapt.shifted": (lambda c: dict(dataset=c.ds, kind="invert"), {
        "dataset": {"tensor dataset": lambda c: TensorDataset(c.images)}, "kind": CHOICE, "seed": SEED}),
    "utils.adapt.adabn": (lambda c: dict(model=c.model, target_loader=c.loader), {
        "model": MODEL, "target_loader": EMPTY_LOADER, "max_batches": SIZE}),
    # zoo
    "utils.zoo.model_family": (lambda c: dict(name="resnet50"), {"name": {"number": 3, "None": None}}),
    "utils.zoo.pareto_front": (lambda c: dict(df=c.frame), {"df": {"dict": {"gflops": [1.0]}}, "cost": {"unknown": "ms"}}),
    "utils.zoo.measure_latency": (lambda c: dict(model=c.model, input_size=16, min_run_time=0.01, warmup=0), {
        "model": MODEL, "input_size": INPUT_SIZE, "batch_size": SIZE, "min_run_time": POSITIVE, "warmup": COUNT0}),
    "utils.zoo.latency_table": (lambda c: dict(models={"m": c.model}, settings=((16, 1),), min_run_time=0.01, warmup=0), {
        "models": {"empty": {}, "list": lambda c: [c.model]}, "settings": {"bare pair": (16, 1), "bad size": ((0, 1),)}}),
    "utils.zoo.count_gmacs": (lambda c: dict(model=c.model, input_size=16), {"model": MODEL, "input_size": INPUT_SIZE}),
    # training, groups, optimisers, devices (owned elsewhere; swept all the same)
    "utils.train.fit": (lambda c: dict(model=c.model, train_loader=c.loader, epochs=1, device=torch.device("cpu"),
                                       progress=False), {"train_loader": TRAIN_LOADER, "epochs": SIZE, "lr": POSITIVE}),
    "utils.train.evaluate": (lambda c: dict(model=c.model, loader=c.loader), {"loader": TRAIN_LOADER}),
    "utils.train.predict": (lambda c: dict(model=c.model, loader=c.loader), {"loader": TRAIN_LOADER}),
    "utils.train.fine_tune": (lambda c: dict(model=c.model, train_loader=c.loader, epochs=1, freeze_epochs=1,
                                             device=torch.device("cpu"), progress=False),
                              {"epochs": SIZE, "freeze_epochs": COUNT0}),
    "utils.groups.unfreeze_last": (lambda c: dict(model=c.model, k=1), {"k": COUNT0, "model": MODEL}),
    "utils.optim.make_optimizer": (lambda c: dict(model=c.model), {"lr": POSITIVE, "model": MODEL}),
    "utils.optim.make_scheduler": (lambda c: dict(optimizer=c.optimizer, schedule="cosine", total_steps=10), {
        "schedule": CHOICE, "total_steps": SIZE}),
    "utils.device.seed_everything": (lambda c: dict(seed=0), {"seed": SEED}),
    "utils.smallcnn.small_cnn": (lambda c: dict(num_classes=2, widths=(4,), input_size=8), {
        "widths": {"empty": (), "negative": (-4,), "bare number": 4}, "seed": SEED}),
    "utils.evidence.repeated_folds": (lambda c: dict(labels=[0, 1] * 10), {"labels": LABEL_LIST, "seed": SEED,
                                                                          "n_splits": SIZE}),
}

# Public callables that take none of data, sizes, labels, files or names at a user's boundary (or that another test owns).
EXEMPT = {
    "records (dataclasses and result types)": [
        "utils.train.History", "utils.groups.LayerGroup", "utils.groups.ParamCount", "utils.train.Step",
        "utils.evidence.Fold", "utils.evidence.Comparison", "utils.zoo.Latency", "utils.text.Coverage",
        "utils.assets.GloVe", "utils.assets.CharLSTMWeights", "utils.optim.LRFinderResult", "utils.diagnose.Diagnosis",
        "utils.distributed.Dist", "utils.probe.Probe", "utils.evidence.Claims", "utils.smallcnn.SmallCNN",
        "utils.data.FewLabels"],
    "no user data (environment, bundled assets, caches)": [
        "utils.device.environment", "utils.device.ensure_offline_flags", "utils.device.get_device", "utils.device.is_online",
        "utils.device.amp_dtype", "utils.device.model_device", "utils.device.recorded_bench", "utils.assets.imagenet_categories", "utils.assets.minilm_path",
        "utils.assets.load_glove", "utils.assets.load_charlstm_weights", "utils.assets.load_efficientnet_lite0",
        "utils.assets.load_minilm", "utils.assets.package_file", "utils.assets.sha256_file",
        "utils.assets.efficientnet_lite_file", "utils.assets.efficientnet_lite_state_dict",
        "utils.assets.load_efficientnet_lite", "utils.assets.efficientnet_lite0_state_dict", "utils.cache.cache_root",
        "utils.cache.cache_dir", "utils.cache.fingerprint", "utils.cache.hash_tensors", "utils.cache.hash_json",
        "utils.cache.atomic_path", "utils.cache.save_tensors", "utils.cache.load_tensors", "utils.cache.clear_cache",
        "utils.cache.save_result", "utils.cache.load_result", "utils.bert.run_key",
        "utils.loaders.default_num_workers", "utils.loaders.seed_worker", "utils.loaders.main_is_importable",
        "utils.loaders.is_in_memory", "utils.loaders.start_method", "utils.zoo.zoo_table", "utils.zoo.is_classifier_weights",
        "utils.zoo.plot_zoo", "utils.train.to_device", "utils.train.forward", "utils.plots.legend_outside",
        "utils.progress.progress_bar"],
    "model structure helpers (take a model only; tested in test_groups.py)": [
        "utils.groups.backbone_groups", "utils.groups.classifier_name", "utils.groups.count_parameters",
        "utils.groups.freeze", "utils.groups.unfreeze", "utils.groups.frozen_bn_eval", "utils.groups.get_classifier",
        "utils.groups.layer_groups", "utils.groups.register_layer_groups", "utils.groups.trainable_summary",
        "utils.adapt.bn_layers", "utils.smallcnn.conv_block", "utils.text.masked_mean", "utils.text.masked_max",
        "utils.optim.group_lrs", "utils.optim.param_groups", "utils.optim.warmup_cosine", "utils.optim.warmup_linear",
        "utils.optim.plot_lr_find", "utils.optim.lr_find", "utils.train.train_step", "utils.train.gradual_unfreeze"],
    "chapter-specific modules with their own tests (features, evidence, explorer, diagnose, charlm, distributed, "
    "calibration, interpret, showcase, deploy, distill)": [
        "utils.features.check_cut", "utils.features.cache_key", "utils.features.images_of", "utils.features.extract",
        "utils.features.cached_activations", "utils.features.cached_features", "utils.features.Tail", "utils.features.tail",
        "utils.adapt.shuffled_labels", "utils.adapt.with_marker", "utils.augment.mix_collate", "utils.augment.policy",
        "utils.augment.strength", "utils.augment.tta_predict", "utils.distributed.load_script",
        "utils.regularise.L2SPAdamW", "utils.regularise.drift", "utils.regularise.l2sp_optimizer",
        "utils.evidence.sweep", "utils.evidence.map_runs", "utils.evidence.default_workers", "utils.evidence.cpu_time",
        "utils.evidence.summarise", "utils.evidence.describe", "utils.evidence.span", "utils.evidence.compare",
        "utils.evidence.compare_to", "utils.evidence.p_text", "utils.evidence.mcnemar", "utils.evidence.plot_curves", "utils.evidence.plot_points",
        "utils.explorer.load_splits", "utils.explorer.run_strategy", "utils.explorer.default_comparison",
        "utils.explorer.runs_table", "utils.explorer.plot_runs", "utils.explorer.explorer_widget",
        "utils.diagnose.check_history", "utils.diagnose.evidence", "utils.diagnose.diagnose", "utils.diagnose.diagnose_table",
        "utils.diagnose.plot_diagnosis", "utils.diagnose.fit_keep_best", "utils.charlm.CharLM",
        "utils.charlm.cudnn_to_torch_lstm", "utils.charlm.load_pretrained_charlm", "utils.charlm.text_to_ids",
        "utils.charlm.next_char_probs", "utils.charlm.generate", "utils.charlm.CharLMClassifier",
        "utils.charlm.encode", "utils.charlm.NextCharObjective", "utils.charlm.lm_batches", "utils.charlm.bits_per_char",
        "utils.charlm.unlabelled_texts", "utils.charlm.adapt", "utils.charlm.pooled_features", "utils.charlm.text_loader",
        "utils.distributed.setup_distributed", "utils.distributed.ResumableSampler", "utils.distributed.capture_rng",
        "utils.distributed.restore_rng", "utils.distributed.gather", "utils.distributed.mean_over_ranks",
        "utils.distributed.save_state", "utils.distributed.load_state", "utils.distributed.free_port",
        "utils.distributed.launch_command", "utils.distributed.launch",
        "utils.calibration.expected_calibration_error", "utils.calibration.reliability_curve",
        "utils.calibration.fit_temperature", "utils.calibration.scale_logits", "utils.calibration.nll",
        "utils.calibration.plot_reliability", "utils.interpret.per_class_report", "utils.interpret.most_confused",
        "utils.interpret.top_losses", "utils.interpret.class_activation_map", "utils.interpret.grad_cam",
        "utils.interpret.mass_inside", "utils.interpret.plot_cams",
        "utils.showcase.Recipe", "utils.showcase.DigitSplits", "utils.showcase.digit_splits", "utils.showcase.train_rows",
        "utils.showcase.activations", "utils.showcase.fine_tune_digits", "utils.showcase.digits_model",
        "utils.deploy.export_program", "utils.deploy.export_onnx", "utils.deploy.OnnxModel", "utils.deploy.quantize_onnx",
        "utils.deploy.file_mb", "utils.deploy.max_abs_diff", "utils.distill.pack_targets", "utils.distill.distill_loader",
        "utils.distill.DistillationLoss"],
    "the checks themselves (tests/test_checks.py)": [f"utils.checks.{n}" for n in importlib.import_module("utils.checks").__all__
                                                     if callable(getattr(utils.checks, n))],
    "saving a Hugging Face classifier needs a trained model (tests/test_bert.py)": ["utils.bert.save_classifier"],
}


def _qualname(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def public_callables() -> dict[str, object]:
    """Every callable in utils.__all__ and in each submodule's __all__, by defining module and name."""
    found = {}
    modules = [utils] + [importlib.import_module(f"utils.{m.name}") for m in pkgutil.iter_modules(utils.__path__)]
    for mod in modules:
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if callable(obj) and not (inspect.isclass(obj) and issubclass(obj, BaseException)):
                found[_qualname(obj)] = obj
    return found


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _cases():
    for fname, (_, args) in SWEEP.items():
        for arg, table in args.items():
            for label in table:
                marks = [pytest.mark.xfail(reason=KNOWN[(fname, arg, label)], strict=False)] if (fname, arg, label) in KNOWN else []
                yield pytest.param(fname, arg, label, id=f"{fname.removeprefix('utils.')}-{arg}-{label}", marks=marks)


def _value(v, ctx):
    return v(ctx) if callable(v) and not isinstance(v, (torch.nn.Module, type)) and v is not len else v


def assert_clear(exc: BaseException, fname: str, arg: str, names: list[str]) -> None:
    """Refused by utils code (the raising frame is in utils/), with a message that names the argument or file."""
    assert isinstance(exc, (TypeError, ValueError, FileNotFoundError)), f"{fname}({arg}=...) raised {exc!r}"
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    where = Path(tb.tb_frame.f_code.co_filename).resolve()
    assert UTILS in where.parents, f"{fname}({arg}=...) failed deep inside {where}:{tb.tb_lineno}: {exc!r}"
    msg = str(exc)
    assert any(n in msg for n in names), f"{fname}: the message does not name {names}: {msg!r}"
    assert len(msg) >= 30, f"{fname}: message too terse to act on: {msg!r}"


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("fname, arg, label", list(_cases()))
def test_bad_input_is_refused_clearly(fname, arg, label, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFER_BOOK_CACHE", str(tmp_path / "cache"))
    ctx = Ctx(tmp_path)
    fn = _resolve(fname)
    valid, tables = SWEEP[fname]
    kwargs = valid(ctx)
    bad = _value(tables[arg][label], ctx)
    kwargs[arg] = bad
    names = [arg]
    if isinstance(bad, Path):
        names.append(bad.name)
    if arg in ("x", "hidden", "mask", "probs", "maps", "weight", "df", "cfg", "root", "folder"):
        names += {"x": ["images"], "cfg": ["model", "DataConfig", "cfg"], "df": ["DataFrame", "columns"],
                  "root": ["folder", "root"], "folder": ["folder", "classifier"], "maps": ["feature maps"],
                  "weight": ["kernels"], "probs": ["probabilities", "probs"]}.get(arg, [])
    if arg == "name":
        names += ["photo", "dataset", "model"]  # "Unknown photo 'dog'", "Unknown online dataset name", "Unknown model"
    if arg.endswith("loader"):
        names += ["loader", "label"]  # an empty loader, or the labels it yields
    if arg == "model" and fname.endswith(("augmentation", "denormalize")):
        names.append("cfg")
    with pytest.raises(Exception) as info:
        fn(**kwargs)
    assert_clear(info.value, fname, arg, names)


def test_every_valid_call_in_the_table_works(tmp_path, monkeypatch):
    """The table's valid arguments must pass, or a 'refused' result above proves nothing."""
    monkeypatch.setenv("TRANSFER_BOOK_CACHE", str(tmp_path / "cache"))
    skip = {"utils.data.torchvision_dataset": "needs the network", "utils.bert.load_classifier": "needs a saved folder",
            "utils.bert.add_lora": "imports peft (slow); tests/test_bert.py", "utils.text.glove_matrix": "needs GloVe",
            "utils.probe.linear_probe": "imports sklearn (slow); tests of the probe",
            "utils.data.review_task": "covered by tests/test_own_data.py", "utils.data.mnist_digits": "slow-ish",
            "utils.data.digit_task": "slow-ish", "utils.data.lfw_faces": "slow-ish", "utils.data.rotten_tomatoes": "slow-ish"}
    failures = []
    for fname, (valid, _) in SWEEP.items():
        if fname in skip:
            continue
        (tmp_path / fname).mkdir()
        try:
            _resolve(fname)(**valid(Ctx(tmp_path / fname)))
        except Exception as exc:  # noqa: BLE001 - collect them all for one readable report
            failures.append(f"{fname}: {exc!r}")
    assert not failures, "\n".join(failures)


def test_every_public_callable_is_swept_or_exempt():
    exempt = {name for names in EXEMPT.values() for name in names}
    public = public_callables()
    missing = sorted(set(public) - set(SWEEP) - exempt)
    assert not missing, f"Public callables neither swept nor exempted (add them to SWEEP or EXEMPT): {missing}"
    unknown = sorted((set(SWEEP) | exempt) - set(public))
    assert not unknown, f"Table entries that are not public callables (renamed or removed?): {unknown}"
