"""Turning raw inputs into model inputs, with everything learned from the training split saved
beside the weights so that prediction encodes new inputs exactly as training did.

    WordEncoder     text -> word ids (T,), vocabulary from the training split (then, optionally, words with
                    pretrained vectors), optionally the last N tokens
    SubwordEncoder  text -> subword ids (T,), a sentencepiece model learned from the training split
    CharEncoder     text -> character ids (T,), the characters of the training split
    FeatureEncoder  (T, F) numbers -> standardised (T, F), mean and std from the training split
    ColumnEncoder   tokens with columns (word, POS...) -> ids (T, K), a vocabulary per column
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnlab.data.subwords import Subwords
from rnnlab.data.words import WordVocab, tokenize
from rnnlab.errors import DataError


@dataclass
class WordEncoder:
    vocab: WordVocab
    max_tokens: int | None = None  # keep only the last N tokens of a long text (None: all)

    kind = "words"

    @classmethod
    def fit(
        cls, texts: list[str], max_size: int, min_count: int, max_tokens: int | None, extra_words: Iterable[str] = ()
    ) -> WordEncoder:
        return cls(WordVocab.build((tokenize(t) for t in texts), max_size, min_count, extra_words), max_tokens)

    def encode(self, text: str) -> Tensor:
        tokens = tokenize(text)
        if not tokens:
            raise DataError(f"no words in {text[:40]!r}")
        if self.max_tokens:
            tokens = tokens[-self.max_tokens :]
        return self.vocab.encode(tokens)

    def input_config(self) -> dict:
        return {"vocab_sizes": (len(self.vocab),)}

    def to_dict(self) -> dict:
        return {"kind": self.kind, "words": list(self.vocab.words), "max_tokens": self.max_tokens}


@dataclass
class FeatureEncoder:
    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,)

    kind = "features"

    @classmethod
    def fit(cls, series: list[np.ndarray]) -> FeatureEncoder:
        stacked = np.concatenate(series, axis=0)  # (sum T, F)
        std = stacked.std(0)
        return cls(stacked.mean(0), np.where(std > 1e-8, std, 1.0))

    def encode(self, x: np.ndarray) -> Tensor:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            raise DataError(f"expected a series of shape (T, {len(self.mean)}), got {x.shape}")
        if not np.isfinite(x).all():
            raise DataError("the series holds NaN or infinite values")
        return torch.from_numpy(((x - self.mean) / self.std).astype(np.float32))

    def input_config(self) -> dict:
        return {"feature_size": len(self.mean)}

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mean": self.mean.tolist(), "std": self.std.tolist()}


def word_shape(word: str) -> str:
    """A word's pattern of character classes, runs collapsed: 'Smith' -> 'Xx', 'U.S.' -> 'X.X.', '1,000' -> 'd,d'."""
    out = []
    for ch in word:
        c = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)[:6]


@dataclass
class ColumnEncoder:
    """Tokens with columns (word, POS...) -> ids (T, K): the lower-cased word, each extra column,
    and the word's shape (capitalisation, digits), each with its own vocabulary from the training
    split (id 0 padding, id 1 unknown)."""

    vocabs: list[WordVocab]

    kind = "columns"

    @staticmethod
    def fields(token: list[str]) -> list[str]:
        return [token[0].lower(), *token[1:], word_shape(token[0])]

    @classmethod
    def fit(cls, sentences: list[list[list[str]]], min_count: int = 1) -> ColumnEncoder:
        width = len(cls.fields(sentences[0][0]))
        return cls(
            [
                WordVocab.build(([cls.fields(tok)[k] for tok in s] for s in sentences), 10**9, min_count if k == 0 else 1)
                for k in range(width)
            ]
        )

    def encode(self, tokens: list[list[str]]) -> Tensor:
        rows = [self.fields(t) for t in tokens]
        if any(len(r) != len(self.vocabs) for r in rows):
            extra = len(self.vocabs) - 2
            raise DataError(
                f"expected {extra} extra column(s) per token besides the word (as in training), e.g. word/POS"
                if extra
                else "expected one word per token"
            )
        return torch.stack([v.encode([r[k] for r in rows]) for k, v in enumerate(self.vocabs)], dim=-1)

    def input_config(self) -> dict:
        return {"vocab_sizes": tuple(len(v) for v in self.vocabs)}

    def to_dict(self) -> dict:
        return {"kind": self.kind, "vocabs": [list(v.words) for v in self.vocabs]}


@dataclass
class SubwordEncoder:
    """Subword units (sentencepiece, unigram language model) learned from the training texts: a
    language whose words carry their endings (Korean, Finnish...) gets pieces a model sees again."""

    words: Subwords
    max_tokens: int | None = None

    kind = "subwords"

    @classmethod
    def fit(cls, texts: list[str], size: int, max_tokens: int | None) -> SubwordEncoder:
        return cls(Subwords.train(texts, size, model_type="unigram"), max_tokens)

    def encode(self, text: str) -> Tensor:
        ids = self.words.encode(text)
        if not ids:
            raise DataError(f"no pieces in {text[:40]!r}")
        return torch.tensor(ids[-self.max_tokens :] if self.max_tokens else ids, dtype=torch.int64)

    def input_config(self) -> dict:
        return {"vocab_sizes": (len(self.words),)}

    def to_dict(self) -> dict:
        return {"kind": self.kind, "max_tokens": self.max_tokens}  # the model itself is saved as a file


@dataclass
class CharEncoder:
    """Characters (spaces included), those seen at least ``min_count`` times in the training texts."""

    vocab: WordVocab
    max_tokens: int | None = None

    kind = "chars"

    @classmethod
    def fit(cls, texts: list[str], min_count: int, max_tokens: int | None) -> CharEncoder:
        return cls(WordVocab.build((list(t) for t in texts), 10**6, min_count), max_tokens)

    def encode(self, text: str) -> Tensor:
        if not text.strip():
            raise DataError("no characters in an empty text")
        chars = list(text)
        return self.vocab.encode(chars[-self.max_tokens :] if self.max_tokens else chars)

    def input_config(self) -> dict:
        return {"vocab_sizes": (len(self.vocab),)}

    def to_dict(self) -> dict:
        return {"kind": self.kind, "chars": list(self.vocab.words), "max_tokens": self.max_tokens}


def encoder_from_dict(d: dict, files=None):
    """The encoder ``to_dict`` described; ``files(name)`` reads a file saved beside it (a subword model)."""
    if d.get("kind") == "subwords":
        if files is None:
            raise DataError("a subword encoder needs its model file")
        return SubwordEncoder(Subwords(files("subwords.spm")), d.get("max_tokens"))
    if d.get("kind") == "chars":
        return CharEncoder(WordVocab(tuple(d["chars"])), d.get("max_tokens"))
    return _simple_encoder_from_dict(d)


def _simple_encoder_from_dict(d: dict):
    if d.get("kind") == "words":
        return WordEncoder(WordVocab(tuple(d["words"])), d.get("max_tokens"))
    if d.get("kind") == "features":
        return FeatureEncoder(np.array(d["mean"], dtype=np.float32), np.array(d["std"], dtype=np.float32))  # as fitted
    if d.get("kind") == "columns":
        return ColumnEncoder([WordVocab(tuple(words)) for words in d["vocabs"]])
    raise DataError(f"unknown input encoder {d.get('kind')!r}")
