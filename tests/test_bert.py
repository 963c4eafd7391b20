"""utils.bert: pooling, caching, loaders, LoRA, save/load and predict on raw strings, and bad input; plus the BERT
recipe built from the general helpers (LLRD with utils.param_groups, warm-up with utils.fit, utils.linear_probe)."""
from __future__ import annotations

import pytest
import torch

import utils
from utils import bert

utils.ensure_offline_flags()


@pytest.fixture(scope="module")
def minilm():
    """The bundled MiniLM encoder (loaded once): padding behaviour is only meaningful on real weights."""
    return utils.load_minilm()


@pytest.fixture(scope="module")
def tokenizer(minilm):
    return minilm[0]


def tiny_classifier(num_labels: int = 2, seed: int = 0):
    """A 2-layer, 32-wide BERT classifier with MiniLM's vocabulary: real architecture, milliseconds per step."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=128, num_labels=num_labels)
    return BertForSequenceClassification(cfg).eval()


def test_encode_shapes_and_both_poolings_in_one_pass(minilm):
    tok, model = minilm
    out = bert.encode_texts(tok, model, ["A gripping thriller.", "Dull.", "Not bad at all"], max_length=16,
                            pooling=("cls", "mean"), progress=False)
    assert set(out) == {"cls", "mean"}
    assert out["cls"].shape == out["mean"].shape == (3, model.config.hidden_size)
    assert not torch.allclose(out["cls"], out["mean"])
    single = bert.encode_texts(tok, model, ["Dull."], max_length=16, pooling="mean", progress=False)
    assert torch.is_tensor(single) and single.shape == (1, model.config.hidden_size)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_ignores_padding(minilm, pooling):
    tok, model = minilm
    short = "A sweet, funny film."
    alone = bert.encode_texts(tok, model, [short], 48, pooling, progress=False)
    long = "An overlong, muddled and oddly joyless sequel that forgets everything that made the first film work so well."
    padded = bert.encode_texts(tok, model, [long, short], 48, pooling, padding="max_length", sort=False, progress=False)
    assert bert.token_lengths(tok, [short])[0] < 12  # so it really was padded, by more than 30 positions
    torch.testing.assert_close(padded[1], alone[0], atol=1e-5, rtol=0)


def test_sorted_batches_return_rows_in_input_order(minilm):
    tok, model = minilm
    texts = ["A long, winding and ultimately rewarding story.", "Bad.", "Quite good."]
    a = bert.encode_texts(tok, model, texts, 32, "mean", batch_size=2, sort=True, progress=False)
    b = torch.stack([bert.encode_texts(tok, model, [t], 32, "mean", progress=False)[0] for t in texts])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_cached_encode_computes_once_and_keys_on_max_length(minilm, tmp_path, monkeypatch):
    tok, model = minilm
    texts = ["Great.", "Awful."]
    first = bert.cached_encode(tok, model, texts, 16, ("cls", "mean"), folder=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2 and not list(tmp_path.glob("*.tmp"))

    def boom(*args, **kwargs):
        raise AssertionError("cache miss: encode_texts should not run again")

    monkeypatch.setattr(bert, "encode_texts", boom)
    again = bert.cached_encode(tok, model, texts, 16, "mean", folder=tmp_path, progress=False)
    torch.testing.assert_close(again, first["mean"], atol=0, rtol=0)
    with pytest.raises(AssertionError, match="cache miss"):
        bert.cached_encode(tok, model, texts, 17, "mean", folder=tmp_path, progress=False)


def test_cached_encode_recomputes_after_the_weights_change(tokenizer, tmp_path):
    model = tiny_classifier()
    texts = ["Great.", "Awful."]
    before = bert.cached_encode(tokenizer, model, texts, 16, "mean", folder=tmp_path, progress=False)
    with torch.no_grad():
        model.bert.embeddings.LayerNorm.bias += 0.5  # e.g. after fine-tuning: the stored vectors are stale
    after = bert.cached_encode(tokenizer, model, texts, 16, "mean", folder=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2 and not torch.allclose(before, after)
    torch.testing.assert_close(after, bert.encode_texts(tokenizer, model, texts, 16, "mean", progress=False))


def test_loader_pads_dynamically_and_maps_label_names(tokenizer):
    data = [("Fine.", "fresh"), ("A long and tedious mess of a film.", "rotten"), ("Ok.", 1)]
    loader = bert.text_loader(data, tokenizer, max_length=8, batch_size=3, classes=["rotten", "fresh"])
    x, y = next(iter(loader))
    assert set(x) >= {"input_ids", "attention_mask"} and isinstance(x, dict)
    assert x["input_ids"].shape == (3, 8)  # the long text is truncated to 8, the others padded to it
    assert x["attention_mask"][0].sum() < 8 and y.tolist() == [1, 0, 1]
    short = bert.text_loader(data[:1], tokenizer, max_length=64, batch_size=1, classes=["rotten", "fresh"])
    assert next(iter(short))[0]["input_ids"].shape[1] < 8  # padded only to the batch's longest, not to 64


def test_loader_trains_with_utils_fit(tokenizer):
    model = tiny_classifier()
    ds = utils.TextDataset(["good", "bad", "great fun", "awful"], [1, 0, 1, 0], ["rotten", "fresh"])
    loader = bert.text_loader(ds, tokenizer, max_length=8, batch_size=2, shuffle=True)
    hist = utils.fit(model, loader, loader, epochs=1, lr=1e-3, device=torch.device("cpu"), progress=False)
    assert len(hist) == 1 and 0 <= hist.last["val_acc"] <= 1


def _words(n: int) -> str:
    return " ".join(["word"] * n)


def test_group_by_length_pads_less_and_keeps_every_text_once_per_epoch(tokenizer):
    import numpy as np

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, size=64)
    ds = utils.TextDataset([_words(int(n)) for n in lengths], [int(i % 2) for i in range(64)], ["rotten", "fresh"])

    def padding(loader):  # share of padding over two epochs, and the texts each epoch saw
        masks, seen = [], []
        for _ in range(2):
            epoch = [x for x, _ in loader]
            masks += [x["attention_mask"] for x in epoch]
            seen.append(sorted(int(x["attention_mask"][i].sum()) for x in epoch for i in range(len(x["attention_mask"]))))
        return 1 - sum(float(m.sum()) for m in masks) / sum(m.numel() for m in masks), seen

    plain, seen_plain = padding(bert.text_loader(ds, tokenizer, max_length=48, batch_size=8, shuffle=True, seed=0))
    grouped, seen_grouped = padding(bert.text_loader(ds, tokenizer, max_length=48, batch_size=8, shuffle=True, seed=0,
                                                     group_by_length=True))
    assert grouped < 0.5 * plain  # mega-batches of 4 x 8 sorted by length: far less padding than random batches
    assert seen_grouped[0] == seen_grouped[1] == seen_plain[0]  # every text exactly once per epoch
    a = [x["input_ids"].tolist() for x, _ in bert.text_loader(ds, tokenizer, 48, 8, shuffle=True, seed=3, group_by_length=True)]
    b = [x["input_ids"].tolist() for x, _ in bert.text_loader(ds, tokenizer, 48, 8, shuffle=True, seed=3, group_by_length=True)]
    c = [x["input_ids"].tolist() for x, _ in bert.text_loader(ds, tokenizer, 48, 8, shuffle=True, seed=4, group_by_length=True)]
    assert a == b and a != c  # seeded: same seed, same batches


def test_group_by_length_bad_input_says_what_to_do(tokenizer):
    ds = utils.TextDataset(["good", "bad"], [1, 0], ["rotten", "fresh"])
    with pytest.raises(ValueError, match="shuffle=True"):
        bert.text_loader(ds, tokenizer, group_by_length=True)
    with pytest.raises(TypeError, match="True or False"):
        bert.text_loader(ds, tokenizer, shuffle=True, group_by_length="yes")


def test_llrd_groups_cover_each_parameter_once_with_rising_lr():
    model = tiny_classifier()
    model.bert.embeddings.position_embeddings.weight.requires_grad_(False)
    groups = utils.param_groups(model, lr=1e-3, decay=0.5)  # LLRD: backbone_mult=1, each layer down x decay
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(trainable)
    lr_by_group = utils.group_lrs(torch.optim.AdamW(groups))  # the groups are valid optimiser input
    assert list(lr_by_group) == ["embeddings", "layer.0", "layer.1", "head"]  # the head: pooler + classifier
    assert lr_by_group["embeddings"] < lr_by_group["layer.0"] < lr_by_group["layer.1"] == lr_by_group["head"] == 1e-3
    assert lr_by_group["embeddings"] == pytest.approx(1e-3 * 0.5 ** 2)
    with_head = utils.group_lrs(utils.make_optimizer(model, 1e-2, backbone_mult=0.1, decay=0.5))
    assert with_head["head"] == 1e-2 and with_head["layer.1"] == pytest.approx(1e-3)  # a 10x faster new head
    assert with_head["embeddings"] == pytest.approx(1e-3 * 0.5 ** 2)
    group_of = {id(p): g for g in groups for p in g["params"]}
    head = group_of[id(model.classifier.weight)]
    assert head["name"] == "head" and head["weight_decay"] > 0 and group_of[id(model.bert.pooler.dense.weight)] is head
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    assert all(group_of[id(b)]["weight_decay"] == 0 for b in biases)
    assert group_of[id(model.bert.encoder.layer[0].attention.self.query.weight)]["name"] == "layer.0"


def test_warmup_schedule_matches_transformers():
    from transformers import get_linear_schedule_with_warmup

    def lrs(make):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        sched, out = make(opt), []
        for _ in range(12):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    ours = lrs(lambda o: utils.warmup_linear(o, 3, 10))
    assert ours == pytest.approx(lrs(lambda o: get_linear_schedule_with_warmup(o, 3, 10)))
    assert ours[0] == 0 and max(ours) == pytest.approx(0.1) and ours[10] == 0
    # what fit(..., schedule="linear", warmup=0.3) builds for 10 steps: the same schedule
    assert lrs(lambda o: utils.make_scheduler(o, "linear", 10, warmup=0.3)) == pytest.approx(ours)
    with pytest.raises(ValueError, match="warmup_steps"):
        utils.warmup_linear(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), 11, 10)


def test_lora_freezes_base_and_trains_few_parameters(tokenizer):
    model = bert.add_lora(tiny_classifier(), r=4, alpha=8)
    counts = utils.count_parameters(model)
    assert 0 < counts.trainable < 0.05 * counts.total
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or "classifier" in n for n in names)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    x, y = bert.TokenizeCollate(tokenizer, 8)([("good", 1), ("bad", 0)])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    torch.nn.functional.cross_entropy(model(**x).logits, y).backward()
    opt.step()
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if n in base)


def test_save_load_round_trip_gives_identical_logits(tokenizer, tmp_path):
    model = tiny_classifier()
    folder = bert.save_classifier(model, tokenizer, tmp_path / "clf", labels=["rotten", "fresh"])
    assert (folder / "config.json").exists() and list(folder.glob("*.safetensors"))
    tok2, model2 = bert.load_classifier(folder)
    x = dict(tokenizer(["A fine film.", "Terrible."], padding=True, return_tensors="pt"))
    with torch.no_grad():
        torch.testing.assert_close(model2(**x).logits, model(**x).logits, atol=0, rtol=0)
    assert model2.config.id2label == {0: "rotten", 1: "fresh"}
    bert.save_classifier(model, tokenizer, folder)  # overwriting an existing save works and leaves no temp folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"]


def test_save_lora_model_merges_adapters(tokenizer, tmp_path):
    model = bert.add_lora(tiny_classifier(), r=2, alpha=4)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()  # non-zero B so the adapters actually change the output
    model.eval()
    tok2, plain = bert.load_classifier(bert.save_classifier(model, tokenizer, tmp_path / "lora", ["neg", "pos"]))
    x = dict(tokenizer(["A fine film."], return_tensors="pt"))
    with torch.no_grad():
        torch.testing.assert_close(plain(**x).logits, model(**x).logits, atol=1e-5, rtol=1e-5)
    assert not any("lora" in n for n, _ in plain.named_parameters())


def test_predict_on_raw_strings(tokenizer):
    model = tiny_classifier()
    out = bert.predict_texts(["A warm, funny film.", "Dull and far too long."], model, tokenizer, labels=["rotten", "fresh"])
    assert len(out) == 2
    assert all(label in {"rotten", "fresh"} and 0.5 <= p <= 1 for label, p in out)


@pytest.mark.parametrize("texts, error, message", [
    ([""], ValueError, r"texts\[0\] is empty or blank"),
    (["fine", "   "], ValueError, r"texts\[1\] is empty or blank"),
    (["fine", None], TypeError, r"texts\[1\] is NoneType"),
    (["fine", 3.5], TypeError, r"texts\[1\] is float"),
    ([], ValueError, "texts is empty"),
    ("one review", TypeError, "not one string"),
    (None, TypeError, "must be a list of strings"),
])
def test_predict_rejects_bad_texts(tokenizer, texts, error, message):
    with pytest.raises(error, match=message):
        bert.predict_texts(texts, tiny_classifier(), tokenizer)


def test_predict_refuses_runaway_text(tokenizer):
    with pytest.raises(ValueError, match=r"texts\[1\] has 5,000 characters .*max_chars"):
        bert.predict_texts(["Fine.", "x" * 5000], tiny_classifier(), tokenizer)


def test_predict_accepts_long_text_when_max_chars_allows_it(tokenizer):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = bert.predict_texts(["word " * 1000], tiny_classifier(), tokenizer, max_chars=6000, max_length=8)
    assert len(out) == 1 and any("were truncated" in str(w.message) for w in caught)


def test_linear_probe_picks_c_on_validation_and_separates_classes():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(80, 5, generator=gen)
    y = (x[:, 0] > 0).long()
    probe = utils.linear_probe(x[:60], y[:60], x[60:], y[60:], cs=(0.001, 1.0))
    assert set(probe.val_scores) == {0.001, 1.0} and probe.val_scores[probe.c] == max(probe.val_scores.values())
    assert probe.score(x[60:], y[60:]) == probe.val_scores[probe.c] >= 0.9
    assert probe.model.score(x[60:].numpy(), y[60:].numpy()) == probe.score(x[60:], y[60:])
    assert probe.predict_proba(x[:3]).shape == (3, 2)
    # ties go to the stronger regularisation (the smaller C): two values that both separate perfectly
    easy = utils.linear_probe(x[:60] * 100, y[:60], x[60:] * 100, y[60:], cs=(10.0, 1.0))
    if easy.val_scores[1.0] == easy.val_scores[10.0]:
        assert easy.c == 1.0


def test_fine_tune_uses_warmup_llrd_and_learns(tokenizer):
    """The BERT recipe from the general helpers: LLRD via make_optimizer, linear warm-up/decay via fit."""
    model = tiny_mean_pool()
    ds = utils.TextDataset(["good fun", "bad awful", "great fun", "awful bad"] * 4, [1, 0, 1, 0] * 4, ["rotten", "fresh"])
    loader = bert.text_loader(ds, tokenizer, max_length=8, batch_size=4, shuffle=True)
    before = utils.evaluate(model, loader)["loss"]
    opt = utils.make_optimizer(model, 3e-2, backbone_mult=0.1, decay=0.8)
    lrs = utils.group_lrs(opt)
    assert lrs["head"] == 3e-2 and lrs["layer.1"] == pytest.approx(3e-3) and lrs["embeddings"] == pytest.approx(3e-3 * 0.8 ** 2)
    hist = utils.fit(model, loader, loader, epochs=6, optimizer=opt, schedule="linear", warmup=0.1,
                     device=torch.device("cpu"), progress=False)
    assert len(hist) == 6 and hist.last["val_loss"] < before - 0.1 and hist.last["val_acc"] == 1.0
    assert all(g["lr"] == 0 for g in opt.param_groups)  # the linear schedule ended at zero: it really was applied


def test_mean_pool_classifier_ignores_padding_and_trains(minilm, tokenizer):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    enc = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=128))
    model = bert.MeanPoolClassifier(enc, num_labels=2).eval()
    one = dict(tokenizer(["A fine film."], return_tensors="pt"))
    two = dict(tokenizer(["A fine film.", "A much longer and rather more tedious film than it had any right to be."],
                         padding=True, return_tensors="pt"))
    with torch.no_grad():
        torch.testing.assert_close(model(**two)[0], model(**one)[0], atol=1e-5, rtol=0)
    groups = utils.param_groups(model, 1e-2, backbone_mult=0.1, decay=0.5)
    fast = {id(p) for g in groups if g["lr"] == 1e-2 for p in g["params"]}
    assert fast == {id(model.classifier.weight), id(model.classifier.bias)}  # only the new head at the head's rate
    embeddings = next(g for g in utils.layer_groups(model) if g.name == "embeddings")
    assert any(p is enc.embeddings.word_embeddings.weight for p in embeddings.parameters())
    assert not any(p.requires_grad for p in enc.pooler.parameters())  # mean pooling never reads BERT's [CLS] pooler
    assert not {id(p) for p in enc.pooler.parameters()} & {id(p) for g in groups for p in g["params"]}
    with pytest.raises(ValueError, match=r"num_labels must be an integer >= 2, got 1\."):
        bert.MeanPoolClassifier(enc, num_labels=1)
    with pytest.raises(TypeError, match=r"num_labels must be an integer, got 2\.0 \(float\)"):
        bert.MeanPoolClassifier(enc, num_labels=2.0)


def test_predict_warns_when_truncating(tokenizer):
    with pytest.warns(UserWarning, match=r"1 of 2 texts are longer than max_length=8"):
        bert.predict_texts(["Fine.", "word " * 20], tiny_classifier(), tokenizer, max_length=8)


def test_bad_arguments_have_clear_messages(tokenizer, minilm, tmp_path):
    model = tiny_classifier()
    with pytest.raises(ValueError, match="labels has 3 names but the model has 2 outputs; give one name per output"):
        bert.predict_texts(["Fine."], model, tokenizer, labels=["rotten", "fresh", "meh"])
    with pytest.raises(ValueError, match=r"labels must be distinct; \['fresh'\] appear more than once"):
        bert.predict_texts(["Fine."], model, tokenizer, labels=["fresh", "fresh"])
    with pytest.raises(ValueError, match="Unknown label name 'frsh'.*rotten"):
        bert.TokenizeCollate(tokenizer, 16, ["rotten", "fresh"])([("Fine.", "frsh")])
    with pytest.raises(ValueError, match="Unknown pooling"):
        bert.encode_texts(tokenizer, minilm[1], ["Fine."], 16, pooling="max")
    with pytest.raises(ValueError, match=r"max_length must be an integer from 3 to 512, got 1000\."):
        bert.encode_texts(tokenizer, minilm[1], ["Fine."], max_length=1000)
    with pytest.raises(FileNotFoundError, match="No saved classifier at .*save_classifier"):
        bert.load_classifier(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a save_classifier"):
        bert.load_classifier(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"target_modules: no nn\.Linear named \['qkv'\] in BertForSequenceClassification"):
        bert.add_lora(model, target_modules=["qkv"])
    with pytest.raises(ValueError, match=r"backbone_mult must be a finite number in \(0, 1\]"):
        utils.param_groups(model, 1e-3, backbone_mult=0.0)
    loader = bert.text_loader([("Fine.", 1)], tokenizer, max_length=8)
    with pytest.raises(ValueError, match=r"warmup must be a finite number in \[0, 1\)"):
        utils.fit(model, loader, schedule="linear", warmup=1.5, device=torch.device("cpu"), progress=False)
    with pytest.raises(ValueError, match="train_x and train_y must have the same length: 4 vs 3"):
        utils.linear_probe(torch.zeros(4, 3), [0, 1, 0], torch.zeros(2, 3), [0, 1])
    with pytest.raises(ValueError, match="single class"):
        utils.linear_probe(torch.zeros(4, 3), [1, 1, 1, 1], torch.zeros(2, 3), [0, 1])
    with pytest.raises(ValueError, match=r"decay must be a finite number in \(0, 1\]"):
        utils.param_groups(model, 1e-3, decay=1.5)
    with pytest.raises(ValueError, match="dataset is empty"):
        bert.text_loader([], tokenizer)
    with pytest.raises(ValueError, match=r"Unknown label name 'fresh'; known names: none \(pass classes="):
        bert.TokenizeCollate(tokenizer, 16)([("Fine.", "fresh")])


def tiny_mean_pool(seed: int = 0):
    """A MeanPoolClassifier on a 2-layer, 32-wide BERT encoder."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    enc = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=128))
    return bert.MeanPoolClassifier(enc, num_labels=2).eval()


def test_mean_pool_classifier_lora_save_load_round_trip(tokenizer, tmp_path):
    model = bert.add_lora(tiny_mean_pool(), r=2, alpha=4)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or "classifier" in n for n in names)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n or "classifier" in n:
                p.normal_()
    model.eval()
    folder = bert.save_classifier(model, tokenizer, tmp_path / "mean", ["rotten", "fresh"])
    assert (folder / bert.HEAD_FILE).exists()
    tok2, plain = bert.load_classifier(folder)
    assert isinstance(plain, bert.MeanPoolClassifier) and not any("lora" in n for n, _ in plain.named_parameters())
    x = dict(tokenizer(["A fine film.", "Dull."], padding=True, return_tensors="pt"))
    with torch.no_grad():
        torch.testing.assert_close(plain(**x), model(**x), atol=1e-5, rtol=1e-5)
    labels = [lab for lab, _ in bert.predict_texts(["A fine film."], plain, tok2)]
    assert labels[0] in {"rotten", "fresh"}


def _relative_change(model, before, prefix):
    """||W - W0|| / ||W0|| over the parameters whose names start with `prefix`."""
    now = {n: p.detach() for n, p in model.named_parameters() if n.startswith(prefix)}
    num = sum(float((p - before[n]).pow(2).sum()) for n, p in now.items())
    return (num / sum(float(before[n].pow(2).sum()) for n in now)) ** 0.5


def test_llrd_keeps_decayed_rates_through_the_schedule_and_changes_the_trajectory(tokenizer):
    """LLRD is not a no-op: its groups carry decayed rates at every step of the warm-up/decay schedule, and from the
    same start, data and batch order it moves the lower layers less than plain fine-tuning (same top-layer rate)."""
    ds = utils.TextDataset(["good fun", "bad awful", "great fun", "awful bad"] * 4, [1, 0, 1, 0] * 4, ["rotten", "fresh"])
    runs = {}
    for name, decay in (("plain", 1.0), ("llrd", 0.5)):
        model = tiny_mean_pool(seed=0)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt = utils.make_optimizer(model, 1e-2, backbone_mult=0.1, decay=decay)
        loader = bert.text_loader(ds, tokenizer, max_length=8, batch_size=4, shuffle=True, seed=0)
        sched, seen = utils.make_scheduler(opt, "linear", 3 * len(loader), warmup=0.25), []

        class Recording:  # steps the schedule, then records every group's rate as the next step will use it
            def step(self):
                sched.step()
                seen.append(utils.group_lrs(opt))

        torch.manual_seed(0)
        utils.fit(model, loader, None, epochs=3, optimizer=opt, scheduler=Recording(), device=torch.device("cpu"),
                  progress=False)
        runs[name] = (model, before, seen)
    _, _, seen = runs["llrd"]
    live = [r for r in seen if r["head"] > 0]
    assert len(live) >= 8  # warm-up and decay steps, not only the end point
    for r in live:  # the schedule multiplies every group's rate, so LLRD's ratios hold at every step
        assert r["layer.1"] == pytest.approx(0.1 * r["head"])
        assert r["layer.0"] == pytest.approx(0.5 * r["layer.1"])
        assert r["embeddings"] == pytest.approx(0.25 * r["layer.1"])
    assert all(r["embeddings"] == r["layer.0"] == r["layer.1"] for r in runs["plain"][2] if r["head"] > 0)
    moved = {name: {g: _relative_change(m, b, prefix) for g, prefix in
                    (("embeddings", "encoder.embeddings."), ("layer.0", "encoder.encoder.layer.0."))}
             for name, (m, b, _) in runs.items()}
    assert moved["llrd"]["layer.0"] < 0.75 * moved["plain"]["layer.0"]  # half the rate: clearly less movement
    assert moved["llrd"]["embeddings"] < 0.5 * moved["plain"]["embeddings"]  # a quarter of the rate
    top = [(runs[k][0].encoder.encoder.layer[1].output.dense.weight.detach()) for k in ("plain", "llrd")]
    assert not torch.allclose(top[0], top[1])  # different trajectories, not only different bookkeeping


def test_run_key_names_weights_data_seed_and_recipe():
    from types import SimpleNamespace

    model = tiny_classifier()
    a = SimpleNamespace(texts=["Great.", "Awful."], labels=torch.tensor([1, 0]))
    b = SimpleNamespace(texts=["Great.", "Awful."], labels=torch.tensor([0, 1]))  # same texts, other labels
    key = bert.run_key(model, a, a, 0, lr=3e-3, epochs=5)
    assert key == bert.run_key(model, a, a, 0, lr=3e-3, epochs=5)  # a run is named the same way twice
    others = [bert.run_key(model, b, a, 0, lr=3e-3, epochs=5), bert.run_key(model, a, b, 0, lr=3e-3, epochs=5),
              bert.run_key(model, a, a, 1, lr=3e-3, epochs=5), bert.run_key(model, a, a, 0, lr=1e-3, epochs=5),
              bert.run_key(tiny_classifier(seed=1), a, a, 0, lr=3e-3, epochs=5)]
    assert all(k != key for k in others)
    with pytest.raises(TypeError, match="text datasets"):
        bert.run_key(model, ["Great."], a, 0)
