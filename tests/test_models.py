"""utils.models: backbones by name, their input conventions, head swaps, and a fast, clear offline failure."""
from __future__ import annotations

import time

import pytest
import torch
from torch import nn

import utils
from utils import models


# --- offline path: fail fast, name the bundled alternative -------------------------------------------------------
@pytest.fixture
def warm_imports():
    """Import torchvision and timm (and list their models) before a timed call, so only the network path is timed."""
    models._resolve("resnet50"), models._resolve("timm/convnext_tiny")


@pytest.fixture
def no_cached_weights(monkeypatch, tmp_path):
    """Hide any weights this machine downloaded earlier, so 'offline' means no weights at all."""
    import huggingface_hub

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)


@pytest.fixture
def offline(monkeypatch, warm_imports, no_cached_weights):
    monkeypatch.setattr(models, "is_online", lambda *a, **k: False)


@pytest.mark.parametrize("name", ["resnet50", "torchvision/resnet50", "timm/convnext_tiny"])
def test_online_weights_offline_fail_fast_naming_the_bundled_model(offline, name):
    start = time.monotonic()
    with pytest.raises(utils.OfflineError, match=r"no network\. Bundled models that work offline: efficientnet_lite0"):
        utils.create_backbone(name)
    assert time.monotonic() - start < 10  # a bound on hanging (the hub client retries for ~50 s), not a benchmark


def test_offline_env_flag_alone_makes_create_backbone_fail_fast(monkeypatch, clean_online_cache, warm_imports,
                                                                 no_cached_weights):
    monkeypatch.setenv("TRANSFER_BOOK_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(utils.OfflineError, match="efficientnet_lite0"):
        utils.create_backbone("timm/convnext_tiny")
    with pytest.raises(utils.OfflineError, match="download.pytorch.org"):
        utils.create_backbone("resnet50")
    assert time.monotonic() - start < 10


def test_offline_error_is_a_connection_error():
    assert issubclass(utils.OfflineError, ConnectionError)


def test_offline_timm_loads_a_locally_cached_copy(offline, monkeypatch, tmp_path):
    import timm

    source = timm.create_model("resnet18", pretrained=False)
    nn.init.constant_(source.fc.bias, 0.125)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    monkeypatch.setattr(models, "_timm_cached_weights", lambda name: str(path))
    model = utils.create_backbone("timm/resnet18")
    assert torch.equal(model.fc.bias, source.fc.bias)
    assert model.data_config.input_size == 224 and model.backbone_name == "timm/resnet18"


def test_timm_cached_weights_looks_up_the_hub_repo_of_the_default_tag(monkeypatch):
    import huggingface_hub

    asked = []

    def lookup(repo, fname, **kw):
        asked.append((repo, fname))
        return "/cache/model.safetensors" if fname == "model.safetensors" else None

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lookup)
    assert models._timm_cached_weights("convnext_tiny") == "/cache/model.safetensors"
    assert asked[-1] == ("timm/convnext_tiny.in12k_ft_in1k", "model.safetensors")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    assert models._timm_cached_weights("convnext_tiny") is None


def test_random_weights_need_no_network(offline):
    tv = utils.create_backbone("torchvision/resnet18", pretrained=False, num_classes=4)
    assert tv.fc.out_features == 4 and tv.data_config.mean == pytest.approx((0.485, 0.456, 0.406))
    tm = utils.create_backbone("timm/resnet18", pretrained=False)
    assert tm.fc.out_features == 1000 and isinstance(tm.data_config, utils.DataConfig)


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_bundled_lite_config_is_timms_pretrained_cfg(variant):
    import timm

    ref = timm.models.get_pretrained_cfg(f"tf_efficientnet_lite{variant}")
    cfg = utils.BUNDLED[f"efficientnet_lite{variant}"][1]
    assert (cfg.mean, cfg.std, cfg.interpolation, cfg.crop_pct) == (ref.mean, ref.std, ref.interpolation, ref.crop_pct)
    assert (3, cfg.input_size, cfg.input_size) == ref.input_size


@pytest.mark.parametrize(("name", "size"), [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_bundled_lite_loads_with_no_network_at_all(offline, monkeypatch, name, size):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("a bundled model tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    model = utils.create_backbone(name, num_classes=4)
    assert model.backbone_name == name and model.data_config.input_size == size
    assert model.classifier.in_features == 1280 and model.classifier.out_features == 4
    assert model(torch.rand(1, 3, size, size)).shape == (1, 4)


def test_data_config_crop_pct_is_optional():
    cfg = utils.DataConfig((0.5,) * 3, (0.5,) * 3, 32)
    assert cfg.crop_pct is None and cfg.interpolation == "bilinear"


# --- names ---------------------------------------------------------------------------------------------------------
def test_list_backbones_sources():
    assert utils.list_backbones("bundled") == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    tv = utils.list_backbones("torchvision")
    assert "torchvision/resnet50" in tv and all(n.startswith("torchvision/") for n in tv)
    assert "timm/convnext_tiny" in utils.list_backbones("timm")
    with pytest.raises(ValueError, match="Unknown source 'keras'"):
        utils.list_backbones("keras")


def test_unknown_model_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"Unknown model 'resnet5'.*efficientnet_lite0.*Close matches: .*resnet50"):
        utils.create_backbone("resnet5")


def test_misspelt_bundled_name_suggests_it():
    with pytest.raises(ValueError, match=r"Close matches: .*efficientnet_lite0"):
        utils.create_backbone("efficientnet_lite_0")


@pytest.mark.parametrize("name", ["keras/resnet50", "hf/bert-base-uncased"])
def test_bad_source_prefix(name):
    with pytest.raises(ValueError, match=r"Unknown model source .*'torchvision/<name>' or 'timm/<name>'"):
        utils.create_backbone(name)


@pytest.mark.parametrize("name", ["", None, 3])
def test_model_name_must_be_a_string(name):
    with pytest.raises(ValueError, match="non-empty string"):
        utils.create_backbone(name)


# --- heads ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_classes, error, match", [
    (0, ValueError, r"num_classes must be an integer >= 1, got 0\."),  # out of range: ValueError
    (-1, ValueError, r"num_classes must be an integer >= 1, got -1\."),
    (2.5, TypeError, r"num_classes must be an integer, got 2\.5 \(float\)"),  # wrong type: TypeError
    (True, TypeError, r"num_classes must be an integer, got True \(bool\)"),
    ("10", TypeError, r"num_classes must be an integer, got '10' \(str\)")])
def test_num_classes_must_be_a_positive_int(num_classes, error, match):
    with pytest.raises(error, match=match + r".*number of classes of your task"):
        utils.create_backbone(pretrained=False, num_classes=num_classes)


def test_bundled_backbone_with_new_head(effnet_copy):
    body = {k: v.clone() for k, v in effnet_copy.state_dict().items() if not k.startswith("classifier")}
    utils.replace_head(effnet_copy, 10)
    assert utils.classifier_name(effnet_copy) == "classifier"
    assert effnet_copy.classifier.out_features == 10 and effnet_copy.num_classes == 10
    assert all(torch.equal(effnet_copy.state_dict()[k], v) for k, v in body.items())  # only the head changed
    assert effnet_copy(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_replace_head_with_dropout_and_again(effnet_copy):
    utils.replace_head(effnet_copy, 5, dropout=0.3)
    head = utils.get_classifier(effnet_copy)
    assert isinstance(head, nn.Sequential) and head[0].p == 0.3 and head[1].out_features == 5
    utils.replace_head(effnet_copy, 3)  # a head we made is replaced cleanly
    assert isinstance(effnet_copy.classifier, nn.Linear) and effnet_copy.classifier.in_features == 1280


def test_classifier_name_falls_back_to_the_last_linear():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    assert utils.classifier_name(model) == "2"
    utils.replace_head(model, 7)
    assert model(torch.zeros(1, 4)).shape == (1, 7)


def test_replace_head_needs_a_linear_layer():
    with pytest.raises(ValueError, match="has no nn.Linear layer"):
        utils.replace_head(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), 2)


def test_data_config_refuses_a_model_without_an_input_convention():
    # No silent ImageNet default: a wrong mean/std would only show up as a quietly worse accuracy.
    with pytest.raises(ValueError, match=r"Linear carries no input convention \(no model\.data_config\)\. Set the one its weights "
                                         r"were trained with, e\.g\. model\.data_config = utils\.DataConfig\(.*"
                                         r"utils\.create_backbone"):
        utils.data_config(nn.Linear(2, 2))


def test_data_config_reads_the_attached_config():
    model = nn.Linear(2, 2)
    model.data_config = utils.DataConfig((0.1, 0.2, 0.3), (0.4, 0.5, 0.6), 48)
    assert utils.data_config(model) is model.data_config


@pytest.fixture(scope="module")
def bare_timm_model():
    """A timm model made directly (not through create_backbone): no `data_config` attribute, only timm's own cfg."""
    import timm

    model = timm.create_model("resnet10t", pretrained=False)
    assert not hasattr(model, "data_config")
    return model


def test_data_config_falls_back_to_timms_pretrained_cfg(bare_timm_model):
    import timm

    ref = timm.data.resolve_data_config({}, model=bare_timm_model)
    cfg = utils.data_config(bare_timm_model)
    assert (cfg.mean, cfg.std, cfg.input_size, cfg.interpolation) == (
        tuple(ref["mean"]), tuple(ref["std"]), ref["input_size"][-1], ref["interpolation"])
    assert cfg.input_size == 176 and cfg.mean == (0.485, 0.456, 0.406)  # resnet10t's own, not a generic 224 default


def test_data_config_from_timm_keeps_its_crop_pct(bare_timm_model):
    recorded = bare_timm_model.pretrained_cfg["crop_pct"]
    assert recorded is not None and recorded < 1  # resnet10t records one (0.95), so None would not pass by accident
    assert utils.data_config(bare_timm_model).crop_pct == recorded  # the timm fallback
    assert utils.create_backbone("timm/resnet10t", pretrained=False).data_config.crop_pct == recorded  # _timm_model
