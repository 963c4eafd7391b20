"""utils.groups: one layer-groups rule per model family, freezing to a depth, and frozen BatchNorm kept frozen."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import utils
from utils import charlm, features
from utils.bert import MeanPoolClassifier

EFFNET_PARAMS = 4_652_008  # learnable; the file's 4,694,024 numbers also count 42,016 BN running statistics
EFFNET_GROUPS = ["conv_stem+bn1", *(f"blocks.{i}" for i in range(7)), "conv_head+bn2", "classifier"]


def _trainable_names(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def _covers_every_parameter_once(model: nn.Module) -> bool:
    ids = [id(p) for g in utils.layer_groups(model) for p in g.parameters()]
    return len(ids) == len(set(ids)) == len({id(p) for p in model.parameters()})


def test_count_parameters_of_the_pretrained_model(effnet):
    count = utils.count_parameters(effnet)
    assert count.total == EFFNET_PARAMS and count.frozen == 0
    assert count.total + sum(b.numel() for n, b in effnet.named_buffers() if "running_" in n) == 4_694_024
    assert "100.0% trainable" in str(count)


def test_efficientnet_groups_run_input_to_output_and_cover_every_parameter(effnet):
    groups = utils.layer_groups(effnet)
    assert [g.name for g in groups] == EFFNET_GROUPS
    assert _covers_every_parameter_once(effnet)
    assert [g.name for g in utils.backbone_groups(effnet)] == EFFNET_GROUPS[:-1]
    assert groups[-1].modules == (effnet.classifier,)


def test_other_families_split_sensibly(minilm):
    cnn = utils.small_cnn(3, widths=(4, 8), input_size=8, seed=0)
    assert [g.name for g in utils.layer_groups(cnn)] == ["features.0", "features.1", "classifier"]
    assert _covers_every_parameter_once(cnn)
    _, encoder = minilm
    mean_pool = MeanPoolClassifier(encoder, 2)
    names = [g.name for g in utils.layer_groups(mean_pool)]
    assert names == ["embeddings", *(f"layer.{i}" for i in range(6)), "head"]
    clf = charlm.CharLMClassifier(charlm.CharLM({"a": 1, "b": 2, "<s>": 3}, emb_dim=4, hidden=5))
    assert [g.name for g in utils.layer_groups(clf)] == ["embedding", "lstm1", "lstm2", "head"]


def test_hugging_face_sequence_classifier_groups(minilm):
    _, model = utils.load_minilm(num_labels=2)
    groups = utils.layer_groups(model)
    assert [g.name for g in groups][0] == "embeddings" and groups[-1].name == "head"
    head_ids = {id(p) for p in groups[-1].parameters()}
    assert {id(model.classifier.weight), id(model.bert.pooler.dense.weight)} <= head_ids
    assert _covers_every_parameter_once(model)


def test_torchvision_style_head_inside_a_sequential():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
            self.classifier = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Dropout(), nn.Linear(4, 2))

    net = Net()
    names = [g.name for g in utils.layer_groups(net)]
    assert names == ["features.0", "features.1", "classifier (before head)", "classifier.3"]
    assert _covers_every_parameter_once(net)


def test_a_model_with_its_own_layer_groups_and_a_registered_family():
    class Own(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def layer_groups(self):
            return [utils.LayerGroup("a", (self.a,)), utils.LayerGroup("b", (self.b,))]

    assert [g.name for g in utils.layer_groups(Own())] == ["a", "b"]

    class Reg(nn.Module):
        def __init__(self):
            super().__init__()
            self.x, self.y = nn.Linear(2, 2), nn.Linear(2, 2)

    @utils.register_layer_groups(Reg)
    def split(model):
        return [utils.LayerGroup("body", (model.x,)), utils.LayerGroup("top", (model.y,))]

    try:
        assert [g.name for g in utils.layer_groups(Reg())] == ["body", "top"]
    finally:
        from utils import groups

        groups._SPLITTERS.pop()


def test_a_model_without_a_head_is_a_clear_error():
    with pytest.raises(ValueError, match="no nn.Linear"):
        utils.layer_groups(nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU()))
    with pytest.raises(TypeError, match="nn.Module"):
        utils.layer_groups("resnet18")


def test_unfreeze_last_zero_is_a_linear_probe(effnet_copy):
    assert utils.unfreeze_last(effnet_copy, 0) == ["classifier"]
    assert _trainable_names(effnet_copy) == {"classifier.weight", "classifier.bias"}


def test_unfreeze_last_all_groups_is_full_fine_tuning(effnet_copy):
    utils.freeze(effnet_copy)
    assert utils.unfreeze_last(effnet_copy, 9) == EFFNET_GROUPS
    assert utils.count_parameters(effnet_copy).frozen == 0


def test_unfreeze_last_two_opens_exactly_the_top_groups(effnet_copy):
    assert utils.unfreeze_last(effnet_copy, 2) == ["blocks.6", "conv_head+bn2", "classifier"]
    names = _trainable_names(effnet_copy)
    assert all(n.startswith(("blocks.6.", "conv_head.", "bn2.", "classifier.")) for n in names)
    assert "blocks.5.0.conv_pw.weight" not in names and "bn2.weight" in names
    rows = {n: t for n, _, t in utils.trainable_summary(effnet_copy)}
    assert rows["blocks.6"] and rows["classifier"] and not rows["blocks.5"] and not rows["conv_stem+bn1"]


def test_unfreeze_last_means_the_same_on_the_char_lm_and_a_cached_tail(effnet):
    clf = charlm.CharLMClassifier(charlm.CharLM({"a": 1, "<s>": 2}, emb_dim=4, hidden=5))
    utils.unfreeze_last(clf, 1)
    assert _trainable_names(clf) == {n for n, _ in clf.named_parameters() if n.startswith(("head.", "lm.lstm2."))}
    utils.unfreeze_last(clf, 3)
    assert not clf.lm.out.weight.requires_grad  # the unused next-character layer never trains
    tail = features.tail(effnet, 3)
    assert utils.unfreeze_last(tail, 1) == ["conv_head+bn2", "head"]


@pytest.mark.parametrize("k", [10, 100, -1])
def test_unfreeze_last_out_of_range_lists_the_groups(effnet_copy, k):
    with pytest.raises(ValueError, match=r"k must be an integer from 0 to 9.*conv_stem\+bn1, blocks\.0.*conv_head\+bn2"):
        utils.unfreeze_last(effnet_copy, k)


@pytest.mark.parametrize("k", [1.5, "2", True, None])
def test_unfreeze_last_with_a_non_integer_says_so(effnet_copy, k):
    with pytest.raises(TypeError, match="k must be an integer"):
        utils.unfreeze_last(effnet_copy, k)


def test_freeze_and_unfreeze_by_pattern(effnet_copy):
    n = utils.freeze(effnet_copy, "blocks.*")
    assert n == sum(1 for name, _ in effnet_copy.named_parameters() if name.startswith("blocks."))
    assert not effnet_copy.blocks[3][0].conv_dw.weight.requires_grad and effnet_copy.conv_stem.weight.requires_grad
    assert utils.unfreeze(effnet_copy, ["blocks.6", "blocks.5.3.*"]) > 0
    assert effnet_copy.blocks[6][0].conv_pw.weight.requires_grad and effnet_copy.blocks[5][3].bn1.bias.requires_grad
    assert not effnet_copy.blocks[5][2].bn1.bias.requires_grad


@pytest.mark.parametrize("pattern", ["layer4.*", ["fc", "head.*"]])
def test_freeze_pattern_matching_nothing_shows_real_names(effnet_copy, pattern):
    with pytest.raises(ValueError, match=r"No parameter name matches .*Names look like: conv_stem\.weight"):
        utils.freeze(effnet_copy, pattern)


def test_frozen_bn_eval_puts_only_frozen_batchnorm_in_eval(effnet_copy):
    utils.unfreeze_last(effnet_copy, 1)  # conv_head + bn2 open, everything below frozen
    effnet_copy.train()
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in effnet_copy.modules())
    assert utils.frozen_bn_eval(effnet_copy) == n_bn - 1
    assert effnet_copy.bn2.training and not effnet_copy.bn1.training and not effnet_copy.blocks[6][0].bn3.training
    assert effnet_copy.training  # the model itself (dropout, ...) stays in train mode


def test_fit_of_a_probe_leaves_the_frozen_backbone_bit_identical(effnet_copy):
    utils.replace_head(effnet_copy, 2)
    utils.unfreeze_last(effnet_copy, 0)
    before = {k: v.clone() for k, v in effnet_copy.state_dict().items()}
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.rand(4, 3, 32, 32) * 2 - 1, torch.tensor([0, 1, 0, 1])), batch_size=4)
    # two epochs: fit() calls model.train() at each one, so frozen BN must be put back in eval every time
    utils.fit(effnet_copy, loader, epochs=2, lr=0.05, device=torch.device("cpu"), progress=False)
    after = effnet_copy.state_dict()
    backbone = [k for k in before if not k.startswith("classifier.")]
    assert any("running_mean" in k for k in backbone) and any("num_batches_tracked" in k for k in backbone)
    changed = [k for k in backbone if not torch.equal(before[k], after[k])]
    assert changed == [], f"frozen weights or BN statistics moved: {changed[:5]}"
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])  # the probe did learn


def test_fit_without_frozen_bn_eval_would_have_moved_statistics(effnet_copy):
    """Control for the test above: BN statistics do drift in train mode, so 'unchanged' is a real check."""
    utils.unfreeze_last(effnet_copy, 0)
    effnet_copy.train()
    before = effnet_copy.bn1.running_mean.clone()
    with torch.no_grad():
        effnet_copy(torch.rand(4, 3, 32, 32))
    assert not torch.equal(before, effnet_copy.bn1.running_mean)
