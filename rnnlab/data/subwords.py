"""Subword vocabularies (sentencepiece: BPE, or a unigram language model), learned from training text only.

words = Subwords.train(lines, vocab_size=8000)      # ids: pad 0, unk 1, bos 2, eos 3
words.encode("ein Mann fährt Fahrrad .")            # [412, 96, ...]
Subwords(words.proto)                               # the model's bytes, saved with a checkpoint
"""

from __future__ import annotations

import io

from rnnlab.data.tokens import BOS, EOS, PAD, UNK
from rnnlab.extras import require


class Subwords:
    """A sentencepiece BPE model: text <-> ids, with pad 0, unk 1, bos 2, eos 3."""

    def __init__(self, model_proto: bytes) -> None:
        spm = require("sentencepiece", "text")

        self.proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def train(cls, lines: list[str], vocab_size: int, model_type: str = "bpe") -> Subwords:
        spm = require("sentencepiece", "text")

        buffer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=buffer,
            vocab_size=vocab_size,
            model_type=model_type,
            pad_id=PAD,
            unk_id=UNK,
            bos_id=BOS,
            eos_id=EOS,
            character_coverage=1.0,
            num_threads=2,
            minloglevel=2,
            hard_vocab_limit=False,
        )
        return cls(buffer.getvalue())

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def pieces(self, ids: list[int]) -> list[str]:
        return [self.sp.id_to_piece(i) for i in ids]

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(ids)
