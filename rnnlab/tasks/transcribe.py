"""Transcribing spoken digit strings with CTC (unaligned labels), from the Free Spoken Digit Dataset.

The data (``rnnlab.data.fsdd``): utterances of 3-7 digits joined from FSDD recordings, split by
speaker, featurised as log-mel spectrograms (``rnnlab.data.audio``) and augmented in training:
without augmentation the model fits the training voices perfectly and transcribes a new voice at 93%
CER (measured). Scored by character error rate (jiwer) with greedy (best path) and prefix-beam-
search decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rnnlab.cells import CellName
from rnnlab.config import Config
from rnnlab.data.audio import N_MELS, log_mel, read_wav
from rnnlab.data.fsdd import SpeechBatch, SpeechBatches, fixed_set, make_batch, read_fsdd
from rnnlab.decoding import check_beam, ctc_decode
from rnnlab.device import device_of
from rnnlab.errors import ConfigError, DataError
from rnnlab.evaluation import cer
from rnnlab.models.ctc import CTCConfig, CTCModel
from rnnlab.tasks.base import Learned, Task
from rnnlab.train import TrainConfig


@dataclass(frozen=True)
class TranscriberModel(Config):
    cell: CellName = "lstm"  # recurrent cell
    hidden_size: int = 128  # [N] hidden units per layer and direction
    num_layers: int = 2  # [N] recurrent layers
    dropout: float = 0.2  # [P] dropout probability
    beam: int = 8  # [K] prefix beam width for the test set and for transcribing, 1 for greedy

    def __post_init__(self) -> None:
        check_beam(self.beam)


@dataclass(frozen=True)
class DigitsData(Config):
    fsdd: str | None = None  # [DIR] folder of FSDD recordings digit_speaker_index.wav
    batch_size: int = 32  # [N] utterances per batch
    val_size: int = 200  # [N] validation utterances
    test_size: int = 500  # [N] test utterances

    def __post_init__(self) -> None:
        if not self.fsdd:
            raise ConfigError("give the recordings: --fsdd DIR")
        if min(self.batch_size, self.val_size, self.test_size) < 1:
            raise ConfigError("batch size, validation size and test size must be positive")


@dataclass(frozen=True)
class TranscribeOptions(Config):
    model: TranscriberModel = field(default_factory=TranscriberModel)
    data: DigitsData = None  # the recordings are required
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_minutes=15, eval_every=200, lr=2e-3))


@dataclass(frozen=True)
class DigitsFolder(Config):
    fsdd: str | None = None  # [DIR] transcriber: another FSDD folder, whose test speaker is scored


@dataclass
class TranscriberLearned(Learned):
    feature_mean: np.ndarray  # (40,) over a sample of training recordings
    feature_std: np.ndarray

    def to_dict(self) -> dict:
        return {"feature_mean": self.feature_mean.tolist(), "feature_std": self.feature_std.tolist()}

    @classmethod
    def load(cls, saved: dict, read) -> TranscriberLearned:
        mean, std = (np.array(saved[k], dtype=np.float32) for k in ("feature_mean", "feature_std"))
        if mean.shape != (N_MELS,) or std.shape != (N_MELS,) or not (std > 0).all():
            raise ValueError(f"feature_mean and feature_std must be {N_MELS} numbers, the std positive")
        return cls(mean, std)


def decode(model: CTCModel, batch: SpeechBatch, beam: int) -> list[str]:
    """The digits heard in each utterance of a batch (label c is the digit c - 1; 0 is the blank)."""
    model.eval()
    with torch.inference_mode():
        log_probs, _ = model(batch.inputs.to(device_of(model)), batch.lengths)
    labels = ctc_decode(log_probs, model.output_lengths(batch.lengths), beam)
    return ["".join(str(c - 1) for c in utterance) for utterance in labels]


def score(model: CTCModel, utterances, learned: TranscriberLearned, beam: int) -> dict[str, float]:
    refs, greedy, beamed = [], [], []
    for start in range(0, len(utterances), 64):
        batch = make_batch(utterances[start : start + 64], learned.feature_mean, learned.feature_std)
        refs += batch.texts
        greedy += decode(model, batch, 1)
        if beam > 1:
            beamed += decode(model, batch, beam)
    exact = lambda hyps: float(np.mean([a == b for a, b in zip(refs, hyps)]))  # noqa: E731
    out = {"cer_greedy": cer(refs, greedy), "exact_greedy": exact(greedy)}
    if beam > 1:
        out.update({"cer_beam": cer(refs, beamed), "exact_beam": exact(beamed)})
    return out


class TranscribeTask(Task):
    name, kind = "transcribe", "transcriber"
    help = "CTC transcription of spoken digit strings"
    description = (
        "Train a CTC model on digit strings joined from FSDD recordings, split by speaker. Prints the test speaker's "
        "character error rate for greedy and prefix-beam-search decoding."
    )
    Options, ModelConfig, Learned, EvalData = TranscribeOptions, CTCConfig, TranscriberLearned, DigitsFolder
    v1_names = {"folder": "fsdd"}

    def read(self, options: TranscribeOptions) -> dict:
        return read_fsdd(options.data.fsdd)

    def fit(self, options, pools: dict) -> TranscriberLearned:
        sample = np.concatenate([log_mel(a) for d in range(10) for a in pools["train"][d][:20]])
        return TranscriberLearned(sample.mean(0), sample.std(0) + 1e-6)

    def encode(self, options: TranscribeOptions, learned, pools: dict) -> dict:
        return {
            "pools": pools,
            "val": fixed_set(pools["val"], options.data.val_size, options.train.seed),
            "learned": learned,
        }

    def model_config(self, options: TranscribeOptions, learned) -> CTCConfig:
        m = options.model
        return CTCConfig(N_MELS, 10, cell=m.cell, hidden_size=m.hidden_size, num_layers=m.num_layers, dropout=m.dropout)

    def build(self, config: CTCConfig) -> CTCModel:
        return CTCModel(config)

    def batches(self, options: TranscribeOptions, data: dict) -> SpeechBatches:
        learned = data["learned"]
        return SpeechBatches(
            data["pools"]["train"], options.data.batch_size, learned.feature_mean, learned.feature_std, options.train.seed
        )

    def validator(self, options, learned, data: dict):
        def validate(model) -> dict[str, float]:
            s = score(model, data["val"], learned, beam=1)
            return {"val_cer": s["cer_greedy"], "score": -s["cer_greedy"]}

        return validate

    def test(self, run, data: dict) -> dict:
        return self.test_scores(run, data["pools"])

    def test_scores(self, run, pools: dict) -> dict:
        d = run.options.data
        return score(
            run.model, fixed_set(pools["test"], d.test_size, run.options.train.seed + 1), run.learned, run.options.model.beam
        )

    def evaluate(self, run, given: DigitsFolder | None) -> dict:
        return self.test_scores(run, read_fsdd(given.fsdd if given and given.fsdd else run.options.data.fsdd))

    def format_scores(self, what, s: dict) -> str:
        beam = f", prefix beam {100 * s['cer_beam']:.2f}%" if "cer_beam" in s else ""
        exact = f", beam {100 * s['exact_beam']:.1f}%" if "exact_beam" in s else ""
        greedy, right = 100 * s["cer_greedy"], 100 * s["exact_greedy"]
        return f"test speaker: CER greedy {greedy:.2f}%{beam}; whole strings right: greedy {right:.1f}%{exact}"

    def predict(self, run, inputs: list, beam: int | None = None) -> list[tuple[str, str]]:
        """(path, digits) for each audio file (resampled to 8 kHz if need be)."""
        if not inputs:
            raise DataError("give audio files to transcribe")
        beam = run.options.model.beam if beam is None else beam
        check_beam(beam)
        audio = [read_wav(p) for p in inputs]
        short = [p for p, a in zip(inputs, audio) if len(a) < 400]
        if short:
            raise DataError(f"{short[0]}: shorter than 50 ms, nothing to transcribe")
        texts = [
            decode(run.model, make_batch([(a, "")], run.learned.feature_mean, run.learned.feature_std), beam)[0]
            for a in audio
        ]
        return list(zip(inputs, texts))

    def format_prediction(self, prediction) -> str:
        return f"{prediction[0]}: {prediction[1]}"


TASK = TranscribeTask()
