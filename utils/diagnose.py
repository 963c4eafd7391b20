"""Read a training run's curves like a practitioner: over-fitting, under-fitting, unstable or fine, with the evidence.

The rules are deliberately simple, so you can check them by eye on the plot:

1. **unstable**: a loss is NaN/inf, the training loss ends above where it started, or it jumps up between two
   epochs by more than `spike` × ln K, the loss of a uniform guess over K classes (the natural scale of a
   cross-entropy). Training is not converging; nothing else can be judged.
2. **underfitting**: the model cannot even fit its *training* data. We measure train accuracy as *skill*
   above chance, `(train_acc - 1/K) / (1 - 1/K)` for K classes (0 = guessing, 1 = perfect), and flag it below
   `min_skill`.
3. **overfitting**, for either of two reasons:
   * *rising validation loss*: on a `smooth`-epoch moving average (so a one-epoch spike is not a trend), the
     validation loss ended more than `max_rise` (relative) **and** more than `min_rise` × ln K (absolute) above its
     minimum. Both parts matter: a rise from 0.13 to 0.15 is +15 % but meaningless for 10 classes;
   * *memorised training set*: train accuracy exceeds validation accuracy by more than `max_gap` while the training
     loss is more than `min_loss_ratio` times smaller than the validation loss.
4. **ok**: none of the above.

Training metrics: `utils.fit` records `train_loss`/`train_acc` as running averages *during* the epoch, in train mode
(augmented views, dropout on, BatchNorm on batch statistics), which can be far from what the model does on its
training images. If the history also has `clean_loss`/`clean_acc` (an eval-mode pass over the un-augmented training
set: `utils.fit(..., eval_loaders={"clean": train_eval_loader})`), the skill and gap rules read those instead.

`fit_keep_best` trains like `utils.fit` and also keeps the best epoch's weights, the first fix for over-fitting.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .optim import make_optimizer
from .train import History, fit

__all__ = ["VERDICTS", "SUGGESTIONS", "Diagnosis", "check_history", "evidence", "diagnose", "diagnose_table",
           "plot_diagnosis", "fit_keep_best"]

VERDICTS = ("unstable", "underfitting", "overfitting", "ok")

SUGGESTIONS = {
    "unstable": ["lower the learning rate (÷10)", "clip gradients: utils.fit(..., grad_clip=1.0)",
                 "add a warm-up to the schedule", "check inputs and labels for NaNs or mistakes"],
    "underfitting": ["raise the learning rate (×10)", "train for more epochs",
                     "unfreeze more blocks: utils.unfreeze_last(model, k) with a larger k",
                     "remove some regularisation (weight decay, dropout)",
                     "check the preprocessing matches model.data_config"],
    "overfitting": ["stop at the best epoch (early stopping)", "regularise: weight decay, dropout before the head",
                    "add data augmentation or more labelled examples",
                    "train fewer blocks (a smaller k in utils.unfreeze_last) or use a lower learning rate"],
    "ok": ["nothing urgent; if the validation loss is still falling, train longer",
           "then try unfreezing one more block and compare"],
}


@dataclass
class Diagnosis:
    """A verdict on one run, the numbers behind it, the reasons in words, and what to try next."""

    verdict: str
    evidence: dict[str, float]
    reasons: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    label: str = ""

    def __str__(self) -> str:
        head = f"{self.label or 'run'}: {self.verdict.upper()}"
        return "\n".join([head, *(f"  - {r}" for r in self.reasons), "  try: " + "; ".join(self.suggestions)])


def check_history(history: History) -> None:
    """Reject what cannot be diagnosed (not a History, no epochs, no validation metrics), saying how to fix it."""
    if not isinstance(history, History):
        raise TypeError(f"diagnose() reads a utils.History (what utils.fit returns), got {type(history).__name__}.")
    if len(history) == 0:
        raise ValueError(f"History {history.label!r} has no epochs; train first (utils.fit returns the History).")
    needed = ("train_loss", "train_acc", "val_loss", "val_acc")
    missing = [k for k in needed if any(v is None for v in history[k])]
    if missing:
        raise ValueError(f"History {history.label!r} lacks {', '.join(missing)} in some epochs. A diagnosis compares "
                         f"training with validation: pass a val_loader to utils.fit(model, train_loader, val_loader).")


def _moving_average(values: list[float], window: int) -> list[float]:
    w = max(1, min(window, len(values)))
    return [sum(values[i:i + w]) / w for i in range(len(values) - w + 1)]


def evidence(history: History, num_classes: int, smooth: int = 3) -> dict[str, float]:
    """The numbers the rules read: best epoch, (smoothed) val-loss rise after it, generalisation gap, train skill."""
    check_history(history)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2 (it sets the chance level), got {num_classes!r}.")
    if not isinstance(smooth, int) or isinstance(smooth, bool) or smooth < 1:
        raise ValueError(f"smooth must be a positive integer (epochs in the moving average; 1 = none), got {smooth!r}.")
    tl, ta, vl, va = (history[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc"))
    clean = all(v is not None for v in history["clean_loss"] + history["clean_acc"])
    fit_loss, fit_acc = (history["clean_loss"][-1], history["clean_acc"][-1]) if clean else (tl[-1], ta[-1])
    finite = all(math.isfinite(v) for v in tl + vl)
    i_best = min(range(len(vl)), key=lambda i: vl[i] if math.isfinite(vl[i]) else math.inf)
    chance = 1 / num_classes
    jumps = [b - a for a, b in zip(tl, tl[1:]) if math.isfinite(a) and math.isfinite(b)]
    sm = _moving_average(vl, smooth) if finite else [0.0]
    low = min(sm)
    return {"epochs": len(history), "chance_acc": chance, "finite": float(finite), "clean": float(clean),
            "best_epoch": history["epoch"][i_best], "best_val_loss": vl[i_best], "final_val_loss": vl[-1],
            "val_loss_rise": (sm[-1] - low) / abs(low) if low else 0.0, "val_loss_rise_abs": sm[-1] - low,
            "train_loss": fit_loss, "train_acc": fit_acc, "val_acc": va[-1], "gap": fit_acc - va[-1],
            "loss_ratio": vl[-1] / fit_loss if finite and fit_loss > 0 else math.inf,
            "train_skill": (fit_acc - chance) / (1 - chance),
            "train_loss_change": (tl[-1] - tl[0]) / abs(tl[0]) if finite and tl[0] else 0.0,
            "max_jump": max(jumps, default=0.0) / math.log(num_classes)}


def diagnose(history: History, num_classes: int, min_skill: float = 0.6, max_rise: float = 0.15,
             min_rise: float = 0.05, max_gap: float = 0.1, min_loss_ratio: float = 10.0, spike: float = 0.25,
             smooth: int = 3) -> Diagnosis:
    """Label a run 'unstable', 'underfitting', 'overfitting' or 'ok' by the module's four rules, with the evidence."""
    e = evidence(history, num_classes, smooth)
    reasons: list[str] = []
    rising = e["val_loss_rise"] > max_rise and e["val_loss_rise_abs"] > min_rise * math.log(num_classes)
    memorised = e["gap"] > max_gap and e["loss_ratio"] > min_loss_ratio
    train_words = "train (eval-mode pass)" if e["clean"] else "train"
    if not e["finite"] or e["train_loss_change"] > 0 or e["max_jump"] > spike:
        verdict = "unstable"
        reasons.append("a loss is NaN/inf" if not e["finite"] else
                       f"train loss changed by {e['train_loss_change']:+.0%} over the run; its largest jump "
                       f"between epochs was {e['max_jump']:.0%} of ln K, the loss of a uniform guess (limit {spike:.0%})")
    elif e["train_skill"] < min_skill:
        verdict = "underfitting"
        reasons.append(f"{train_words} accuracy {e['train_acc']:.2f} is only {e['train_skill']:.0%} of the way from "
                       f"chance ({e['chance_acc']:.2f}) to perfect (limit {min_skill:.0%}): it cannot fit its own "
                       "training data")
    elif rising or memorised:
        verdict = "overfitting"
        if rising:
            reasons.append(f"val loss bottomed at epoch {e['best_epoch']} ({e['best_val_loss']:.3f}) and its "
                           f"{smooth}-epoch average ended {e['val_loss_rise']:.0%} (+{e['val_loss_rise_abs']:.3f}) above "
                           f"its lowest (limits {max_rise:.0%} and +{min_rise * math.log(num_classes):.3f})")
        if memorised:
            reasons.append(f"{train_words} accuracy {e['train_acc']:.2f} vs val {e['val_acc']:.2f} (gap {e['gap']:.2f}, "
                           f"limit {max_gap:.2f}) with a train loss {e['loss_ratio']:.0f}x below the val loss "
                           f"({e['train_loss']:.3f} vs {e['final_val_loss']:.3f}, limit {min_loss_ratio:.0f}x): it has "
                           "memorised its training set")
    else:
        verdict = "ok"
        reasons.append(f"fits its training data (skill {e['train_skill']:.0%}), smoothed val loss within "
                       f"{max_rise:.0%} or +{min_rise * math.log(num_classes):.3f} of its lowest "
                       f"({e['val_loss_rise']:+.0%}), gap {e['gap']:.2f} with a train loss {e['loss_ratio']:.1f}x below "
                       "the val loss")
    return Diagnosis(verdict, e, reasons, list(SUGGESTIONS[verdict]), history.label)


def diagnose_table(histories: Sequence[History], num_classes: int, **rules):
    """One row per run (verdict and key evidence) as a DataFrame, for the results table of a chapter."""
    import pandas as pd

    rows = {}
    for h in histories:
        d = diagnose(h, num_classes, **rules)
        e = d.evidence
        rows[h.label or f"run {len(rows) + 1}"] = {
            "verdict": d.verdict, "best epoch": e["best_epoch"], "train acc": e["train_acc"], "val acc": e["val_acc"],
            "gap": e["gap"], "best val loss": e["best_val_loss"], "final val loss": e["final_val_loss"],
            "val loss rise": e["val_loss_rise"], "loss ratio": e["loss_ratio"], "train skill": e["train_skill"]}
    return pd.DataFrame(rows).T.infer_objects()


def plot_diagnosis(histories: History | Sequence[History], num_classes: int, ncols: int = 3, **rules):
    """Loss curves per run with the best epoch marked and the train/val gap shaded, titled with the verdict."""
    import matplotlib.pyplot as plt

    histories = [histories] if isinstance(histories, History) else list(histories)
    if not histories:
        raise ValueError("plot_diagnosis needs at least one History.")
    ncols = min(ncols, len(histories))
    nrows = -(-len(histories) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.3 * nrows), squeeze=False)
    for ax in axes.flat[len(histories):]:
        ax.axis("off")
    for ax, h in zip(axes.flat, histories):
        d = diagnose(h, num_classes, **rules)
        ep, tl, vl = h["epoch"], h["train_loss"], h["val_loss"]
        ax.plot(ep, tl, "--", color="C0", label="train loss (running, train mode)")
        if d.evidence["clean"]:
            ax.plot(ep, h["clean_loss"], ":", color="C0", lw=2, label="train loss (eval mode)")
        ax.plot(ep, vl, "-o", color="C1", ms=3, label="val loss")
        ax.fill_between(ep, tl, vl, color="C3", alpha=0.12, label="gap")
        ax.axvline(d.evidence["best_epoch"], color="k", lw=1, ls=":", label=f"best epoch ({d.evidence['best_epoch']})")
        color = {"ok": "C2", "overfitting": "C3", "underfitting": "C1", "unstable": "C4"}[d.verdict]
        top = 1.6 * max(math.log(num_classes), tl[-1], vl[-1], d.evidence["best_val_loss"])
        clipped = max(tl + vl) > top  # a few huge early losses would flatten the part of the curve that matters
        if clipped:
            ax.set_ylim(0, top)
        ax.set_title(f"{h.label or 'run'}\n{d.verdict}" + (" (y-axis clipped)" if clipped else ""), fontsize=9, color=color)
        ax.set(xlabel="epoch", ylabel="loss")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def fit_keep_best(model, train_loader, val_loader, epochs: int, optimizer=None, lr: float = 1e-3,
                  patience: int | None = None, label: str = "", schedule: str = "constant", warmup: float = 0.0,
                  eval_model=None, eval_loaders: dict | None = None, monitor: str = "val_loss",
                  **fit_kwargs) -> tuple[History, dict]:
    """`utils.fit` epoch by epoch, keeping a CPU copy of the weights with the lowest val loss (early stopping).

    Training is exactly what one `fit(..., epochs=epochs)` call would do: one optimiser, and one `schedule` (with its
    `warmup`) spanning all epochs. With `patience`, training stops after that many epochs without a new best.
    `eval_model` scores the validation (and `eval_loaders`) data instead of `model`: train the whole network on
    augmented images, and score `utils.features.tail(model, k)`, which shares its weights, on cached activations.
    `monitor="val_acc"` keeps the epoch with the highest validation accuracy instead (the first, on ties), so a test
    set need not be scored every epoch: score it once, after restoring the best weights.
    Returns (history, best state dict of the scored model): `(eval_model or model).load_state_dict(best)` restores it.
    """
    from .optim import make_scheduler
    from .train import evaluate

    if val_loader is None:
        raise ValueError("Early stopping needs a validation set: pass a val_loader.")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    if monitor not in ("val_loss", "val_acc"):
        raise ValueError(f"monitor must be 'val_loss' (lowest wins) or 'val_acc' (highest wins), got {monitor!r}.")
    sign = 1.0 if monitor == "val_loss" else -1.0  # compare as a loss: lower is better
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience must be a positive integer (epochs without improvement) or None, got {patience!r}.")
    optimizer = optimizer or make_optimizer(model, lr)  # one optimiser for all epochs keeps AdamW's moments
    scheduler = fit_kwargs.pop("scheduler", None) or make_scheduler(optimizer, schedule, epochs * len(train_loader), warmup)
    scored = eval_model if eval_model is not None else model
    from .progress import progress_bar

    history, best_score, best_state, waited = History(label), math.inf, None, 0
    bar = progress_bar(total=epochs, desc=label or "fit", unit="epoch", disable=not fit_kwargs.pop("progress", True), leave=False)
    for _ in range(epochs):  # one bar over epochs (not one per epoch: each would be a saved widget in a notebook)
        if eval_model is None:
            fit(model, train_loader, val_loader, epochs=1, optimizer=optimizer, scheduler=scheduler, history=history,
                progress=False, eval_loaders=eval_loaders, **fit_kwargs)
        else:
            fit(model, train_loader, None, epochs=1, optimizer=optimizer, scheduler=scheduler, history=history,
                progress=False, **fit_kwargs)
            for name, loader in {"val": val_loader, **(eval_loaders or {})}.items():
                res = evaluate(eval_model, loader, fit_kwargs.get("loss_fn"))
                history.rows[-1].update({f"{name}_loss": res["loss"], f"{name}_acc": res["acc"]})
        bar.update()
        score = sign * history.last[monitor]
        bar.set_postfix({monitor: f"{history.last[monitor]:.3f}", "best": f"{sign * min(best_score, score):.3f}"})
        if score < best_score:
            best_score, waited = score, 0
            best_state = {k: v.detach().cpu().clone() for k, v in scored.state_dict().items()}
        else:
            waited += 1
            if patience is not None and waited >= patience:
                break
    bar.close()
    if best_state is None:  # every val loss was NaN
        best_state = {k: v.detach().cpu().clone() for k, v in scored.state_dict().items()}
    return history, best_state
