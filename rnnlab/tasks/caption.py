"""Image captioning (one-to-many) on a folder of images and a captions CSV (``rnnlab.data.captions``).

Metric: corpus BLEU-4 (sacrebleu, lower-cased) against all of an image's captions, beside two
non-learned baselines: the most frequent training caption for every image, and the first caption of
the nearest training image by pixel statistics (per-channel means and standard deviations over a
4 x 4 grid).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from rnnlab.cells import CellName
from rnnlab.config import Config
from rnnlab.data.captions import CaptionBatches, CaptionData, caption_vocab, encode_captions, read_captions
from rnnlab.data.images import grid_statistics, load_image, normalise, pixel_statistics
from rnnlab.data.tokens import BOS, EOS
from rnnlab.data.words import WordVocab
from rnnlab.decoding import beam_search, check_beam, greedy_decode
from rnnlab.device import device_of
from rnnlab.errors import ConfigError, DataError
from rnnlab.evaluation import caption_bleu4
from rnnlab.models.generator import Captioner, CaptionerConfig
from rnnlab.tasks.base import Learned, Task
from rnnlab.train import TrainConfig

MAX_WORDS = 25  # a caption ends after at most 25 words


@dataclass(frozen=True)
class CaptionerModel(Config):
    cell: CellName = "lstm"  # recurrent cell of the decoder
    hidden_size: int = 256  # [N] the decoder's hidden units
    embedding_dim: int = 128  # [N] word embedding size
    channels: int = 128  # [N] the CNN's output features per image place
    attention: Literal["none", "additive"] = "none"  # attend over image places (show, attend and tell)
    dropout: float = 0.3  # [P] dropout probability
    beam: int = 3  # [K] beam width for the test set and for captioning

    def __post_init__(self) -> None:
        check_beam(self.beam)


@dataclass(frozen=True)
class CaptionFolder(Config):
    folder: str | None = None  # [DIR] folder with images/ and captions.txt
    min_count: int = 3  # [N] times a word must occur in the training captions to be in the vocabulary
    batch_size: int = 32  # [N] captions per batch

    def __post_init__(self) -> None:
        if not self.folder:
            raise ConfigError("give the data: --folder DIR (images/ and captions.txt)")
        if self.min_count < 1 or self.batch_size < 1:
            raise ConfigError("min count and batch size must be positive")


@dataclass(frozen=True)
class CaptionOptions(Config):
    model: CaptionerModel = field(default_factory=CaptionerModel)
    data: CaptionFolder = None  # the images are required
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_minutes=15, eval_every=200, lr=2e-3))


@dataclass(frozen=True)
class CaptionTestFolder(Config):
    folder: str | None = None  # [DIR] captioner: another folder of images/ and captions.txt, whose test part is scored


@dataclass
class CaptionerLearned(Learned):
    vocab: WordVocab
    pixel_mean: np.ndarray  # (3,)
    pixel_std: np.ndarray  # (3,)

    def to_dict(self) -> dict:
        return {
            "vocab": list(self.vocab.words),
            "pixel_mean": self.pixel_mean.tolist(),
            "pixel_std": self.pixel_std.tolist(),
        }

    @classmethod
    def load(cls, saved: dict, read) -> CaptionerLearned:
        mean, std = (np.array(saved[k], dtype=np.float32) for k in ("pixel_mean", "pixel_std"))
        if mean.shape != (3,) or std.shape != (3,) or not (std > 0).all():
            raise ValueError("pixel_mean and pixel_std must be three numbers, the std positive")
        return cls(WordVocab(tuple(saved["vocab"])), mean, std)


def describe_images(model: Captioner, vocab: WordVocab, images: torch.Tensor, beam: int) -> list[str]:
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), 64):
            chunk = images[start : start + 64].to(device_of(model))
            lengths = torch.ones(len(chunk), dtype=torch.int64)
            if beam == 1:
                hyps = greedy_decode(model, chunk, lengths, MAX_WORDS, BOS, EOS)
            else:
                hyps = beam_search(model, chunk, lengths, min(beam, len(vocab)), MAX_WORDS, BOS, EOS, alpha=1.0)
            out.extend(" ".join(vocab.words[t] for t in h.tokens) for h in hyps)
    return out


def baselines(data: CaptionData, split: str = "test") -> dict[str, list[str]]:
    train_caps = [c for caps in data.captions["train"] for c in caps]
    common = Counter(c.lower() for c in train_caps).most_common(1)[0][0]
    a, b = grid_statistics(data.images["train"]), grid_statistics(data.images[split])
    nearest = ((b[:, None, :] - a[None, :, :]) ** 2).sum(-1).argmin(1)
    return {
        "most frequent training caption": [common] * len(data.names[split]),
        "nearest training image by pixel statistics": [data.captions["train"][i][0] for i in nearest],
    }


def test_scores(run, data: CaptionData) -> dict:
    learned, beam = run.learned, run.options.model.beam
    images, refs = normalise(data.images["test"], learned.pixel_mean, learned.pixel_std), data.captions["test"]
    beamed = describe_images(run.model, learned.vocab, images, beam)
    return {
        "greedy": caption_bleu4(describe_images(run.model, learned.vocab, images, 1), refs),
        f"beam {beam}": caption_bleu4(beamed, refs),
        **{name: caption_bleu4(caps, refs) for name, caps in baselines(data).items()},
        "examples": list(zip(data.names["test"][:5], beamed[:5])),
    }


class CaptionTask(Task):
    name, kind = "caption", "captioner"
    help = "image captioning (one-to-many)"
    description = (
        "Train a captioner (a CNN from scratch, its features start an LSTM decoder) on images/ and captions.txt "
        "(CSV image,caption). Prints test BLEU-4 beside two non-learned baselines."
    )
    Options, ModelConfig, Learned, EvalData = CaptionOptions, CaptionerConfig, CaptionerLearned, CaptionTestFolder

    def read(self, options: CaptionOptions) -> CaptionData:
        return read_captions(options.data.folder)

    def fit(self, options: CaptionOptions, data: CaptionData) -> CaptionerLearned:
        mean, std = pixel_statistics(data.images["train"])
        return CaptionerLearned(caption_vocab(data.captions["train"], options.data.min_count), mean, std)

    def model_config(self, options: CaptionOptions, learned: CaptionerLearned) -> CaptionerConfig:
        m = options.model
        return CaptionerConfig(
            len(learned.vocab),
            cell=m.cell,
            channels=m.channels,
            embedding_dim=m.embedding_dim,
            hidden_size=m.hidden_size,
            attention=m.attention,
            dropout=m.dropout,
        )

    def check_learned(self, learned: CaptionerLearned, config: CaptionerConfig) -> None:
        if len(learned.vocab) != config.vocab:
            raise ValueError(f"{len(learned.vocab)} words in the vocabulary, but a model of {config.vocab}")

    def build(self, config: CaptionerConfig) -> Captioner:
        return Captioner(config)

    def encode(self, options, learned: CaptionerLearned, data: CaptionData) -> tuple:
        return data, encode_captions(learned.vocab, data.captions["train"]), learned

    def batches(self, options: CaptionOptions, data) -> CaptionBatches:
        raw, encoded, learned = data
        return CaptionBatches(
            raw.images["train"], encoded, options.data.batch_size, learned.pixel_mean, learned.pixel_std, options.train.seed
        )

    def validator(self, options, learned: CaptionerLearned, data):
        raw = data[0]
        images = normalise(raw.images["val"], learned.pixel_mean, learned.pixel_std)

        def validate(model) -> dict[str, float]:
            score = caption_bleu4(describe_images(model, learned.vocab, images, 1), raw.captions["val"])
            return {"val_bleu4_greedy": score, "score": score}

        return validate

    def test(self, run, data) -> dict:
        return test_scores(run, data[0])

    def evaluate(self, run, given: CaptionTestFolder | None) -> dict:
        return test_scores(run, read_captions(given.folder if given and given.folder else run.options.data.folder))

    def format_scores(self, what, scores: dict) -> str:
        lines = [f"test BLEU-4, {name}: {value:.2f}" for name, value in scores.items() if name != "examples"]
        return "\n".join(lines + [f"  {image}: {text}" for image, text in scores["examples"]])

    def predict(self, run, inputs: list, beam: int | None = None) -> list[tuple[str, str]]:
        """(image path, caption) for each image file."""
        if not inputs:
            raise DataError("give image files to caption")
        beam = run.options.model.beam if beam is None else beam
        check_beam(beam)
        images = normalise(np.stack([load_image(p) for p in inputs]), run.learned.pixel_mean, run.learned.pixel_std)
        return list(zip(inputs, describe_images(run.model, run.learned.vocab, images, beam)))

    def format_prediction(self, prediction) -> str:
        return f"{prediction[0]}: {prediction[1]}"


TASK = CaptionTask()
