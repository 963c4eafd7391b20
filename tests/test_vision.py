"""utils.vision: images in every common form become correctly normalised model inputs; bad images are named."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import utils
from utils import vision


@pytest.mark.parametrize("name", utils.PHOTOS)
def test_every_bundled_photo_loads_as_rgb_uint8(name):
    img = utils.load_photo(name)
    assert img.ndim == 3 and img.shape[-1] == 3 and img.dtype == np.uint8 and min(img.shape[:2]) >= 200


def test_unknown_photo_lists_the_bundled_ones():
    with pytest.raises(ValueError, match=r"Unknown photo 'dog'.*chelsea, coffee"):
        utils.load_photo("dog")


def test_to_tensor_from_uint8_array_pil_and_rgba():
    from PIL import Image

    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = utils.to_tensor(arr)
    assert x.shape == (1, 3, 5, 7) and x.dtype == torch.float32
    assert torch.allclose(x[0].permute(1, 2, 0) * 255, torch.from_numpy(arr).float())
    assert torch.equal(utils.to_tensor(Image.fromarray(arr)), x)
    rgba = np.concatenate([arr, np.full((5, 7, 1), 9, np.uint8)], axis=-1)
    assert torch.equal(utils.to_tensor(rgba), x)  # alpha dropped


def test_to_tensor_keeps_float_batches():
    batch = torch.rand(2, 3, 4, 4)
    assert torch.equal(utils.to_tensor(batch), batch) and utils.to_tensor(batch[0]).shape == (1, 3, 4, 4)
    assert torch.equal(utils.to_tensor((batch * 255).to(torch.uint8)), (batch * 255).to(torch.uint8).float() / 255)


@pytest.mark.parametrize("image, match", [
    (np.zeros((8, 8, 2), np.uint8), r"NumPy image must be \(H, W\) grayscale or \(H, W, 3\) RGB.*images_from_arrays"),
    (np.zeros((3, 8, 8), np.uint8), r"NumPy image must be \(H, W\) grayscale .*Channels first\? Use image\.transpose"),
    (torch.rand(8, 8), r"3 colour channels first"),
    (torch.rand(4, 8, 8), r"3 colour channels first"),
    (torch.rand(8, 8, 3), r"Channels-last arrays need \.permute\(2, 0, 1\)"),
    (torch.rand(1, 8, 8), r"grayscale needs \.expand\(3, -1, -1\)"),
])
def test_to_tensor_rejects_wrong_shapes(image, match):
    with pytest.raises(ValueError, match=match):
        utils.to_tensor(image)


def test_to_tensor_accepts_a_grayscale_array_as_rgb():
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 12
    x = utils.to_tensor(gray)
    assert x.shape == (1, 3, 4, 5) and x.dtype == torch.float32
    expected = torch.from_numpy(gray).float() / 255
    assert all(torch.equal(x[0, c], expected) for c in range(3))  # the one channel repeated, scaled to [0, 1]
    assert torch.equal(utils.to_tensor(gray[..., None]), x)  # (H, W, 1) too


def test_to_tensor_rejects_integer_tensors_other_than_uint8():
    with pytest.raises(TypeError, match=r"uint8 \(0-255\) or float \(0-1\); got torch\.int32"):
        utils.to_tensor(torch.zeros(3, 4, 4, dtype=torch.int32))


@pytest.mark.parametrize("low, high, hint", [(-0.5, 0.5, r"look normalised already: pass raw \[0, 1\] images"),
                                             (0.0, 255.0, r"look like 0-255 values: divide by 255")])
def test_to_tensor_rejects_float_outside_unit_range(low, high, hint):
    x = torch.linspace(low, high, 48).view(3, 4, 4)
    with pytest.raises(ValueError, match=rf"image must be floats in \[0, 1\]; these span \[{low:.2f}, {high:.2f}\]\. They {hint}"):
        utils.to_tensor(x)


def test_to_tensor_rejects_other_types():
    with pytest.raises(TypeError, match="got list"):
        utils.to_tensor([[1, 2], [3, 4]])


def test_normalize_uses_the_model_statistics(effnet):
    x = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)
    assert utils.normalize(x, effnet.data_config).flatten().tolist() == [-1.0, 0.0, 1.0]
    imagenet = utils.DataConfig((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224)
    assert torch.allclose(utils.normalize(x, imagenet).flatten(), torch.tensor([-0.485 / 0.229, 0.044 / 0.224, 0.594 / 0.225]))


def test_preprocess_resizes_the_short_side_and_centre_crops(effnet):
    img = utils.load_photo("chelsea")  # 300 x 451
    x = utils.preprocess(img, effnet)
    assert x.shape == (1, 3, 224, 224) and -1 <= x.min() and x.max() <= 1
    assert utils.preprocess(img, effnet.data_config, size=64).shape == (1, 3, 64, 64)
    stripe = np.zeros((20, 60, 3), np.uint8)
    stripe[:, 20:40] = 255  # only the middle third is white: a centre crop keeps exactly that
    out = utils.preprocess(stripe, utils.DataConfig((0.0,) * 3, (1.0,) * 3, 20))
    assert out.shape == (1, 3, 20, 20) and out.mean() > 0.95


@pytest.mark.parametrize("name", ["chelsea", "coffee", "astronaut"])
def test_preprocess_matches_timms_evaluation_transform(effnet, name):
    """The chapter says utils.preprocess is timm's eval transform (resize to size / crop_pct with the model's
    interpolation, centre crop, normalise); check it against timm, and that a near miss is clearly further away."""
    import dataclasses

    import timm
    from PIL import Image

    img = utils.load_photo(name)
    theirs = timm.data.create_transform(**timm.data.resolve_data_config({}, model=effnet))(Image.fromarray(img))
    ours = utils.preprocess(img, effnet)[0]
    assert ours.shape == theirs.shape == (3, 224, 224)
    gap = (ours - theirs).abs().mean()
    cfg = effnet.data_config
    for miss in (dataclasses.replace(cfg, interpolation="bilinear"), dataclasses.replace(cfg, crop_pct=1.0)):
        assert gap < (utils.preprocess(img, miss)[0] - theirs).abs().mean() / 2  # PIL vs tensor resampling only


def test_topk_orders_labels_by_probability():
    probs = torch.tensor([0.1, 0.6, 0.3])
    assert vision.topk(probs, ["a", "b", "c"], k=2) == [("b", pytest.approx(0.6)), ("c", pytest.approx(0.3))]
    assert len(vision.topk(probs, ["a", "b", "c"], k=10)) == 3
    with pytest.raises(ValueError, match=r"one example's probabilities \(1-D\)"):
        vision.topk(probs.view(1, 3), ["a", "b", "c"])


def test_classify_with_custom_labels_and_a_batch_error():
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2))
    with torch.no_grad():
        model[2].weight.copy_(torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]]))
        model[2].bias.zero_()
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    with pytest.raises(ValueError, match="carries no input convention"):  # no silent ImageNet default
        utils.classify(model, red, labels=["red", "not red"])
    model.data_config = utils.DataConfig((0.5,) * 3, (0.5,) * 3, 8)
    (label, p), _ = utils.classify(model, red, labels=["red", "not red"], k=2)
    assert label == "red" and p == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item(), abs=1e-4)  # logits (1, -1)
    blue = np.roll(red, 2, axis=-1)
    assert utils.classify(model, blue, labels=["red", "not red"], k=1)[0][0] == "not red"
    with pytest.raises(ValueError, match=r"classify\(\) takes one image; got a batch of 2"):
        utils.classify(model, torch.rand(2, 3, 8, 8), labels=["a", "b"])
