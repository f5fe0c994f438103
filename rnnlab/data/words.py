"""Words: a simple, documented tokenizer and a vocabulary built from the training split only.

tokens = tokenize("This movie<br />was GREAT!")   # ['this', 'movie', 'was', 'great', '!']
vocab = WordVocab.build(train_token_lists, max_size=30000, min_count=2)
vocab = WordVocab.build(train_token_lists, extra=word2vec_words)   # then words known from elsewhere
ids = vocab.encode(tokens)                         # unknown words -> UNK (1); PAD is 0
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from rnnlab.data.tokens import PAD_WORD as PAD
from rnnlab.data.tokens import UNK_WORD as UNK
from rnnlab.errors import DataError

_HTML = re.compile(r"<br\s*/?>|<[^>]{1,20}>")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[\uac00-\ud7a3]+|[^\sa-z0-9]")


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Lower-cased words (with an inner apostrophe kept: don't, it's), numbers, runs of Hangul syllables
    (a Korean word with its particles: 영화가), and single punctuation marks. HTML line breaks and short
    tags (IMDB reviews have them) become spaces."""
    text = _HTML.sub(" ", text)
    return _TOKEN.findall(text.lower() if lowercase else text)


@dataclass(frozen=True)
class WordVocab:
    """Id 0 is padding, id 1 stands for every word outside the vocabulary."""

    words: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.words[:2] != (PAD, UNK):
            raise DataError("a word vocabulary starts with <pad> and <unk>")
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

    @classmethod
    def build(
        cls, token_lists: Iterable[list[str]], max_size: int = 30_000, min_count: int = 2, extra: Iterable[str] = ()
    ) -> WordVocab:
        """The training words seen ``min_count`` times or more, most frequent first; then the ``extra``
        words not among them (words with pretrained vectors: a test word the training split never
        saw can still have a meaning); at most ``max_size`` entries in all."""
        counts = Counter(t for tokens in token_lists for t in tokens)
        kept = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]
        seen = set(kept)
        kept += [w for w in dict.fromkeys(extra) if w not in seen and w not in (PAD, UNK)]
        return cls((PAD, UNK, *kept[: max(0, max_size - 2)]))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._index

    def encode(self, tokens: list[str]) -> torch.Tensor:
        return torch.tensor([self._index.get(t, 1) for t in tokens], dtype=torch.int64)

    def unknown_share(self, tokens: list[str]) -> float:
        return sum(t not in self._index for t in tokens) / max(1, len(tokens))
