"""Scoring trained models: each task's numbers, apart from the wiring that trains them.

score_tokens(lm, tokens)                           nats and bits per token, state carried (language models)
classification_scores(model, items, labels, names) loss, accuracy, macro-F1, confusion matrix
tagging_scores(model, items, targets, names)       per-step accuracy and macro-F1; chunk F1 for B-/I-/O tags
naive_forecasts, forecast_errors                   the baselines and MAE, RMSE, MAPE, MASE
caption_bleu4, cer                                 BLEU-4 against several references; character error rate
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.data.batching import eval_batches
from rnnlab.data.conll import chunk_f1
from rnnlab.data.streams import eval_batches as stream_batches
from rnnlab.data.tokens import IGNORE
from rnnlab.device import device_of
from rnnlab.extras import require
from rnnlab.models.tagger import tagging_loss

LN2 = math.log(2)


@dataclass(frozen=True)
class TextScore:
    chars: int  # characters scored (every one after the first)
    nats_per_char: float

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / LN2


def score_tokens(model, tokens: Tensor, batch_size: int = 32, seq_len: int = 256) -> TextScore:
    """Mean cross-entropy of every next token of ``tokens``, state carried through the stream."""
    total, count, state, device = 0.0, 0, None, device_of(model)
    with torch.inference_mode():
        for batch in stream_batches(tokens, batch_size, seq_len):
            if batch.reset:
                state = None
            elif batch.keep_rows is not None:
                state = tuple(s[:, batch.keep_rows] for s in state)  # (L, B, H) -> (L, rows, H)
            logits, state = model(batch.inputs.to(device), state=state)
            total += float(F.cross_entropy(logits.flatten(0, 1), batch.targets.to(device).flatten(), reduction="sum"))
            count += batch.num_tokens
    return TextScore(count, total / count)


def classification_scores(model, items: list, labels: list[int], names: list[str], batch_size: int = 128) -> dict:
    """Loss, accuracy, macro-F1 and the confusion matrix (rows: true class, columns: predicted)
    of ``model`` on encoded items whose classes are named ``names``."""
    model.eval()
    predictions = np.zeros(len(items), dtype=np.int64)
    total, device = 0.0, device_of(model)
    with torch.inference_mode():
        for batch in eval_batches(items, batch_size, labels=labels):
            logits, _ = model(batch.inputs.to(device), batch.lengths)
            total += float(F.cross_entropy(logits, batch.labels.to(device), reduction="sum"))
            predictions[batch.index.numpy()] = logits.argmax(-1).cpu().numpy()
    y = np.array(labels)
    return {
        "examples": len(items),
        "loss": total / len(items),
        "accuracy": float((predictions == y).mean()),
        "macro_f1": macro_f1(y, predictions),
        "confusion": confusion(y, predictions, len(names)).tolist(),
        "labels": list(names),
    }


def tagging_scores(model, items: list, targets: list, names: list[str], batch_size: int = 64) -> dict:
    """Loss, accuracy and macro-F1 over labelled steps; chunk-level F1 when the tags are B-/I-/O."""
    model.eval()
    total, count, gold, pred, seqs, device = 0.0, 0, [], [], [None] * len(items), device_of(model)
    with torch.inference_mode():
        for batch in eval_batches(items, batch_size, targets=targets):
            logits, _ = model(batch.inputs.to(device), batch.lengths)
            known = torch.where(batch.targets >= logits.shape[-1], IGNORE, batch.targets)  # unseen tags: no loss
            n = int((known != IGNORE).sum())
            total += float(tagging_loss(logits, known.to(device))) * n if n else 0.0
            count += n
            guess = logits.argmax(-1).cpu()
            for row, i in enumerate(batch.index.tolist()):
                length = int(batch.lengths[row])
                t, g = batch.targets[row, :length], guess[row, :length]
                keep = t != IGNORE
                gold.append(t[keep].numpy())
                pred.append(g[keep].numpy())
                seqs[i] = (t.tolist(), g.tolist())
    y, p = np.concatenate(gold), np.concatenate(pred)
    out = {
        "sequences": len(items),
        "loss": total / max(count, 1),
        "accuracy": float((y == p).mean()),
        "macro_f1": macro_f1(y, p, labels=sorted(set(y.tolist()))),
    }
    if any(n.startswith(("B-", "I-")) for n in names):
        chunks = chunk_f1([[names[i] for i in t] for t, _ in seqs], [[names[i] for i in g] for _, g in seqs])
        out.update({f"chunk_{k}": v for k, v in chunks.items()})
    return out


def confusion(y: np.ndarray, p: np.ndarray, classes: int) -> np.ndarray:
    """(C, C) counts: row the true class, column the predicted one."""
    return np.bincount(y * classes + p, minlength=classes * classes).reshape(classes, classes)


def macro_f1(y: np.ndarray, p: np.ndarray, labels: list[int] | None = None) -> float:
    """The mean over ``labels`` (by default every class that is true or predicted) of each class's
    F1 = 2 TP / (2 TP + FP + FN), a class with no true or predicted example counting 0 (as
    scikit-learn's f1_score(average="macro") computes it; tested against it)."""
    labels = sorted(set(y.tolist()) | set(p.tolist())) if labels is None else labels
    scores = []
    for c in labels:
        tp, fp, fn = np.sum((p == c) & (y == c)), np.sum((p == c) & (y != c)), np.sum((p != c) & (y == c))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def naive_forecasts(y: np.ndarray, origins: np.ndarray, horizon: int, season: int | None) -> dict[str, np.ndarray]:
    """The naive (last value) and, with a season, the seasonal-naive forecasts (N, k) at each origin."""
    steps = np.arange(1, horizon + 1)
    out = {"naive": np.repeat(y[origins][:, None], horizon, axis=1)}
    if season:
        lag = season * np.ceil(steps / season).astype(int)
        out["seasonal naive"] = y[origins[:, None] + steps[None, :] - lag[None, :]]
    return out


def forecast_errors(pred: np.ndarray, actual: np.ndarray, scale: float) -> dict[str, float]:
    """MAE, RMSE, MAPE (%) and MASE (the MAE divided by ``scale``) of forecasts (N, k)."""
    e = pred - actual
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mape = float(np.mean(np.abs(e / actual))) * 100 if (actual != 0).all() else float("nan")
        return {
            "MAE": float(np.abs(e).mean()),
            "RMSE": float(np.sqrt((e**2).mean())),
            "MAPE": mape,
            "MASE": float(np.abs(e).mean() / scale) if scale > 0 else float("nan"),
        }


def caption_bleu4(hypotheses: list[str], references: list[list[str]]) -> float:
    """Corpus BLEU-4 (sacrebleu, lower-cased) against every reference caption of each image."""
    sacrebleu = require("sacrebleu", "vision")

    streams = [[refs[k] if k < len(refs) else "" for refs in references] for k in range(max(map(len, references)))]
    # Flickr8k's captions are tokenised ("a dog runs .") on both sides alike; force=True only silences
    # sacrebleu's warning about it, the score is the same.
    return float(sacrebleu.corpus_bleu(hypotheses, streams, lowercase=True, force=True).score)


def cer(references: list[str], hypotheses: list[str]) -> float:
    """Character error rate: (substitutions + deletions + insertions) / reference characters (jiwer)."""
    jiwer = require("jiwer", "audio")

    return float(jiwer.cer(references, [h if h else " " for h in hypotheses]))
