"""Character vocabulary: every distinct Unicode code point of a text, in code-point order."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import Tensor

from rnnlab.errors import DataError


@dataclass(frozen=True)
class CharVocab:
    """Maps characters (code points) to ids 0..V-1 and back.

    Works for any script: Korean Hangul syllables, accented Latin, emoji are each one symbol.
    """

    chars: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(set(self.chars)) != len(self.chars) or any(len(c) != 1 for c in self.chars):
            raise DataError("a character vocabulary needs distinct single characters")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.chars)})

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls(tuple(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return char in self._index

    def unknown(self, text: str) -> list[str]:
        """Characters of ``text`` outside the vocabulary, most frequent first."""
        return [c for c, _ in Counter(c for c in text if c not in self._index).most_common()]

    def encode(self, text: str, what: str = "text") -> Tensor:
        """str of length N -> int64 tensor (N,); a ``DataError`` names any unknown characters."""
        missing = self.unknown(text)
        if missing:
            shown = " ".join(repr(c) for c in missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise DataError(f"{what} has {len(missing)} character(s) the model never saw in training: {shown}")
        return torch.tensor([self._index[c] for c in text], dtype=torch.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)
