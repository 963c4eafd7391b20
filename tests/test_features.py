"""utils.features: the on-disk activation cache (keys, hits, equality with recomputation) and the trainable tail."""
from __future__ import annotations

import copy

import pytest
import torch

import utils
from utils import features
from utils.cache import cache_dir, clear_cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache root for this test only; returns the folder the feature files go to."""
    monkeypatch.setenv("TRANSFER_BOOK_CACHE", str(tmp_path))
    return tmp_path / "features"


@pytest.fixture(scope="module")
def model():
    return utils.replace_head(utils.create_backbone(), 3).eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(0)
    return torch.rand(6, 3, 32, 32)


def test_feature_files_go_to_the_features_folder_of_the_cache_root(cache, model, images):
    assert cache_dir("features") == cache
    features.cached_features(model, images[:2], progress=False)
    files = [f for f in cache.parent.rglob("*") if f.is_file()]
    assert len(files) == 1 and files[0].parent == cache and files[0].suffix == ".safetensors"


def test_miss_then_hit_gives_identical_tensors(cache, model, images):
    before = dict(features.STATS)
    first = features.cached_activations(model, images, (0, 1, 3), "rand", "train", progress=False)
    assert features.STATS["misses"] == before["misses"] + 3
    assert len(list(cache.glob("*.safetensors"))) == 3
    second = features.cached_activations(model, images, (0, 1, 3), "rand", "train", progress=False)
    assert features.STATS["hits"] == before["hits"] + 3
    for k in (0, 1, 3):
        assert torch.equal(first[k], second[k])
    assert first[0].shape == (6, 1280) and first[1].shape == (6, 320, 1, 1)


def test_cached_features_equal_recomputed_ones(cache, model, images):
    cached = features.cached_features(model, images, progress=False)
    with torch.no_grad():
        x = utils.normalize(images, model.data_config)
        direct = model.forward_head(model.forward_features(x), pre_logits=True)
    assert torch.allclose(cached, direct, atol=1e-5)


@pytest.mark.parametrize("k", [0, 1, 2, 5, 9])
def test_tail_on_cached_input_equals_the_full_model(cache, model, images, k):
    acts = features.extract(model, images, (k,), progress=False)
    with torch.no_grad():
        full = model(utils.normalize(images, model.data_config))
        assert torch.allclose(features.tail(model, k)(acts[k]), full, atol=1e-4)


@pytest.mark.parametrize("k", [0, 1, 3])
def test_tail_pre_logits_are_the_full_models_pooled_features(cache, model, images, k):
    acts = features.extract(model, images, (0, k), progress=False)
    with torch.no_grad():
        pooled = features.tail(model, k).pre_logits(acts[k])
        assert pooled.shape == (len(images), 1280)
        assert torch.allclose(pooled, acts[0], atol=1e-4)
        assert torch.allclose(features.tail(model, k).head(pooled), features.tail(model, k)(acts[k]), atol=1e-4)


def test_key_changes_with_split_size_cut_content_and_weights(model, images):
    base = features.cache_key(model, images, 1, "rand", "train")
    assert base == features.cache_key(model, images.clone(), 1, "rand", "train")  # content, not identity
    others = [features.cache_key(model, images, 1, "rand", "val"),
              features.cache_key(model, images[:5], 1, "rand", "train"),
              features.cache_key(model, images, 2, "rand", "train"),
              features.cache_key(model, images.flip(-1), 1, "rand", "train"),
              features.cache_key(model, images, 1, "other", "train")]
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.blocks[0][0].conv_dw.weight.add_(0.01)
    others.append(features.cache_key(changed, images, 1, "rand", "train"))
    assert len({base, *others}) == len(others) + 1


def test_key_ignores_weights_above_the_cut(model, images):
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.conv_head.weight.mul_(2)  # conv_head is above the k=1 cut: the cached input does not depend on it
    assert features.cache_key(changed, images, 1) == features.cache_key(model, images, 1)
    assert features.cache_key(changed, images, 0) != features.cache_key(model, images, 0)


def test_training_mode_is_refused(cache, images):
    m = utils.create_backbone().train()
    with pytest.raises(RuntimeError, match="eval"):
        features.cached_features(m, images, progress=False)


def test_bad_inputs_give_clear_errors(model, images):
    with pytest.raises(ValueError, match="from 0"):
        features.check_cut(model, 10)
    with pytest.raises(ValueError, match="from 0"):
        features.check_cut(model, -1)
    with pytest.raises(ValueError, match=r"must have 3 channels in dim 1"):
        features.images_of(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"must be a batch \(N, C, H, W\)"):
        features.images_of(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="look normalised already"):
        features.images_of(torch.rand(2, 3, 8, 8) * 2 - 1)
    with pytest.raises(ValueError, match="empty"):
        features.images_of(torch.rand(0, 3, 8, 8))
    with pytest.raises(TypeError, match="ImageTensorDataset"):
        features.images_of([1, 2, 3])
    augmented = utils.ImageTensorDataset(images, torch.zeros(6), ["a"], transform=lambda x: x)
    with pytest.raises(ValueError, match="augmentation"):
        features.images_of(augmented)
    with pytest.raises(ValueError, match="batch_size"):
        features.extract(model, images, (0,), batch_size=0, progress=False)


def test_refresh_recomputes_and_clear_cache_empties(cache, model, images):
    features.cached_features(model, images, progress=False)
    misses = features.STATS["misses"]
    features.cached_features(model, images, progress=False, refresh=True)
    assert features.STATS["misses"] == misses + 1
    assert clear_cache("features") == 1 and not list(cache.glob("*.safetensors"))
    features.cached_features(model, images, progress=False)
    assert features.STATS["misses"] == misses + 2  # cleared: computed again


def test_cuts_count_the_same_groups_as_unfreeze_last(model):
    names = [g.name for g in utils.backbone_groups(model)]
    assert names == ["conv_stem+bn1", *(f"blocks.{i}" for i in range(7)), "conv_head+bn2"]
    assert features.check_cut(model, len(names)) == len(names)  # the raw input
    for k in (1, 2, 9):
        t = features.tail(model, k)
        assert [g.name for g in utils.layer_groups(t)] == names[len(names) - k:] + ["head"]
    t = features.tail(model, 2)
    assert t.blocks[0][0] is model.blocks[6] and t.blocks[1][0] is model.conv_head and t.blocks[1][1] is model.bn2
    assert t.head is model.classifier  # shares the model's weights, copies nothing


def test_unfreeze_last_and_param_groups_work_on_a_tail(model):
    t = features.tail(copy.deepcopy(model), 3)
    assert utils.unfreeze_last(t, 1) == ["conv_head+bn2", "head"]
    groups = utils.layer_groups(t)
    assert [g.trainable for g in groups] == [False, False, True, True]
    assert all(p.requires_grad for g in groups[2:] for p in g.parameters())
    assert utils.count_parameters(t).trainable == sum(g.numel() for g in groups[2:])
    assert all(p.requires_grad for p in model.parameters())  # the tail of a copy: the shared fixture is untouched
    lrs = utils.group_lrs(utils.make_optimizer(t, 1e-2, backbone_mult=0.1))
    assert lrs == {"conv_head+bn2": pytest.approx(1e-3), "head": pytest.approx(1e-2)}


def test_a_probe_tail_can_be_opened_and_optimised(model):
    t = features.tail(copy.deepcopy(model), 0)
    assert utils.unfreeze_last(t, 0) == ["head"]
    assert utils.group_lrs(utils.make_optimizer(t, 1e-2)) == {"head": pytest.approx(1e-2)}


def test_smallcnn_cuts_line_up_with_its_blocks(cache):
    """utils.SmallCNN implements timm's three methods, so every cut of it works like one of a timm model."""
    net = utils.small_cnn(3, widths=(4, 8, 16), input_size=16, seed=0).eval()
    x = torch.rand(5, 3, 16, 16)
    acts = features.cached_activations(net, x, (0, 1, 2, 3), "rand16", progress=False)
    with torch.no_grad():
        full = net(utils.normalize(x, net.data_config))
        for k in (0, 1, 2, 3):
            assert torch.allclose(features.tail(net, k)(acts[k]), full, atol=1e-5), k
    assert acts[1].shape == (5, 8, 4, 4) and acts[2].shape == (5, 4, 8, 8) and acts[0].shape == (5, 16)


def test_default_cache_dir_is_the_gitignored_repo_folder(monkeypatch):
    monkeypatch.delenv("TRANSFER_BOOK_CACHE", raising=False)
    path = cache_dir("features")
    assert path.parts[-2:] == (".cache", "features") and (path.parents[1] / ".gitignore").exists()
    assert "/.cache/" in (path.parents[1] / ".gitignore").read_text()
