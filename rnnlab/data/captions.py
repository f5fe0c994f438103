"""Captioned images: a folder with ``images/`` and ``captions.txt`` (CSV ``image,caption``, several
captions per image), as in the Flickr8k slice. The split is by image and fixed: images sorted by
file name, the first 80% train, the next 10% validate, the last 10% test.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnlab.data.images import load_image, normalise
from rnnlab.data.text import check_regular_file
from rnnlab.data.tokens import BOS, BOS_WORD, EOS, EOS_WORD, IGNORE, PAD_WORD, UNK_WORD
from rnnlab.data.words import WordVocab, tokenize
from rnnlab.errors import DataError
from rnnlab.extras import require


@dataclass
class CaptionData:
    names: dict[str, list[str]]  # split -> image file names
    images: dict[str, np.ndarray]  # split -> (N, 3, 64, 64) uint8
    captions: dict[str, list[list[str]]]  # split -> per image, its captions


def read_captions(folder: str | Path) -> CaptionData:
    pd = require("pandas", "vision")

    root = Path(folder)
    table = root / "captions.txt"
    if not table.is_file():
        raise DataError(f"{folder}: expected captions.txt (CSV image,caption) and images/")
    check_regular_file(table)
    try:
        df = pd.read_csv(table, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{table}: not a readable CSV file ({str(e).splitlines()[0]})") from None
    if not {"image", "caption"} <= set(df.columns):
        raise DataError(f"{table}: expected the columns image and caption, got {', '.join(df.columns)}")
    by_image: dict[str, list[str]] = {}
    for image, caption in zip(df["image"], df["caption"]):
        by_image.setdefault(image, []).append(caption.strip())
    names = sorted(by_image)
    n = len(names)
    if n < 10:
        raise DataError(f"{table}: {n} images are too few to split into training, validation and test (10 or more)")
    cut = {"train": (0, int(n * 0.8)), "val": (int(n * 0.8), int(n * 0.9)), "test": (int(n * 0.9), n)}
    split_names = {k: names[a:b] for k, (a, b) in cut.items()}
    images = {k: np.stack([load_image(root / "images" / name) for name in v]) for k, v in split_names.items()}
    captions = {k: [by_image[name] for name in v] for k, v in split_names.items()}
    return CaptionData(split_names, images, captions)


def caption_vocab(captions: list[list[str]], min_count: int) -> WordVocab:
    counts = Counter(t for caps in captions for c in caps for t in tokenize(c))
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    return WordVocab((PAD_WORD, UNK_WORD, BOS_WORD, EOS_WORD, *words))


def encode_captions(vocab: WordVocab, captions: list[list[str]]) -> list[list[torch.Tensor]]:
    """Per image, each caption as ids BOS ... EOS."""
    return [
        [torch.cat([torch.tensor([BOS]), vocab.encode(tokenize(c)), torch.tensor([EOS])]) for c in caps] for caps in captions
    ]


@dataclass
class CaptionBatch:
    images: torch.Tensor  # (B, 3, 64, 64) float, normalised
    tgt_in: torch.Tensor  # (B, T)
    tgt_out: torch.Tensor  # (B, T)
    reset: bool = True

    @property
    def num_tokens(self) -> int:
        return int((self.tgt_out != IGNORE).sum())


class CaptionBatches:
    """Random (image, one of its captions) pairs; images flipped left-right at random."""

    def __init__(
        self, images: np.ndarray, captions: list[list[torch.Tensor]], batch_size: int, mean, std, seed: int
    ) -> None:
        self.images, self.captions = images, captions
        self.mean, self.std, self.seed = mean, std, seed
        self.pairs = [(i, j) for i, caps in enumerate(captions) for j in range(len(caps))]
        self.batch_size = min(batch_size, len(self.pairs))

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
