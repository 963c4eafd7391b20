"""Tests for utils.augment: pipelines end in the model's normalisation, digits are never flipped, wrappers, grid."""
import pickle

import pytest
import torch

from utils import augment
from utils.data import ImageTensorDataset
from utils.models import DataConfig

CFG = DataConfig((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 32)
IMAGENET = DataConfig((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 24)


def image(h=40, w=48):
    torch.manual_seed(0)
    return torch.rand(3, h, w)


@pytest.mark.parametrize("level", augment.LEVELS)
@pytest.mark.parametrize("domain", augment.DOMAINS)
def test_every_pipeline_gives_model_sized_normalised_tensors(level, domain):
    t = augment.augmentation(level, CFG, domain=domain)
    out = t(image())
    assert type(out) is torch.Tensor and out.dtype == torch.float32  # plain tensor, not a tv_tensor
    assert out.shape == (3, 32, 32)
    assert out.min() >= -1 - 1e-5 and out.max() <= 1 + 1e-5  # (x - 0.5) / 0.5 of [0, 1]


def test_none_is_deterministic_resize_crop_and_normalise():
    x = image(32, 32)
    out = augment.augmentation("none", CFG)(x)
    assert torch.allclose(out, (x - 0.5) / 0.5, atol=1e-6)
    assert torch.equal(out, augment.augmentation("none", CFG)(x))


def test_normalisation_follows_the_config_and_can_be_skipped():
    x = image(24, 24)
    out = augment.augmentation("none", IMAGENET)(x)
    mean, std = torch.tensor(IMAGENET.mean).view(3, 1, 1), torch.tensor(IMAGENET.std).view(3, 1, 1)
    assert torch.allclose(out, (x - mean) / std, atol=1e-5)
    raw = augment.augmentation("none", IMAGENET, normalize=False)(x)
    assert torch.allclose(raw, x, atol=1e-6)
    assert torch.allclose(augment.denormalize(out, IMAGENET), x, atol=1e-5)


def test_size_overrides_model_resolution_and_uint8_is_scaled():
    out = augment.augmentation("light", CFG, size=16, normalize=False)(torch.full((3, 20, 20), 255, dtype=torch.uint8))
    assert out.shape == (3, 16, 16) and out.max() <= 1.0


def test_light_is_random_but_seeded():
    t, x = augment.augmentation("light", CFG), image()
    torch.manual_seed(1)
    a = t(x)
    torch.manual_seed(1)
    b = t(x)
    c = t(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_digits_light_never_flips():
    """An asymmetric image (left half bright): light digit augmentation keeps the bright side on the left."""
    x = torch.zeros(3, 32, 32)
    x[:, :, :12] = 1.0
    t = augment.augmentation("light", CFG, domain="digits", normalize=False)
    for seed in range(20):
        torch.manual_seed(seed)
        out = t(x)
        assert out[:, :, :16].mean() > out[:, :, 16:].mean()


def test_flip_level_does_flip_sometimes():
    x = torch.zeros(3, 32, 32)
    x[:, :, :12] = 1.0
    t = augment.augmentation("flip", CFG, domain="digits", normalize=False)
    torch.manual_seed(0)
    assert any(t(x)[:, :, 16:].mean() > t(x)[:, :, :16].mean() for _ in range(20))


def test_heavy_changes_more_than_light():
    x = image(32, 32)
    torch.manual_seed(0)
    dist = {lv: sum((augment.augmentation(lv, CFG, normalize=False)(x) - x).abs().mean().item() for _ in range(10))
            for lv in ("light", "heavy")}
    assert dist["heavy"] > dist["light"]


def test_pipeline_pickles_for_dataloader_workers():
    t = augment.augmentation("heavy", CFG)
    assert pickle.loads(pickle.dumps(t))(image()).shape == (3, 32, 32)


def test_takes_a_model_for_its_data_config():
    model = torch.nn.Linear(2, 2)
    model.data_config = CFG
    assert augment.augmentation("none", model)(image()).shape == (3, 32, 32)


@pytest.mark.parametrize("kwargs,err,match", [
    ({"level": "medium"}, ValueError, r"Unknown augmentation level 'medium'; choose one of: none, light, heavy, flip"),
    ({"level": "light", "domain": "x-ray"}, ValueError, r"Unknown domain .*'x-ray'; choose one of: photo, digits"),
    ({"level": "light", "size": 4}, ValueError, r"size must be an integer >= 8, got 4\."),  # out of range
    ({"level": "light", "size": 3.5}, TypeError, r"size must be an integer, got 3\.5 \(float\)")],  # wrong type
    ids=["level", "domain", "size-too-small", "size-float"])
def test_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        augment.augmentation(cfg=CFG, **kwargs)


def test_bad_config_type():
    with pytest.raises(TypeError, match="DataConfig"):
        augment.augmentation("light", {"mean": 0.5})


def test_with_transform_shares_images_and_applies_transform():
    ds = ImageTensorDataset(torch.rand(6, 3, 20, 20), torch.arange(6) % 2, ["a", "b"])
    aug = augment.with_transform(ds, augment.augmentation("none", CFG))
    assert aug.images is ds.images and ds.transform is None
    x, y = aug[3]
    assert x.shape == (3, 32, 32) and y == 1
    with pytest.raises(TypeError, match="OnTheFly"):
        augment.with_transform(torch.utils.data.TensorDataset(torch.rand(2, 3, 4, 4)), None)


def test_with_transform_on_a_normalised_dataset_normalises_once():
    """A dataset that normalises itself (e.g. utils.digit_task) given a pipeline that ends in the same normalisation:
    the model must see (x - mean) / std, not that applied twice."""
    x = torch.rand(2, 3, 32, 32)
    ds = ImageTensorDataset(x, [0, 1], ["a", "b"], normalize=CFG)
    assert torch.allclose(ds[1][0], (x[1] - 0.5) / 0.5)
    aug = augment.with_transform(ds, augment.augmentation("none", CFG))
    assert torch.allclose(aug[1][0], (x[1] - 0.5) / 0.5, atol=1e-6)
    assert torch.equal(aug.labels, ds.labels) and aug.classes == ds.classes


def test_on_the_fly_wraps_any_dataset():
    base = torch.utils.data.TensorDataset(torch.rand(5, 3, 20, 20), torch.arange(5))
    ds = augment.OnTheFly(base, augment.augmentation("light", CFG))
    assert len(ds) == 5 and ds[2][0].shape == (3, 32, 32) and ds[2][1] == 2
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert batch[0].shape == (5, 3, 32, 32)
    with pytest.raises(TypeError):
        augment.OnTheFly(base, "light")


def test_gallery_and_grid():
    gallery = augment.transform_gallery(32)
    assert "horizontal flip" in gallery
    imgs, titles = augment.augment_grid(image(32, 32), gallery, n=2)
    assert len(imgs) == len(titles) == 3 * len(gallery)
    flip_at = list(gallery).index("horizontal flip") * 3
    assert torch.allclose(imgs[flip_at + 1], image(32, 32).flip(-1))
    assert all(i.min() >= 0 and i.max() <= 1 for i in imgs)


@pytest.mark.parametrize("args", [(torch.rand(32, 32), {"a": None}, 2), (torch.rand(3, 8, 8), {}, 2),
                                  (torch.rand(3, 8, 8), {"a": lambda x: x}, 0)])
def test_grid_bad_inputs(args):
    with pytest.raises(ValueError):
        augment.augment_grid(*args)
