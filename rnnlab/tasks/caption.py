"""Image captioning (one-to-many), end to end, on a folder of images and a captions CSV.

Data: ``images/*.jpg`` and ``captions.txt`` (CSV ``image,caption``, several captions per image), as in
../shared/data/captioning/flickr8k_1000. The split is by image and fixed: images sorted by file name,
the first 80% train, the next 10% validate (BLEU picks the best weights), the last 10% test.

Metric: corpus BLEU-4 (sacrebleu, lower-cased) against all of an image's captions, beside two
non-learned baselines: the most frequent training caption for every image, and the first caption of
the nearest training image by pixel statistics (per-channel means and standard deviations over a
4 x 4 grid).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from rnnlab import checkpoint
from rnnlab.data.words import PAD, UNK, WordVocab, tokenize
from rnnlab.decoding import beam_search, greedy_decode
from rnnlab.errors import CheckpointError, ConfigError, DataError
from rnnlab.models.generator import IMAGE_SIZE, Captioner, CaptionerConfig
from rnnlab.models.seq2seq import BOS, EOS
from rnnlab.models.tagger import IGNORE
from rnnlab.tasks.runs import options_from_dict, start_or_resume
from rnnlab.train import TrainConfig, Trainer

KIND = "captioner"


def load_image(path: str | Path) -> np.ndarray:
    """(3, 64, 64) uint8: the centre square of the image, resized."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            im = im.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2))
            im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None


@dataclass
class CaptionData:
    names: dict[str, list[str]]  # split -> image file names
    images: dict[str, np.ndarray]  # split -> (N, 3, 64, 64) uint8
    captions: dict[str, list[list[str]]]  # split -> per image, its captions


def load_data(folder: str | Path) -> CaptionData:
    import pandas as pd

    root = Path(folder)
    table = root / "captions.txt"
    if not table.is_file():
        raise DataError(f"{folder}: expected captions.txt (CSV image,caption) and images/")
    df = pd.read_csv(table, dtype=str, keep_default_na=False)
    if not {"image", "caption"} <= set(df.columns):
        raise DataError(f"{table}: expected the columns image and caption, got {', '.join(df.columns)}")
    by_image: dict[str, list[str]] = {}
    for image, caption in zip(df["image"], df["caption"]):
        by_image.setdefault(image, []).append(caption.strip())
    names = sorted(by_image)
    n = len(names)
    cut = {"train": (0, int(n * 0.8)), "val": (int(n * 0.8), int(n * 0.9)), "test": (int(n * 0.9), n)}
    split_names = {k: names[a:b] for k, (a, b) in cut.items()}
    images = {k: np.stack([load_image(root / "images" / name) for name in v]) for k, v in split_names.items()}
    captions = {k: [by_image[name] for name in v] for k, v in split_names.items()}
    return CaptionData(split_names, images, captions)


@dataclass(frozen=True)
class CaptionOptions:
    folder: str
    cell: str = "lstm"
    hidden_size: int = 256
    embedding_dim: int = 128
    channels: int = 128
    attention: str = "none"
    dropout: float = 0.3
    min_count: int = 3
    batch_size: int = 32
    beam: int = 3
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_minutes=15, eval_every=200, lr=2e-3))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CaptionOptions:
        return options_from_dict(cls, d)


def caption_vocab(captions: list[list[str]], min_count: int) -> WordVocab:
    counts = Counter(t for caps in captions for c in caps for t in tokenize(c))
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    return WordVocab((PAD, UNK, "<s>", "</s>", *words))


@dataclass
class CaptionBatch:
    images: torch.Tensor  # (B, 3, 64, 64) float, normalised
    tgt_in: torch.Tensor  # (B, T)
    tgt_out: torch.Tensor  # (B, T)
    reset: bool = True

    @property
    def num_tokens(self) -> int:
        return int((self.tgt_out != IGNORE).sum())


def normalise(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).float() / 255.0
    return (x - torch.from_numpy(mean)[:, None, None]) / torch.from_numpy(std)[:, None, None]


class CaptionBatches:
    """Random (image, one of its captions) pairs; images flipped left-right at random."""

    def __init__(
        self, images: np.ndarray, captions: list[list[torch.Tensor]], batch_size: int, mean, std, seed: int
    ) -> None:
        self.images, self.captions, self.batch_size = images, captions, batch_size
        self.mean, self.std, self.seed = mean, std, seed
        self.pairs = [(i, j) for i, caps in enumerate(captions) for j in range(len(caps))]

    def __len__(self) -> int:
        return max(1, len(self.pairs) // self.batch_size)

    def batch(self, step: int) -> CaptionBatch:
        rng = np.random.default_rng([self.seed, step])
        chosen = [self.pairs[k] for k in rng.choice(len(self.pairs), self.batch_size, replace=False)]
        imgs = self.images[[i for i, _ in chosen]].copy()
        flip = rng.random(len(chosen)) < 0.5
        imgs[flip] = imgs[flip][..., ::-1]
        seqs = [self.captions[i][j] for i, j in chosen]  # each BOS ... EOS
        longest = max(len(s) for s in seqs)
        tgt_in = torch.full((len(seqs), longest - 1), 0, dtype=torch.int64)
        tgt_out = torch.full((len(seqs), longest - 1), IGNORE, dtype=torch.int64)
        for b, s in enumerate(seqs):
            tgt_in[b, : len(s) - 1] = s[:-1]
            tgt_out[b, : len(s) - 1] = s[1:]
        return CaptionBatch(normalise(imgs, self.mean, self.std), tgt_in, tgt_out)


@dataclass
class CaptionerRun:
    path: Path
    model: Captioner
    vocab: WordVocab
    mean: np.ndarray
    std: np.ndarray
    options: CaptionOptions
    config: dict


def describe_images(model: Captioner, vocab: WordVocab, images: torch.Tensor, beam: int) -> list[str]:
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), 64):
            chunk = images[start : start + 64]
            lengths = torch.ones(len(chunk), dtype=torch.int64)
            if beam == 1:
                hyps = greedy_decode(model, chunk, lengths, 25, BOS, EOS)
            else:
                hyps = beam_search(model, chunk, lengths, beam, 25, BOS, EOS, alpha=1.0)
            out.extend(" ".join(vocab.words[t] for t in h.tokens) for h in hyps)
    return out


def bleu4(hypotheses: list[str], references: list[list[str]]) -> float:
    import sacrebleu

    streams = [[refs[k] if k < len(refs) else "" for refs in references] for k in range(max(map(len, references)))]
    # Flickr8k's captions are tokenised ("a dog runs .") on both sides alike; force=True only silences
    # sacrebleu's warning about it, the score is the same.
    return float(sacrebleu.corpus_bleu(hypotheses, streams, lowercase=True, force=True).score)


def _pixel_stats(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32).reshape(len(images), 3, 4, IMAGE_SIZE // 4, 4, IMAGE_SIZE // 4)
    return np.concatenate([x.mean((3, 5)).reshape(len(images), -1), x.std((3, 5)).reshape(len(images), -1)], 1)


def baselines(data: CaptionData, split: str = "test") -> dict[str, list[str]]:
    train_caps = [c for caps in data.captions["train"] for c in caps]
    common = Counter(c.lower() for c in train_caps).most_common(1)[0][0]
    a, b = _pixel_stats(data.images["train"]), _pixel_stats(data.images[split])
    nearest = ((b[:, None, :] - a[None, :, :]) ** 2).sum(-1).argmin(1)
    return {
        "most frequent training caption": [common] * len(data.names[split]),
        "nearest training image by pixel statistics": [data.captions["train"][i][0] for i in nearest],
    }


def train(options: CaptionOptions, out: Path, resume: bool = False, progress: bool = True):
    out = Path(out)
    options = start_or_resume(out, KIND, options, resume)
    data = load_data(options.folder)
    vocab = caption_vocab(data.captions["train"], options.min_count)
    pixels = data.images["train"].astype(np.float32) / 255.0
    mean, std = pixels.mean((0, 2, 3)), pixels.std((0, 2, 3))
    encoded = [
        [torch.cat([torch.tensor([BOS]), vocab.encode(tokenize(c)), torch.tensor([EOS])]) for c in caps]
        for caps in data.captions["train"]
    ]
    torch.manual_seed(options.train.seed)
    config = CaptionerConfig(
        len(vocab),
        cell=options.cell,
        channels=options.channels,
        embedding_dim=options.embedding_dim,
        hidden_size=options.hidden_size,
        attention=options.attention,
        dropout=options.dropout,
    )
    model = Captioner(config)
    val_images = normalise(data.images["val"], mean, std)

    def evaluate(m) -> dict[str, float]:
        score = bleu4(describe_images(m, vocab, val_images, 1), data.captions["val"])
        return {"val_bleu4_greedy": score, "score": score}

    def describe() -> dict:
        return {
            "model": config.to_dict(),
            "vocab": list(vocab.words),
            "pixel_mean": mean.tolist(),
            "pixel_std": std.tolist(),
            "options": options.to_dict(),
            "split": data.names,
        }

    batches = CaptionBatches(data.images["train"], encoded, options.batch_size, mean, std, options.train.seed)
    trainer = Trainer(model, batches, evaluate, options.train, out, KIND, describe, progress)
    if resume:
        trainer.restore()
    result = trainer.fit()
    run = load_run(out)
    test = None
    if result.interrupted is None:
        test_images = normalise(data.images["test"], mean, std)
        refs = data.captions["test"]
        greedy = describe_images(run.model, vocab, test_images, 1)
        beam = describe_images(run.model, vocab, test_images, options.beam)
        test = {
            "greedy": bleu4(greedy, refs),
            f"beam {options.beam}": bleu4(beam, refs),
            **{name: bleu4(caps, refs) for name, caps in baselines(data).items()},
            "examples": list(zip(data.names["test"][:5], beam[:5])),
        }
    return result, run, test


def load_run(path: str | Path) -> CaptionerRun:
    ckpt = checkpoint.load(path, KIND)
    try:
        config = CaptionerConfig(**ckpt.config["model"])
        vocab = WordVocab(tuple(ckpt.config["vocab"]))
        mean = np.array(ckpt.config["pixel_mean"], dtype=np.float32)
        std = np.array(ckpt.config["pixel_std"], dtype=np.float32)
        options = CaptionOptions.from_dict(ckpt.config["options"])
    except (KeyError, TypeError, ValueError, DataError) as e:
        raise CheckpointError(f"{path}: config.json does not describe a captioner ({e})") from None
    model = Captioner(config)
    checkpoint.load_module_state(model, ckpt.best_state(), ckpt.path)
    return CaptionerRun(ckpt.path, model.eval(), vocab, mean, std, options, ckpt.config)


def caption_files(run: CaptionerRun, paths: list[str], beam: int | None = None) -> list[str]:
    beam = run.options.beam if beam is None else beam
    if beam < 1:
        raise ConfigError(f"beam width must be at least 1, got {beam}")
    images = normalise(np.stack([load_image(p) for p in paths]), run.mean, run.std)
    return describe_images(run.model, run.vocab, images, beam)
