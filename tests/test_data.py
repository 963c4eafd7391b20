"""utils.data: fixed, seeded, disjoint splits of the bundled datasets, and the dataset classes."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

import utils
from utils import data

SPLITS = ("train", "val", "test")


def _hashes(images: torch.Tensor) -> list[str]:
    q = (images[:, 0] * 255).round().to(torch.uint8).numpy()  # one channel, quantised: robust to float noise
    return [hashlib.sha1(img.tobytes()).hexdigest() for img in q]


def _assert_disjoint(parts: dict[str, set]) -> None:
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not parts[a] & parts[b], f"{a} and {b} share {len(parts[a] & parts[b])} items"


# --- split_indices / subsample_per_class -------------------------------------------------------------------------
def test_split_indices_is_stratified_disjoint_complete_and_fixed():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    s = utils.split_indices(labels)
    _assert_disjoint({k: set(v.tolist()) for k, v in s.items()})
    assert sorted(np.concatenate(list(s.values())).tolist()) == list(range(100))
    assert np.bincount(labels[s["train"]]).tolist() == [30, 18, 12]  # 60 % of each class
    assert np.bincount(labels[s["val"]]).tolist() == [10, 6, 4]
    again = utils.split_indices(labels)
    assert all(np.array_equal(s[k], again[k]) for k in SPLITS)
    other = utils.split_indices(labels, seed=1)
    assert not np.array_equal(s["train"], other["train"])


def test_split_indices_by_group_keeps_each_group_in_one_split():
    groups = [f"movie{i // 4}" for i in range(200)]  # 50 groups of 4
    labels = np.arange(200) % 2
    s = utils.split_indices(labels, groups=groups)
    by_split = {k: {groups[i] for i in v} for k, v in s.items()}
    _assert_disjoint(by_split)
    assert [len(by_split[k]) for k in SPLITS] == [30, 10, 10]
    assert sum(len(v) for v in s.values()) == 200


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.6, 0.3, 0.3), (0.8, 0.2, 0.0), (1.2, -0.1, -0.1)])
def test_split_indices_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="three positive numbers summing to 1"):
        utils.split_indices([0, 1] * 10, fractions=fractions)


def test_subsample_per_class_takes_k_of_each_class():
    labels = np.repeat([0, 1, 2], [10, 10, 3])
    idx = utils.subsample_per_class(labels, 4)
    assert np.bincount(labels[idx]).tolist() == [4, 4, 3]  # a class with fewer keeps all it has
    assert np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, utils.subsample_per_class(labels, 4))
    assert np.array_equal(utils.subsample_per_class(labels, None), np.arange(23))


@pytest.mark.parametrize("k", [0, -3])
def test_subsample_per_class_rejects_non_positive_k(k):
    with pytest.raises(ValueError, match=rf"per_class must be an integer >= 1, got {k}\b"):
        utils.subsample_per_class([0, 1, 1], k)


@pytest.mark.parametrize("split", ["training", "valid", "Test", ""])
def test_unknown_split_lists_the_valid_ones(split):
    with pytest.raises(ValueError, match=r"Unknown split .*train, val, test"):
        utils.lfw_faces(split)


# --- dataset classes -----------------------------------------------------------------------------------------------
def test_image_tensor_dataset_applies_transform_and_subsets():
    images, labels = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 0, 1, 0, 1])
    ds = utils.ImageTensorDataset(images, labels, ["a", "b"], transform=lambda x: x * 0 + 7)
    x, y = ds[1]
    assert torch.all(x == 7) and y.item() == 1 and y.dtype == torch.long
    sub = ds.subset([1, 3])
    assert len(sub) == 2 and torch.equal(sub.images, images[[1, 3]]) and sub.classes == ["a", "b"]
    assert sub.transform is ds.transform


@pytest.mark.parametrize("shape, match", [((6, 8, 8), r"images must be a batch \(N, C, H, W\); got shape \(6, 8, 8\)"),
                                          ((6, 1, 8, 8), r"must have 3 channels in dim 1.*Grayscale\?"),
                                          ((6, 8, 8, 3), r"must have 3 channels in dim 1.*Channels-last input\?")])
def test_image_tensor_dataset_rejects_non_rgb_nchw(shape, match):
    with pytest.raises(ValueError, match=match):
        utils.ImageTensorDataset(torch.rand(*shape), torch.zeros(6), ["a"])


def test_image_tensor_dataset_rejects_label_count_mismatch():
    with pytest.raises(ValueError, match="images and labels must have the same length: 6 vs 5"):
        utils.ImageTensorDataset(torch.rand(6, 3, 4, 4), torch.zeros(5), ["a"])


def test_image_tensor_dataset_validates_values_and_labels():
    x = utils.ImageTensorDataset(torch.full((2, 3, 4, 4), 255, dtype=torch.uint8), [0, 1], ["a", "b"]).images
    assert x.dtype == torch.float32 and torch.all(x == 1)  # uint8 is scaled to [0, 1]
    with pytest.raises(ValueError, match="look like 0-255 values: divide by 255"):
        utils.ImageTensorDataset(torch.rand(2, 3, 4, 4) * 255, [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="look normalised already"):
        utils.ImageTensorDataset(torch.rand(2, 3, 4, 4) * 2 - 1, [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="NaN or inf"):
        utils.ImageTensorDataset(torch.full((2, 3, 4, 4), float("nan")), [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match=r"labels has class index 2 but there are only 2 classes \(indices 0\.\.1\)"):
        utils.ImageTensorDataset(torch.rand(2, 3, 4, 4), [0, 2], ["a", "b"])
    with pytest.raises(ValueError, match="must be >= 0"):
        utils.ImageTensorDataset(torch.rand(2, 3, 4, 4), [0, -1], ["a", "b"])
    with pytest.raises(TypeError, match="integer class indices"):
        utils.ImageTensorDataset(torch.rand(2, 3, 4, 4), [0.5, 1.0], ["a", "b"])
    labels = utils.ImageTensorDataset(torch.rand(2, 3, 4, 4), np.array([1.0, 0.0]), ["a", "b"]).labels
    assert labels.dtype == torch.long and labels.tolist() == [1, 0]


def test_image_tensor_dataset_normalises_after_the_transform():
    cfg = utils.DataConfig((0.5, 0.25, 0.0), (0.5, 0.25, 2.0), 4)
    images = torch.rand(4, 3, 4, 4)
    ds = utils.ImageTensorDataset(images, [0, 1, 0, 1], ["a", "b"], transform=lambda x: x.flip(-1), normalize=cfg)
    x, _ = ds[2]
    mean, std = torch.tensor(cfg.mean).view(3, 1, 1), torch.tensor(cfg.std).view(3, 1, 1)
    assert torch.allclose(x, (images[2].flip(-1) - mean) / std)  # transform on [0, 1], normalisation last
    assert torch.equal(ds.images, images)  # stored raw: caches and shifts see [0, 1] images
    sub = ds.subset([2, 3])
    assert sub.normalize == cfg and sub.transform is ds.transform and torch.equal(sub[0][0], x)


def test_with_options_swaps_transform_or_normalisation_and_keeps_the_rest():
    cfg = utils.DataConfig((0.5,) * 3, (0.5,) * 3, 4)
    images = torch.rand(3, 3, 4, 4)
    flip = lambda x: x.flip(-1)  # noqa: E731
    ds = utils.ImageTensorDataset(images, [0, 1, 0], ["a", "b"], transform=flip, normalize=cfg)
    raw = ds.with_options(transform=None, normalize=None)
    assert raw.transform is None and raw.normalize is None and torch.equal(raw[1][0], images[1])
    only_norm = ds.with_options(transform=None)
    assert only_norm.normalize == cfg and torch.allclose(only_norm[1][0], images[1] * 2 - 1)
    only_flip = ds.with_options(normalize=None)
    assert only_flip.transform is flip and torch.equal(only_flip[1][0], images[1].flip(-1))
    assert ds.with_options().transform is flip and ds.with_options().normalize == cfg
    assert raw.images is images and raw.labels is ds.labels and raw.classes == ds.classes  # no copies
    assert ds.transform is flip and ds.normalize == cfg  # the original is unchanged


def test_text_dataset_items_and_subset():
    ds = utils.TextDataset(["good", "bad", "fine"], [1, 0, 1], ["neg", "pos"])
    text, label = ds[1]
    assert text == "bad" and label.item() == 0 and label.dtype == torch.long
    sub = ds.subset(np.array([2, 0]))
    assert sub.texts == ["fine", "good"] and sub.labels.tolist() == [1, 1]
    with pytest.raises(ValueError, match="3 texts but 2 labels"):
        utils.TextDataset(["a", "b", "c"], [0, 1], ["x", "y"])


# --- bundled datasets --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist_raw():
    return {s: utils.mnist_digits(s, image_size=None) for s in SPLITS}


def test_mnist_has_500_per_class_in_disjoint_stratified_splits(mnist_raw):
    counts = sum(np.bincount(mnist_raw[s].labels.numpy(), minlength=10) for s in SPLITS)
    assert counts.tolist() == [500] * 10
    assert [len(mnist_raw[s]) for s in SPLITS] == [3000, 1000, 1000]
    assert np.bincount(mnist_raw["val"].labels.numpy()).tolist() == [100] * 10
    hashes = {s: set(_hashes(mnist_raw[s].images)) for s in SPLITS}
    _assert_disjoint(hashes)
    assert mnist_raw["train"].classes == [str(d) for d in range(10)]


def test_mnist_split_is_identical_across_calls(mnist_raw):
    again = utils.mnist_digits("test", image_size=None)
    assert torch.equal(again.images, mnist_raw["test"].images) and torch.equal(again.labels, mnist_raw["test"].labels)


def test_mnist_is_rgb_in_unit_range_at_the_asked_size(mnist_raw):
    x = mnist_raw["val"].images
    assert x.shape == (1000, 3, 28, 28) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.9
    assert torch.equal(x[:, 0], x[:, 2])  # grey digits copied to three channels
    small = utils.mnist_digits("val", image_size=32)
    assert small.images.shape == (1000, 3, 32, 32) and 0 <= small.images.min() and small.images.max() <= 1
    assert torch.equal(small.labels, mnist_raw["val"].labels)


def test_lfw_splits_are_disjoint_balanced_and_fixed():
    parts = {s: utils.lfw_faces(s, image_size=None) for s in SPLITS}
    assert [len(parts[s]) for s in SPLITS] == [120, 40, 40]
    assert sum(int(parts[s].labels.sum()) for s in SPLITS) == 100  # 100 faces, 100 non-faces
    assert parts["test"].labels.sum().item() == 20
    _assert_disjoint({s: set(_hashes(parts[s].images)) for s in SPLITS})
    assert parts["train"].images.shape[1:] == (3, 25, 25) and parts["train"].classes == ["non-face", "face"]
    again = utils.lfw_faces("val", image_size=None)
    assert torch.equal(again.images, parts["val"].images)
    assert utils.lfw_faces("val").images.shape == (40, 3, 64, 64)  # the default size


def test_digit_task_keeps_and_renumbers_the_digits():
    ds = utils.digit_task("train", [7, 2], image_size=16, per_class=4)
    assert ds.classes == ["7", "2"] and len(ds) == 8
    assert torch.bincount(ds.labels).tolist() == [4, 4]
    assert ds.normalize == utils.DataConfig((0.5,) * 3, (0.5,) * 3, 16)  # SmallCNN's and EfficientNet-Lite's convention
    assert ds.images.min() >= 0 and ds.images.max() <= 1  # stored raw ...
    raw = utils.mnist_digits("train", 16)
    x, y = ds[0]
    assert torch.allclose(x, ds.images[0] * 2 - 1)  # ... and served mapped to [-1, 1]
    assert x.min() >= -1 and x.max() <= 1 and x.min() < -0.9
    # every kept image is a real training digit, with the renumbered label of its digit
    for i in range(len(ds)):
        match = (raw.images == ds.images[i]).flatten(1).all(1).nonzero().flatten()
        assert len(match) >= 1 and ds.classes[ds.labels[i]] == str(raw.labels[match[0]].item())
    other = utils.digit_task("train", [7, 2], image_size=16, per_class=4, seed=1)
    assert not torch.equal(other.images, ds.images) and torch.equal(utils.digit_task("train", [7, 2], 16, 4).images, ds.images)
    cfg = utils.DataConfig((0.0,) * 3, (1.0,) * 3, 16)
    assert torch.equal(utils.digit_task("train", [7, 2], 16, 4, normalize=cfg)[0][0], ds.images[0])


def test_digit_task_without_per_class_keeps_the_whole_split():
    ds = utils.digit_task("test", [0, 1], image_size=16)
    full = utils.mnist_digits("test", 16)
    assert len(ds) == int(((full.labels == 0) | (full.labels == 1)).sum()) == 200


@pytest.mark.parametrize("digits", [[], [1, 1], [10], [0.5]])
def test_digit_task_rejects_bad_digits(digits):
    with pytest.raises(ValueError, match="digits must be distinct integers 0-9"):
        utils.digit_task("train", digits)


def test_rotten_tomatoes_is_split_by_movie():
    frame = data._rotten_tomatoes_frame()
    parts = {s: utils.rotten_tomatoes(s) for s in SPLITS}
    assert sum(len(p) for p in parts.values()) == len(frame) == 7403 + 5405  # fresh + rotten, no plot summaries
    idx = utils.split_indices(frame["label"].to_numpy(), groups=frame["movie_name"].tolist())
    movies = {s: set(frame["movie_name"].iloc[idx[s]]) for s in SPLITS}
    _assert_disjoint(movies)
    for s in SPLITS:  # the dataset holds exactly those rows
        assert parts[s].texts == frame["text"].iloc[idx[s]].tolist()
        assert parts[s].labels.tolist() == frame["label"].iloc[idx[s]].tolist()
    assert parts["train"].classes == ["rotten", "fresh"] and set(parts["val"].labels.tolist()) == {0, 1}
    assert utils.rotten_tomatoes("test").texts == parts["test"].texts


def test_image_folder_reads_a_class_tree(tmp_path):
    from PIL import Image

    for cls in ("cats", "dogs"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        Image.new("RGB", (5, 4), color=(255, 0, 0)).save(tmp_path / "train" / cls / "a.png")
    with pytest.raises(TypeError, match=r"Pass model=.*or normalize=False"):  # no silent un-normalised default
        utils.image_folder(tmp_path, "train")
    ds = utils.image_folder(tmp_path, "train", normalize=False, size=4)  # raw [0, 1] pixels, on purpose
    assert isinstance(ds, utils.ImageTensorDataset)  # held in memory, like images_from_arrays
    assert ds.classes == ["cats", "dogs"] and len(ds) == 2 and ds.labels.tolist() == [0, 1] and ds[1][1] == 1
    assert ds.images.shape == (2, 3, 4, 4)  # 5x4 resized and centre-cropped to a 4x4 square
    assert torch.all(ds.images[:, 0] == 1) and torch.all(ds.images[:, 1:] == 0)  # pure red survives, in [0, 1]


def test_image_folder_missing_split_folder_explains_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No folder .*val.*<class name>.*mnist_digits\(\)"):
        utils.image_folder(tmp_path, "val")


def test_torchvision_dataset_offline_points_to_bundled_data(tmp_path, monkeypatch):
    monkeypatch.setattr(utils.device, "is_online", lambda *a, **k: False)
    with pytest.raises(RuntimeError, match=r"cannot be downloaded \(no network\).*mnist_digits\(\)"):
        utils.torchvision_dataset("flowers102", tmp_path, "train")


def test_torchvision_dataset_unknown_name_lists_choices(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown online dataset .*'cifar10'; choose one of: oxford_pets, flowers102"):
        utils.torchvision_dataset("cifar10", tmp_path, "train")


def test_oxford_pets_validation_comes_from_trainval_never_from_test(tmp_path, monkeypatch):
    import torchvision.datasets

    made = []

    class FakePets(torch.utils.data.Dataset):  # stands in for the 800 MB download: 50 trainval, 30 test items
        def __init__(self, root, split, transform=None, download=False):
            made.append((split, download))
            self.split, self._labels = split, [i % 5 for i in range(50 if split == "trainval" else 30)]

        def __len__(self):
            return len(self._labels)

        def __getitem__(self, i):
            return (self.split, i), self._labels[i]

    monkeypatch.setattr(torchvision.datasets, "OxfordIIITPet", FakePets)
    parts = {s: utils.torchvision_dataset("oxford_pets", tmp_path, s) for s in SPLITS}
    assert made == [("trainval", False), ("trainval", False), ("test", False)]  # found on disk: no download
    items = {s: [parts[s][i][0] for i in range(len(parts[s]))] for s in SPLITS}
    assert {src for s in ("train", "val") for src, _ in items[s]} == {"trainval"}
    assert {src for src, _ in items["test"]} == {"test"} and len(items["test"]) == 30  # the official test set, whole
    _assert_disjoint({s: set(items[s]) if s != "test" else {("test-set", i) for _, i in items[s]} for s in SPLITS})
    assert len(items["train"]) + len(items["val"]) == 50 and len(items["val"]) == 10  # an 80/20 split of trainval
    assert np.bincount([parts["val"][i][1] for i in range(10)]).tolist() == [2] * 5  # stratified
    again = utils.torchvision_dataset("oxford_pets", tmp_path, "val")
    assert [again[i][0] for i in range(len(again))] == items["val"]


def _text_splits(n: int = 40) -> dict:
    texts = [f"review {i}" for i in range(n)]
    labels = [0] * (n * 3 // 4) + [1] * (n - n * 3 // 4)  # unbalanced, as the review splits are
    return {s: utils.TextDataset(texts, labels, ["rotten", "fresh"]) for s in utils.SPLITS}


def test_few_labels_balances_val_and_test_and_draws_per_class_and_seed():
    task = utils.few_labels(_text_splits(), labels=[2, 5], seeds=3, val_per_class=4, test_per_class=6)
    assert np.bincount(task.val.labels.numpy()).tolist() == [4, 4]
    assert np.bincount(task.test.labels.numpy()).tolist() == [6, 6] and task.majority == 0.5
    assert sorted(task.draws) == [(n, s) for n in (2, 5) for s in range(3)]
    for (n, s), idx in task.draws.items():
        assert np.bincount(task.train.labels[idx].numpy()).tolist() == [n, n]
        assert np.array_equal(idx, utils.subsample_per_class(task.train.labels, n, seed=s))  # the same draw as by hand
    assert not np.array_equal(task.draws[5, 0], task.draws[5, 1])  # seeds draw different examples


def test_few_labels_majority_is_the_test_sets_chance_rate():
    task = utils.few_labels(_text_splits(), labels=[2], seeds=1)  # the whole, unbalanced test split
    assert len(task.test) == 40 and task.majority == 0.75


def test_few_labels_names_what_is_missing():
    with pytest.raises(TypeError, match="keys"):
        utils.few_labels({"train": _text_splits()["train"]}, labels=[2], seeds=1)
    with pytest.raises(TypeError, match="labels must be a list"):
        utils.few_labels(_text_splits(), labels=16, seeds=1)
