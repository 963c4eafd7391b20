"""A reader's own data through the public API: no silent wrong answers, and no boilerplate between arrays and a model.

One test per silent case of the issue (the model's own input convention, mismatched split lengths, 0-255 floats, NaN
pixels, one-channel batches, classify at the fine-tuned resolution), then the reader's path: arrays or a folder of
image files to a dataset, cached features to loaders, a checkpoint to a ready model, a new text task from the bundled
reviews.
"""
from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import utils
from utils import adapt, augment

HALF = (0.5, 0.5, 0.5)
CPU = torch.device("cpu")


def _rng(seed=0):
    return np.random.default_rng(seed)


def _shapes(n: int, seed: int = 0, sizes=(20, 28)) -> tuple[list[np.ndarray], list[str]]:
    """Grayscale uint8 discs and squares of random sizes (a tiny task a CNN learns in a few steps)."""
    rng = _rng(seed)
    images, labels = [], []
    for i in range(n):
        h, w = int(rng.integers(*sizes)), int(rng.integers(*sizes))
        img = np.zeros((h, w), np.uint8)
        yy, xx = np.mgrid[:h, :w]
        r = min(h, w) // 3
        if i % 2 == 0:
            img[(yy - h // 2) ** 2 + (xx - w // 2) ** 2 < r * r] = 255
        else:
            img[h // 2 - r:h // 2 + r, w // 2 - r:w // 2 + r] = 255
        images.append(img)
        labels.append("disc" if i % 2 == 0 else "square")
    return images, labels


# --- 1. The model's own input convention, on every path ---------------------------------------------------------------------
LITE0 = utils.DataConfig(HALF, HALF, 224, "bicubic", 0.875)


@pytest.mark.parametrize("make", [
    lambda: utils.create_backbone("efficientnet_lite0", pretrained=False),
    lambda: utils.load_efficientnet_lite0(pretrained=False),  # a timm model without model.data_config: timm's cfg
    lambda: copy.deepcopy(utils.load_efficientnet_lite0(pretrained=False)),
    lambda: utils.replace_head(utils.load_efficientnet_lite0(pretrained=False), 3),
    lambda: utils.replace_head(copy.deepcopy(utils.create_backbone("efficientnet_lite0", pretrained=False)), 3, dropout=0.2),
], ids=["create_backbone", "load_efficientnet_lite0", "deepcopy", "replace_head", "deepcopy+replace_head"])
def test_bundled_model_reports_its_own_convention_not_imagenet_defaults(make):
    assert utils.data_config(make()) == LITE0


def test_timm_and_torchvision_conventions_match_their_libraries():
    import timm

    model = timm.create_model("resnet18", pretrained=False)  # built directly, not through create_backbone
    ref = timm.data.resolve_data_config({}, model=model)
    cfg = utils.data_config(model)
    assert (cfg.mean, cfg.std, cfg.input_size, cfg.interpolation, cfg.crop_pct) == (
        ref["mean"], ref["std"], ref["input_size"][-1], ref["interpolation"], ref["crop_pct"])
    assert utils.create_backbone("torchvision/resnet18", pretrained=False).data_config.crop_pct == 0.875  # 224 / 256


def test_a_model_without_a_convention_is_an_error_not_imagenet():
    with pytest.raises(ValueError, match="carries no input convention.*create_backbone"):
        utils.data_config(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()))


def test_preprocess_follows_timm_resolve_data_config_and_create_transform():
    import timm
    from PIL import Image

    model = utils.create_backbone("efficientnet_lite0", pretrained=False)
    timm_tf = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))  # Resize 256 bicubic, crop 224
    for name in ("chelsea", "coffee"):
        photo = utils.load_photo(name)
        ours, theirs = utils.preprocess(photo, model), timm_tf(Image.fromarray(photo))[None]
        assert ours.shape == theirs.shape == (1, 3, 224, 224)
        assert (ours - theirs).abs().mean() < 0.01  # PIL works in uint8, torchvision in float: rounding only
    # the crop is honoured: a 0.875 crop of a centred bright square keeps a larger bright share than a full resize
    square = np.zeros((64, 64, 3), np.uint8)
    square[16:48, 16:48] = 255
    full = utils.preprocess(square, utils.DataConfig(HALF, HALF, 32, "bilinear", None))
    cropped = utils.preprocess(square, utils.DataConfig(HALF, HALF, 32, "bilinear", 0.5))
    assert cropped.mean() > full.mean() + 0.5


# --- 2. Split helpers ------------------------------------------------------------------------------------------------------
def test_split_indices_refuses_labels_and_groups_of_different_lengths():
    with pytest.raises(ValueError, match="labels and groups must have the same length: 10 vs 6"):
        utils.split_indices([0, 1] * 5, groups=list("abcdef"))
    idx = utils.split_indices([0, 1] * 10, groups=[i // 2 for i in range(20)])
    assert sorted(np.concatenate(list(idx.values())).tolist()) == list(range(20))  # every row lands somewhere


# --- 3-5. 0-255 floats, NaN pixels, one-channel batches ------------------------------------------------------------------------
@pytest.mark.parametrize("build", [
    lambda x: utils.ImageTensorDataset(x, [0, 1], ["a", "b"], normalize=False),
    lambda x: utils.images_from_arrays(list(x.numpy().transpose(0, 2, 3, 1)), [0, 1], ["a", "b"], normalize=False),
    lambda x: utils.normalize(x, utils.DataConfig(HALF, HALF, 8)),
    lambda x: utils.to_tensor(x[0]),
])
def test_image_builders_refuse_0_255_floats(build):
    with pytest.raises(ValueError, match="0-255 values: divide by 255"):
        build(torch.rand(2, 3, 8, 8) * 255)


def test_nan_pixels_are_refused_before_they_become_nan_probabilities():
    model = utils.small_cnn(2, (4,), input_size=8, seed=0)
    photo = _rng().random((8, 8, 3))
    photo[2, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        utils.classify(model, photo, labels=["a", "b"])
    x = torch.rand(2, 3, 8, 8)
    x[1, 0, 0, 0] = math.nan
    for call in (lambda: utils.ImageTensorDataset(x, [0, 1], ["a", "b"], normalize=model),
                 lambda: utils.normalize(x, model), lambda: utils.to_tensor(x)):
        with pytest.raises(ValueError, match="NaN or inf"):
            call()


def test_one_channel_batches_are_not_broadcast_to_three():
    cfg = utils.DataConfig((0.1, 0.5, 0.9), HALF, 8)
    with pytest.raises(ValueError, match=r"must have 3 channels in dim 1; got shape \(2, 1, 8, 8\).*Grayscale"):
        utils.normalize(torch.rand(2, 1, 8, 8), cfg)
    with pytest.raises(ValueError, match="3 channels"):
        utils.ImageTensorDataset(torch.rand(2, 1, 8, 8), [0, 1], ["a", "b"])
    single = torch.rand(3, 8, 8)  # one image keeps its shape: no silent batch dimension
    assert utils.normalize(single, cfg).shape == (3, 8, 8)
    gray = (_rng().random((8, 8)) * 255).astype(np.uint8)  # an explicit grayscale *array* becomes RGB, by documentation
    x = utils.to_tensor(gray)
    assert x.shape == (1, 3, 8, 8) and torch.equal(x[0, 0], x[0, 2])


# --- 6. classify at the resolution the model was fine-tuned at -----------------------------------------------------------
def _train_briefly(model, ds, steps: int = 6):
    loader = utils.make_loader(ds, 8, shuffle=True, device="cpu")
    utils.fit(model, loader, epochs=max(1, steps // len(loader)), lr=3e-3, device=CPU, progress=False)
    return model.eval()


@pytest.fixture(scope="module")
def shapes_model():
    """A SmallCNN built for 32 px but fine-tuned on the reader's 16-px images."""
    images, labels = _shapes(24)
    model = utils.small_cnn(2, (8, 16), input_size=32, seed=0)
    ds = utils.images_from_arrays(images, labels, model=model, size=16)
    return _train_briefly(model, ds, 12), ds, images


def test_training_records_the_resolution_and_classify_agrees_with_predict(shapes_model):
    model, ds, images = shapes_model
    assert model.fine_tuned_at == 16 and model.data_config.input_size == 16 and model.data_config.crop_pct == 1.0
    probs, _ = utils.predict(model, utils.make_loader(ds, 8, device="cpu"))
    for i, img in enumerate(images[:8]):  # the raw, non-square grayscale arrays, as the reader has them
        (label, p), = utils.classify(model, img, labels=ds.classes, k=1)
        assert label == ds.classes[int(probs[i].argmax())] and p == pytest.approx(float(probs[i].max()), abs=1e-5)
    # control: at the size the model was built for, the same images give other probabilities (the test can fail)
    at_32 = model(utils.preprocess(images[0], utils.DataConfig(HALF, HALF, 32))).softmax(-1)[0]
    assert not torch.allclose(at_32, probs[0], atol=1e-3)


def test_fine_tuning_a_pretrained_backbone_at_32_px_changes_its_convention():
    model = utils.create_backbone("efficientnet_lite0", pretrained=False, num_classes=2)
    model.train()
    model(torch.rand(2, 3, 32, 32))  # one training forward at 32 px
    assert utils.data_config(model) == utils.DataConfig(HALF, HALF, 32, "bicubic", 1.0) and model.fine_tuned_at == 32
    with torch.no_grad():  # evaluation and non-square inputs leave it alone
        model.eval()(torch.rand(1, 3, 48, 48))
    model.train()(torch.rand(2, 3, 32, 40))
    assert model.data_config.input_size == 32


def test_convention_survives_save_model_and_load_model(shapes_model, tmp_path):
    model, ds, images = shapes_model
    path = utils.save_model(model, tmp_path / "shapes.safetensors", classes=ds.classes, meta={"note": "16 px"})
    back = utils.load_model(path)
    assert back.data_config == model.data_config and back.fine_tuned_at == 16 and back.classes == ds.classes
    assert utils.read_metadata(path)["note"] == "16 px"
    assert utils.classify(back, images[3], k=2) == utils.classify(model, images[3], labels=ds.classes, k=2)
    fresh = utils.small_cnn(2, (8, 16), input_size=32)  # the low-level pair restores the convention too
    utils.load_checkpoint(fresh, path)
    assert fresh.data_config.input_size == 16 and fresh.classes == ds.classes


def test_classify_refuses_to_guess_class_names():
    model = utils.small_cnn(3, (4,), input_size=8, seed=0)
    photo = _rng().integers(0, 256, (8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="3 outputs and no class names: pass labels"):
        utils.classify(model, photo)  # never ImageNet's first three names
    with pytest.raises(ValueError, match="2 names but the model has 3 outputs"):
        utils.classify(model, photo, labels=["a", "b"])
    assert model.training is True  # classify restores the mode it found


# --- Boilerplate removed: arrays, folders, features, checkpoints, text tasks ------------------------------------------------
def test_images_from_arrays_takes_every_common_form():
    model = utils.small_cnn(2, (4,), input_size=16, seed=0)
    from PIL import Image

    gray_u8 = (_rng().random((10, 14)) * 255).astype(np.uint8)
    forms = [gray_u8, gray_u8[..., None], np.repeat(gray_u8[..., None], 3, -1), gray_u8 / 255.0,
             Image.fromarray(gray_u8), torch.from_numpy(gray_u8)[None].expand(3, -1, -1)]
    ds = utils.images_from_arrays(forms, ["x"] * len(forms), ["x", "y"], model=model)
    assert ds.images.shape == (len(forms), 3, 16, 16) and ds.classes == ["x", "y"]
    for i in range(1, len(forms)):
        assert torch.allclose(ds.images[i], ds.images[0], atol=1e-6), f"form {i} differs"
    x, y = ds[0]
    assert torch.allclose(x, (ds.images[0] - 0.5) / 0.5) and y == 0  # the model's normalisation, applied on loading
    assert ds.data_config == utils.DataConfig(HALF, HALF, 16, "bilinear", 1.0)
    stacked = np.stack([gray_u8] * 3)  # (N, H, W), and (N, H, W, 3) / (N, 3, H, W) batches
    for batch in (stacked, np.repeat(stacked[..., None], 3, -1), np.repeat(stacked[:, None], 3, 1)):
        assert torch.allclose(utils.images_from_arrays(batch, [0, 1, 0], ["x", "y"], model=model).images[1], ds.images[0])


def test_images_from_arrays_needs_a_convention_or_an_explicit_no():
    with pytest.raises(TypeError, match="Pass model=.*or normalize=False"):
        utils.images_from_arrays([np.zeros((8, 8), np.uint8)], [0], ["a"])
    raw = utils.images_from_arrays([np.zeros((8, 8), np.uint8)], ["a"], normalize=False)
    assert raw.normalize is None and raw.images.shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="Pass size="):
        utils.images_from_arrays([np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8)], [0, 0], ["a"], normalize=False)
    with pytest.raises(ValueError, match=r"labels has names not in classes: \['c'\]"):
        utils.images_from_arrays([np.zeros((8, 8), np.uint8)], ["c"], ["a", "b"], normalize=False)


def test_make_loader_notices_forgotten_normalisation():
    x = torch.rand(4, 3, 8, 8)
    with pytest.warns(UserWarning, match="raw \\[0, 1\\] pixels: nothing normalises them"):
        utils.make_loader(utils.ImageTensorDataset(x, [0, 1, 0, 1], ["a", "b"]), 2, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        utils.make_loader(utils.ImageTensorDataset(x, [0, 1, 0, 1], ["a", "b"], normalize=False), 2, device="cpu")
        utils.make_loader(utils.ImageTensorDataset(x, [0, 1, 0, 1], ["a", "b"], normalize=utils.DataConfig(HALF, HALF, 8)),
                          2, device="cpu")


def test_normalisation_is_kept_or_replaced_never_doubled_or_dropped():
    cfg = utils.DataConfig(HALF, HALF, 16)
    ds = utils.ImageTensorDataset(torch.rand(4, 3, 16, 16), [0, 1, 0, 1], ["a", "b"], normalize=cfg)
    flip = augment.with_transform(ds, lambda img: img.flip(-1))  # a transform that does not normalise: keep ours
    assert torch.allclose(flip[0][0], ((ds.images[0].flip(-1)) - 0.5) / 0.5)
    own = augment.with_transform(ds, augment.augmentation("none", cfg))  # one that does: use its, once
    assert own.normalize is None and torch.allclose(own[0][0], (ds.images[0] - 0.5) / 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="normalise again"):
        ds.with_options(transform=augment.augmentation("none", cfg))
    shifted = adapt.shifted(ds, "invert")
    assert shifted.normalize == cfg and torch.allclose(shifted[0][0], ((1 - ds.images[0]) - 0.5) / 0.5)


def test_image_folder_gives_the_same_dataset_as_the_arrays(tmp_path):
    from PIL import Image

    images, labels = _shapes(8, seed=1)
    for split, rows in (("train", range(6)), ("val", range(6, 8))):
        for i in rows:
            folder = tmp_path / split / labels[i]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(folder / f"{i}.png")
    (tmp_path / "train" / "triangle").mkdir()  # a class with no val images must not shift the val labels
    Image.fromarray(images[0]).save(tmp_path / "train" / "triangle" / "t.png")
    (tmp_path / "train" / "notes.txt").write_text("not an image")
    model = utils.small_cnn(3, (4,), input_size=16, seed=0)
    val = utils.image_folder(tmp_path, "val", model=model)
    assert val.classes == ["disc", "square", "triangle"] and val.labels.tolist() == [0, 1]
    same = utils.images_from_arrays([images[6], images[7]], ["disc", "square"], val.classes, model=model)
    assert torch.equal(val.images, same.images) and val.normalize == same.normalize
    (tmp_path / "val" / "disc" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="Cannot read the image .*broken.png"):
        utils.image_folder(tmp_path, "val", model=model)


def test_feature_loaders_from_cached_features_in_one_call():
    x, y = torch.randn(10, 4), torch.arange(10) % 2
    train, val = utils.feature_loaders(x, y, x[:6], y[:6], batch_size=4, seed=1)
    assert [b[0].shape[0] for b in train] == [4, 4, 2] and len(val.dataset) == 6
    assert torch.equal(torch.cat([b[0] for b in val]), x[:6])  # validation keeps its order
    order = torch.cat([b[1] for b in train])
    assert sorted(order.tolist()) == sorted(y.tolist())
    head = nn.Linear(4, 2)  # a head alone is one layer group, so it brings its own optimiser
    history = utils.fit(head, train, val, epochs=1, device=CPU, progress=False, optimizer=torch.optim.AdamW(head.parameters()))
    assert history.last["val_acc"] is not None
    assert len(utils.make_loader((x.numpy(), y.numpy()), 5, device="cpu")) == 2  # make_loader takes a pair too
    with pytest.raises(ValueError, match="train_x and val_x must have the same feature size: 4 vs 3"):
        utils.feature_loaders(x, y, x[:, :3], y)


def test_save_model_and_load_model_rebuild_backbones_and_small_cnns(tmp_path):
    from utils import smallcnn

    torch.manual_seed(0)
    effnet = utils.create_backbone("efficientnet_lite0", pretrained=False, num_classes=3)
    utils.replace_head(effnet, 3, dropout=0.1)
    back = utils.load_model(utils.save_model(effnet, tmp_path / "e.safetensors", classes=["a", "b", "c"]))
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(back(x), effnet.eval()(x), atol=1e-6) and back.backbone_name == "efficientnet_lite0"
    cnn = utils.small_cnn(4, (4, 8), input_size=16, seed=0)
    path = utils.save_model(cnn, tmp_path / "c.safetensors", classes=list("wxyz"))
    again, meta = smallcnn.load_small_cnn(path)  # the SmallCNN format is one format
    assert meta["classes"] == list("wxyz") and torch.equal(again(x[..., :16, :16]), cnn.eval()(x[..., :16, :16]))
    old = smallcnn.save_small_cnn(cnn, tmp_path / "old.safetensors", list("wxyz"))
    assert utils.load_model(old).classes == list("wxyz")
    plain = nn.Sequential(nn.Flatten(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match="Pass backbone='torchvision/<name>'"):
        utils.save_model(plain, tmp_path / "p.safetensors")


def test_damaged_checkpoints_name_the_file_and_the_fix(tmp_path):
    path = utils.save_model(utils.small_cnn(2, (4,), input_size=8), tmp_path / "m.safetensors", classes=["a", "b"])
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 3])
    for name in ("cut.safetensors",):
        with pytest.raises(ValueError, match=rf"{name} is not a readable safetensors checkpoint.*truncated.*re-save"):
            utils.load_model(tmp_path / name)
    with pytest.raises(TypeError, match=r"meta\['acc'\] is np.float32"):
        utils.save_checkpoint(utils.small_cnn(2, (4,)), tmp_path / "x.safetensors", meta={"acc": np.float32(0.5)})
    assert not (tmp_path / "x.safetensors").exists()


def test_review_task_builds_a_balanced_grouped_subjectivity_task():
    from utils import data

    task = {"objective": "plot", "subjective": ("fresh", "rotten")}
    parts = utils.review_task(task)
    assert list(parts) == ["train", "val", "test"]
    frame = data._review_rows(True)
    movie_of = dict(zip(frame["text"], frame["movie_name"]))
    movies = {s: {movie_of[t] for t in p.texts} for s, p in parts.items()}
    assert not movies["train"] & movies["val"] and not movies["train"] & movies["test"] and not movies["val"] & movies["test"]
    for s, p in parts.items():
        assert p.classes == ["objective", "subjective"]
        assert p.labels.bincount().tolist()[0] == p.labels.bincount().tolist()[1] > 200  # balanced
        assert max(map(len, p.texts)) <= 255  # plot paragraphs were cut into sentences
        lengths = np.array([len(t) for t in p.texts])
        med = [np.median(lengths[p.labels.numpy() == c]) for c in (0, 1)]
        assert abs(med[0] - med[1]) / max(med) < 0.15, f"{s}: length gives the class away ({med})"
    alone = utils.review_task(task, "val")
    assert alone.texts == parts["val"].texts and utils.review_task(task, "val", per_class=50).labels.bincount().tolist() == [50, 50]
    with pytest.raises(ValueError, match="Unknown category in classes\\['b'\\] 'reviews'; choose one of: fresh, rotten, plot"):
        utils.review_task({"a": "plot", "b": "reviews"})
