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


# --- strength knob, automatic policies, MixUp/CutMix collate, flip TTA --------------------------------------------
def test_strength_zero_is_none_and_outputs_stay_in_range():
    assert augment.strength(0) is None
    for domain in augment.DOMAINS:
        out = augment.strength(0.7, domain, size=24)(image(32, 32))
        assert out.min() >= 0 and out.max() <= 1
    assert augment.strength(0.7, "photo", size=24)(image(32, 32)).shape == (3, 24, 24)


def test_strength_grows_with_m_and_digits_never_flip():
    x = torch.zeros(3, 32, 32)
    x[:, 8:24, 4:14] = 1.0  # a bar on the left
    dist = {}
    for m in (0.25, 1.0):
        t = augment.strength(m, "digits")
        torch.manual_seed(0)
        outs = [t(x) for _ in range(30)]
        dist[m] = sum((o - x).abs().mean().item() for o in outs)
        if m == 0.25:  # light: shifts of at most 5 % cannot move the bar past the centre
            assert all(o[:, :, :16].sum() > o[:, :, 16:].sum() for o in outs)
    assert dist[1.0] > dist[0.25]


@pytest.mark.parametrize("m,domain,size,err", [(1.5, "digits", None, ValueError), ("light", "digits", None, TypeError),
                                               (0.5, "photo", None, ValueError), (0.5, "x-ray", None, ValueError)])
def test_strength_bad_arguments(m, domain, size, err):
    with pytest.raises(err):
        augment.strength(m, domain, size)


@pytest.mark.parametrize("name", augment.POLICIES)
def test_policies_keep_float_range_and_shape(name):
    t = augment.policy(name)
    torch.manual_seed(0)
    outs = [t(image(32, 32)) for _ in range(5)]
    assert all(o.dtype == torch.float32 and o.shape == (3, 32, 32) and 0 <= o.min() and o.max() <= 1 for o in outs)
    assert any(not torch.allclose(o, image(32, 32), atol=1 / 255 + 1e-6) for o in outs)  # the policy does something
    with pytest.raises(ValueError):
        augment.policy("autoaugment")


def test_mixup_collate_mixes_images_and_labels():
    torch.manual_seed(0)
    batch = [(torch.full((3, 4, 4), float(i)), i) for i in range(4)]  # image i is constant i, label i
    x, y = augment.mix_collate(4, "mixup", alpha=1.0)(batch)
    assert x.shape == (4, 3, 4, 4) and y.shape == (4, 4)
    assert torch.allclose(y.sum(1), torch.ones(4))
    # each mixed image is the label-weighted average of the constants: x = sum_k y_k * k
    assert torch.allclose(x[:, 0, 0, 0], (y * torch.arange(4.0)).sum(1), atol=1e-5)
    assert (y.max(1).values < 1).all()  # alpha = 1 never draws exactly 0 or 1


def test_cutmix_collate_pastes_patches_with_area_weights():
    torch.manual_seed(3)
    batch = [(torch.full((3, 16, 16), float(i)), i) for i in range(4)]
    x, y = augment.mix_collate(4, "cutmix")(batch)
    assert torch.allclose(y.sum(1), torch.ones(4))
    for i in range(4):  # the label weight of each source equals the share of its pixels
        share = torch.stack([(x[i, 0] == k).float().mean() for k in range(4)])
        assert torch.allclose(share, y[i], atol=1e-5)


def test_mix_collate_pickles_and_checks():
    c = pickle.loads(pickle.dumps(augment.mix_collate(3, "cutmix")))
    assert c([(torch.rand(3, 8, 8), 0), (torch.rand(3, 8, 8), 2)])[1].shape == (2, 3)
    with pytest.raises(ValueError):
        augment.mix_collate(3, "mosaic")
    with pytest.raises(ValueError):
        augment.mix_collate(3, "mixup", alpha=0)


class _LeftRight(torch.nn.Module):
    """Logits (left-half mean, right-half mean): a model that a mirror changes completely."""

    def forward(self, x):
        w = x.shape[-1] // 2
        return torch.stack([x[..., :w].mean((1, 2, 3)), x[..., w:].mean((1, 2, 3))], 1) * 10


def test_tta_predict_averages_image_and_mirror():
    import utils

    x = torch.zeros(6, 3, 8, 8)
    x[:3, :, :, :4] = 1.0  # left-bright images
    loader = utils.make_loader((x, torch.tensor([0, 0, 0, 1, 1, 1])), 4)
    model = _LeftRight()
    plain, labels = augment.tta_predict(model, loader, flip=False)
    p_ref, _ = utils.predict(model, loader)
    assert torch.equal(plain, p_ref) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    tta, _ = augment.tta_predict(model, loader)
    mirrored = model(x.flip(-1)).softmax(-1)
    assert torch.allclose(tta, (p_ref + mirrored) / 2, atol=1e-6)
    assert torch.allclose(tta[:3], torch.full((3, 2), 0.5), atol=1e-6)  # the mirror undoes the evidence exactly
    with pytest.raises(TypeError):
        augment.tta_predict(model, loader, flip="yes")
