"""ONNX export of a trained character model or classifier, checked against torch with onnxruntime.

    rnnlab export RUN [--out DIR]           (default DIR: RUN/onnx)

Character model (``charlm``), two graphs and the vocabulary:

    step.onnx       token (B,) int64, h (L, B, H)[, c (L, B, H)]  ->  logits (B, V), h_out[, c_out]
                    one character per call with the state passed in and out: streaming generation
    sequence.onnx   tokens (B, T) int64, h, c as above             ->  logits (B, T, V), h_out[, c_out]
    rnnlab.json     {"kind", "inputs", "outputs", "chars": the vocabulary in id order, "state": ["h", "c"]}

Classifier (``classify``, text), one graph:

    classifier.onnx tokens (B, T) int64  ->  probabilities (B, C)
                    every row of a batch is read to its end: pass one text at a time, or texts of
                    equal length (the graph has no padding mask)
    rnnlab.json     {"labels", "encoder": how text becomes ids (the words, or "subwords" with
                    subwords.spm, a sentencepiece model, beside it)}

Batch and time are dynamic. Each graph is exported with ``torch.onnx.export`` (the torch.export
path: the fused LSTM/GRU/RNN become ONNX's own recurrent operators), then run by onnxruntime on
random inputs of a batch and a length different from the export's and compared with torch
(``Exported.max_difference``; tests hold it under 1e-5). Files are written to temporary names and
renamed, so a failed export leaves nothing half-written. Needs the ``export`` extra (onnx,
onnxscript, onnxruntime).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rnnlab.errors import RnnlabError
from rnnlab.extras import require
from rnnlab.io import atomic_write, fsync_folder
from rnnlab.recurrent import full_lengths

OPSET = 18


@dataclass
class Exported:
    files: list[Path]
    max_difference: float  # largest |onnxruntime - torch| over every output of every graph
    tokens_per_s: float | None = None  # onnxruntime, batch 1, one step per call (the character model)
    notes: list[str] = field(default_factory=list)


class _Step(nn.Module):
    """token (B,), h -> logits (B, V), h_out: ``CharLM.step`` (torch.export wants named arguments, so
    the two-state LSTM has its own class below)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, token: Tensor, h: Tensor):
        logits, (h,) = self.model.step(token, (h,))
        return logits, h


class _StepLSTM(_Step):
    def forward(self, token: Tensor, h: Tensor, c: Tensor):
        logits, (h, c) = self.model.step(token, (h, c))
        return logits, h, c


class _Sequence(_Step):
    """tokens (B, T), h -> logits (B, T, V), h_out: ``CharLM.forward``."""

    def forward(self, tokens: Tensor, h: Tensor):
        logits, (h,) = self.model(tokens, state=(h,))
        return logits, h


class _SequenceLSTM(_Step):
    def forward(self, tokens: Tensor, h: Tensor, c: Tensor):
        logits, (h, c) = self.model(tokens, state=(h, c))
        return logits, h, c


class _Probabilities(nn.Module):
    """tokens (B, T) -> class probabilities (B, C): a classifier over unpadded sequences."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor) -> Tensor:
        m = self.model
        if not hasattr(m, "rnn"):  # the bag of embeddings
            return m(tokens)[0].softmax(-1)
        lengths = full_lengths(tokens)  # (B,): all T; the recurrent layer runs unmasked
        y, final = m.rnn(m.input(tokens))  # (B, T, D*H)
        return m.head(m.pool(y, lengths, final[0])).softmax(-1)


def export(run, out: str | Path) -> Exported:
    """Write the ONNX graphs of ``run`` (a loaded charlm or text classifier) into ``out``."""
    require("onnx", "export")
    require("onnxscript", "export")
    ort = require("onnxruntime", "export")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RnnlabError(f"--out {out}: is a file; expected a folder for the ONNX files")
    out.mkdir(parents=True, exist_ok=True)
    model = run.model.to("cpu").eval()
    kind = run.task.kind
    if kind == "charlm":
        return _export_charlm(run, model, out, ort)
    if kind == "classifier":
        if run.learned.input != "text":
            raise RnnlabError("only text classifiers can be exported (a series classifier reads features)")
        return _export_classifier(run, model, out, ort)
    raise RnnlabError(f"export covers the character model and the text classifier, not a {kind!r} run")


def _export_charlm(run, model, out: Path, ort) -> Exported:
    rnn = model.rnn
    names = list(rnn.state_names)  # ["h"] or ["h", "c"]
    layers, hidden = rnn.num_layers, rnn.hidden_size
    generator = torch.Generator().manual_seed(0)
    vocab = len(run.vocab)

    def state(batch):
        return tuple(0.5 * torch.randn(layers, batch, hidden, generator=generator) for _ in names)

    batch_dim = torch.export.Dim("batch", min=1)
    steps_dim = torch.export.Dim("steps", min=1)
    state_shapes = {n: {1: batch_dim} for n in names}
    lstm = len(names) == 2
    step, sequence = (_StepLSTM(model), _SequenceLSTM(model)) if lstm else (_Step(model), _Sequence(model))
    step_path = _write_onnx(
        step,
        (torch.randint(0, vocab, (2,), generator=generator), *state(2)),
        ["token", *names],
        ["logits", *(f"{n}_out" for n in names)],
        {"token": {0: batch_dim}, **state_shapes},
        out / "step.onnx",
    )
    sequence_path = _write_onnx(
        sequence,
        (torch.randint(0, vocab, (2, 5), generator=generator), *state(2)),
        ["tokens", *names],
        ["logits", *(f"{n}_out" for n in names)],
        {"tokens": {0: batch_dim, 1: steps_dim}, **state_shapes},
        out / "sequence.onnx",
    )
    # check on a batch and a length the export never saw
    token, s = torch.randint(0, vocab, (3,), generator=generator), state(3)
    tokens = torch.randint(0, vocab, (3, 17), generator=generator)
    with torch.inference_mode():
        diffs = [_compare(ort, step_path, dict(zip(["token", *names], (token, *s))), step(token, *s))]
        diffs.append(_compare(ort, sequence_path, dict(zip(["tokens", *names], (tokens, *s))), sequence(tokens, *s)))
    meta = {
        "kind": "charlm",
        "files": {"step.onnx": "one token per call", "sequence.onnx": "a whole sequence"},
        "inputs": {
            "token": "(B,) int64",
            "tokens": "(B, T) int64",
            **{n: f"({layers}, B, {hidden}) float32" for n in names},
        },
        "outputs": {"logits": "(B, V) or (B, T, V)", **{f"{n}_out": "the new state" for n in names}},
        "state": names,
        "chars": list(run.vocab.chars),
    }
    atomic_write(out / "rnnlab.json", json.dumps(meta, ensure_ascii=False, indent=1).encode())
    speed = _step_speed(ort, step_path, names, layers, hidden, vocab)
    return Exported([step_path, sequence_path, out / "rnnlab.json"], max(diffs), speed)


def _export_classifier(run, model, out: Path, ort) -> Exported:
    generator = torch.Generator().manual_seed(0)
    vocab = run.learned.encoder.input_config()["vocab_sizes"][0]
    batch_dim, steps_dim = torch.export.Dim("batch", min=1), torch.export.Dim("steps", min=1)
    path = _write_onnx(
        _Probabilities(model),
        (torch.randint(1, vocab, (2, 7), generator=generator),),
        ["tokens"],
        ["probabilities"],
        {"tokens": {0: batch_dim, 1: steps_dim}},
        out / "classifier.onnx",
    )
    tokens = torch.randint(1, vocab, (3, 23), generator=generator)
    with torch.inference_mode():
        diff = _compare(ort, path, {"tokens": tokens}, (_Probabilities(model)(tokens),))
    files = [path, out / "rnnlab.json"]
    for name, data in run.learned.files().items():  # the subword model, when there is one
        atomic_write(out / name, data)
        files.append(out / name)
    meta = {
        "kind": "classifier",
        "inputs": {"tokens": "(B, T) int64, no padding"},
        "outputs": {"probabilities": "(B, C) float32"},
        "labels": run.learned.labels,
        "encoder": run.learned.encoder.to_dict(),
    }
    atomic_write(out / "rnnlab.json", json.dumps(meta, ensure_ascii=False, indent=1).encode())
    return Exported(files, diff)


def _write_onnx(module: nn.Module, args: tuple, inputs: list[str], outputs: list[str], dynamic: dict, path: Path) -> Path:
    """torch.onnx.export to a temporary name, then rename; torch.export's chatter is kept off the terminal."""
    onnx = require("onnx", "export")
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shapes = {name: dynamic.get(name) for name in inputs}
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # "torchvision is not installed" and the like
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            torch.inference_mode(False),
            torch.no_grad(),
        ):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                args,
                dynamic_shapes=shapes,
                input_names=inputs,
                output_names=outputs,
                opset_version=OPSET,
                dynamo=True,
            )
        graph = program.model_proto
        _unpin_output_shapes(graph)
        onnx.checker.check_model(graph)
        temporary.write_bytes(graph.SerializeToString())
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
        fsync_folder(path.parent)
    except RnnlabError:
        raise
    except Exception as e:  # the exporter's failures name torch internals; say what could not be exported
        raise RnnlabError(
            f"could not export {path.name} to ONNX: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
        ) from None
    finally:
        exporter_log.setLevel(level)
        temporary.unlink(missing_ok=True)
    return path


def _unpin_output_shapes(graph) -> None:
    """The exporter can write the example's length into the outputs' declared shapes (the recurrent
    operator's shape inference), which onnxruntime then warns about; the graph itself is dynamic, so
    the outputs' sizes are left undeclared."""
    for output in graph.graph.output:
        for dim in output.type.tensor_type.shape.dim:
            dim.ClearField("dim_value")
    del graph.graph.value_info[:]  # the intermediate shapes, inferred again by whoever loads the graph


def _compare(ort, path: Path, feeds: dict[str, Tensor], expected) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in feeds.items()})
    return max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))


def _step_speed(ort, path: Path, names: list[str], layers: int, hidden: int, vocab: int, tokens: int = 500) -> float:
    """onnxruntime tokens/s generating greedily at batch 1, one step.onnx call per token (1 thread)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {"token": np.zeros(1, dtype=np.int64), **{n: np.zeros((layers, 1, hidden), np.float32) for n in names}}
    started = time.perf_counter()
    for _ in range(tokens):
        logits, *state = session.run(None, feeds)
        feeds = {"token": logits.argmax(-1).astype(np.int64), **dict(zip(names, state))}
    return tokens / (time.perf_counter() - started)
