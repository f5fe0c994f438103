"""Translation (many-to-many, unaligned): any two line-aligned text files, Multi30k by default.

    source text -> sentencepiece subwords -> Seq2Seq (bidirectional encoder, attention decoder)
                -> beam search -> subwords -> detokenised text -> BLEU (sacrebleu, default settings)

A subword vocabulary (BPE) is learned per language from the training side only; both models are
saved in the checkpoint. Validation BLEU (greedy) picks the best weights; the test set is then
translated with greedy decoding and with beam search.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Literal

import torch

from rnnlab.cells import CellName
from rnnlab.config import Config
from rnnlab.data.batching import eval_batches
from rnnlab.data.parallel import PairBatches, folder_files, pair_batch, read_pairs
from rnnlab.data.subwords import Subwords
from rnnlab.data.tokens import BOS, EOS, PAD, UNK
from rnnlab.decoding import check_beam, decode_sequences
from rnnlab.device import device_of, to_device
from rnnlab.errors import ConfigError, DataError
from rnnlab.extras import require
from rnnlab.models.seq2seq import Seq2Seq, Seq2SeqConfig
from rnnlab.tasks.base import Learned, Task
from rnnlab.train import TrainConfig

VAL_SENTENCES = 500  # validation BLEU is measured on the first 500 sentences (greedy)
MAX_TEST_PIECES = 1000  # a test sentence longer than this is cut (decoding time grows with its square)


@dataclass(frozen=True)
class TranslatorModel(Config):
    cell: CellName = "lstm"  # recurrent cell
    embedding_dim: int = 256  # [N] embedding size
    hidden_size: int = 256  # [N] encoder units per direction (the decoder has twice as many)
    encoder_layers: int = 2  # [N] encoder layers
    attention: Literal["additive", "dot", "general", "none"] = "additive"  # attention, or none for a fixed context vector
    attention_size: int = 256  # [N] size of the additive attention's hidden layer
    dropout: float = 0.3  # [P] dropout probability
    label_smoothing: float = 0.1  # [X] label smoothing of the training loss
    beam: int = 5  # [K] beam width for the test set and for translating
    alpha: float = 1.0  # [X] length normalisation of beam scores (0: raw log-probability, 1: per token)

    def __post_init__(self) -> None:
        check_beam(self.beam)


@dataclass(frozen=True)
class ParallelData(Config):
    multi30k: str | None = None  # [DIR] folder with {train,val,test_2016_flickr}.{LANG}.gz
    src_lang: str = "de"  # [LANG] source language
    tgt_lang: str = "en"  # [LANG] target language
    train_files: tuple[str, str] | None = None  # [SRC TGT] aligned training files
    val_files: tuple[str, str] | None = None  # [SRC TGT] aligned validation files
    test_files: tuple[str, str] | None = None  # [SRC TGT] aligned test files
    vocab_size: int = 8000  # [N] subwords per language
    max_len: int = 64  # [N] training pairs longer than this (subwords) are left out
    batch_size: int = 64  # [N] sentence pairs per batch
    teacher_forcing: float = 1.0  # [R] share of steps fed the true previous token
    scheduled_sampling: float = 0.0  # [P] ramp the share fed the model's own guess from 0 to P over training (default: off)

    def __post_init__(self) -> None:
        if bool(self.multi30k) == bool(self.train_files):
            raise ConfigError("give either a Multi30k-style folder or --train-files SRC TGT")
        if not 0 <= self.teacher_forcing <= 1 or not 0 <= self.scheduled_sampling <= 1:
            raise ConfigError("teacher forcing and scheduled sampling are shares in [0, 1]")
        if self.vocab_size < 8 or self.max_len < 1 or self.batch_size < 1:
            raise ConfigError("vocabulary size (at least 8), max length and batch size must be positive")

    def pairs(self, split: str) -> tuple[list[str], list[str]] | None:
        if self.multi30k:
            return read_pairs(folder_files(self.multi30k, split, self.src_lang, self.tgt_lang))
        return read_pairs(getattr(self, f"{split}_files"))


@dataclass(frozen=True)
class TranslateOptions(Config):
    model: TranslatorModel = field(default_factory=TranslatorModel)
    data: ParallelData = None  # a corpus is required
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_minutes=60, eval_every=500, lr=2e-3))


@dataclass(frozen=True)
class TestPairs(Config):
    test_files: tuple[str, str] | None = None  # [SRC TGT] translator: aligned source and reference files to score


@dataclass
class TranslatorLearned(Learned):
    src_words: Subwords
    tgt_words: Subwords

    def files(self) -> dict[str, bytes]:
        return {"src.spm": self.src_words.proto, "tgt.spm": self.tgt_words.proto}

    @classmethod
    def load(cls, saved: dict, read) -> TranslatorLearned:
        try:
            return cls(Subwords(read("src.spm")), Subwords(read("tgt.spm")))
        except RuntimeError as e:  # sentencepiece refuses a damaged model
            raise ValueError(f"a subword model is unreadable: {e}") from None

    def encode_pairs(self, src_lines: list[str], tgt_lines: list[str], max_len: int | None):
        src, tgt = [], []
        for s, t in zip(src_lines, tgt_lines):
            a, b = self.src_words.encode(s), self.tgt_words.encode(t)
            if not a or not b or (max_len and (len(a) > max_len or len(b) > max_len)):
                continue
            src.append(torch.tensor(a + [EOS]))
            tgt.append(torch.tensor([BOS, *b, EOS]))
        return src, tgt


def bleu(model, learned: TranslatorLearned, src_lines, references, beam: int, alpha: float) -> tuple[float, list[str]]:
    sacrebleu = require("sacrebleu", "text")

    items = [torch.tensor(learned.src_words.encode(s)[:MAX_TEST_PIECES] + [EOS]) for s in src_lines]
    texts = [learned.tgt_words.decode(h.tokens) for h in decode_sequences(model, items, beam, alpha, BOS, EOS, PAD)]
    return float(sacrebleu.corpus_bleu(texts, [references]).score), texts


def teacher_forced_loss(model: Seq2Seq, src: list, tgt: list, batch_size: int = 128) -> float:
    total, count = 0.0, 0
    for padded in eval_batches(src, batch_size, targets=tgt):
        batch = to_device(pair_batch(padded), device_of(model))
        loss, _ = model.loss(batch)
        total += float(loss) * batch.num_tokens
        count += batch.num_tokens
    return total / count


@dataclass
class Translation:
    text: str
    source_pieces: list[str]
    target_pieces: list[str]
    attention: torch.Tensor | None  # (target pieces + EOS, source pieces + EOS); None for a text split in parts
    parts: int = 1  # a text too long for one pass is translated sentence by sentence


def split_long(words: Subwords, text: str, limit: int) -> list[list[int]]:
    """The subword ids of ``text`` in parts of at most ``limit``: one part if it fits, else its
    sentences (split after . ! ?), a sentence that is still too long cut into runs of ``limit``."""
    ids = words.encode(text)
    if len(ids) <= limit:
        return [ids]
    parts = []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        piece = words.encode(sentence)
        parts += [piece[k : k + limit] for k in range(0, len(piece), limit)]
    return [p for p in parts if p]


def translate(run, sentences: list[str], beam: int | None = None, attention: bool = False) -> list[Translation]:
    """Each sentence translated with beam search (the run's beam width unless given), with its
    attention weights if asked. A text longer than the longest training sentence (``max_len``
    pieces) is translated sentence by sentence, in runs of ``max_len`` pieces if need be: the model
    knows nothing longer, and the time stays linear in the text's length."""
    beam = run.options.model.beam if beam is None else beam
    check_beam(beam)
    words: TranslatorLearned = run.learned
    beam = min(beam, len(words.tgt_words))
    parts = []  # per sentence, the ids of its parts
    for s in sentences:
        if not s.strip():
            raise DataError("cannot translate an empty sentence")
        ids = split_long(words.src_words, s, run.options.data.max_len)
        if all(i == UNK for part in ids for i in part):
            raise DataError(f"{s[:60]!r}: none of its pieces are in the source vocabulary")
        parts.append(ids)
    items = [torch.tensor(part + [EOS]) for ids in parts for part in ids]
    hyps = iter(decode_sequences(run.model, items, beam, run.options.model.alpha, BOS, EOS, PAD, record_attention=attention))
    out = []
    for ids in parts:
        done = [next(hyps) for _ in ids]
        text = " ".join(words.tgt_words.decode(h.tokens) for h in done)
        source = words.src_words.pieces([i for part in ids for i in part]) + ["</s>"]
        target = words.tgt_words.pieces([t for h in done for t in h.tokens]) + ["</s>"]
        attention = done[0].attention if len(ids) == 1 else None
        if attention is not None:
            target = target[: attention.shape[0]]  # no </s> row when decoding ran out of steps
            attention = attention[:, : len(source)]  # not the batch's padding
        out.append(Translation(text, source, target, attention, len(ids)))
    return out


class TranslateTask(Task):
    name, kind = "translate", "translator"
    help = "translation (encoder-decoder with attention)"
    description = (
        "Train a translator on line-aligned text: a Multi30k-style folder (train/val/test_2016_flickr .LANG.gz) or "
        "explicit files. Prints test BLEU (sacrebleu) for greedy decoding and beam search."
    )
    Options, ModelConfig, Learned, EvalData = TranslateOptions, Seq2SeqConfig, TranslatorLearned, TestPairs
    v1_names = {"folder": "multi30k", "train": "train_files", "val": "val_files", "test": "test_files"}

    def read(self, options: TranslateOptions) -> dict:
        return {split: options.data.pairs(split) for split in ("train", "val", "test")}

    def fit(self, options: TranslateOptions, raw: dict) -> TranslatorLearned:
        src, tgt = raw["train"]
        return TranslatorLearned(Subwords.train(src, options.data.vocab_size), Subwords.train(tgt, options.data.vocab_size))

    def encode(self, options, learned: TranslatorLearned, raw: dict) -> dict:
        src, tgt = learned.encode_pairs(*raw["train"], options.data.max_len)
        if not src:
            raise DataError("no training pairs left (empty lines, or all longer than --max-len)")
        val = raw["val"] and (raw["val"], learned.encode_pairs(*raw["val"], None))
        return {"train": (src, tgt), "val": val, "test": raw["test"]}

    def model_config(self, options: TranslateOptions, learned: TranslatorLearned) -> Seq2SeqConfig:
        m = options.model
        return Seq2SeqConfig(
            len(learned.src_words),
            len(learned.tgt_words),
            cell=m.cell,
            embedding_dim=m.embedding_dim,
            hidden_size=m.hidden_size,
            encoder_layers=m.encoder_layers,
            attention=m.attention,
            attention_size=m.attention_size,
            dropout=m.dropout,
            label_smoothing=m.label_smoothing,
        )

    def check_learned(self, learned: TranslatorLearned, config: Seq2SeqConfig) -> None:
        if (len(learned.src_words), len(learned.tgt_words)) != (config.src_vocab, config.tgt_vocab):
            raise ValueError("the subword vocabularies do not fit the model's sizes")

    def build(self, config: Seq2SeqConfig) -> Seq2Seq:
        return Seq2Seq(config)

    def batches(self, options: TranslateOptions, data: dict) -> PairBatches:
        d = options.data
        src, tgt = data["train"]
        return PairBatches(
            src, tgt, d.batch_size, options.train.seed, d.teacher_forcing, d.scheduled_sampling, options.train.max_steps
        )

    def validator(self, options: TranslateOptions, learned, data: dict):
        def validate(model) -> dict[str, float]:
            if not data["val"]:
                return {}
            (lines, refs), encoded = data["val"]
            loss = teacher_forced_loss(model, *encoded)
            score, _ = bleu(model, learned, lines[:VAL_SENTENCES], refs[:VAL_SENTENCES], 1, options.model.alpha)
            return {"val_loss": loss, "val_bleu_greedy": score, "score": score}

        return validate

    def test(self, run, data: dict) -> dict | None:
        return None if data["test"] is None else self.test_scores(run, *data["test"])

    def test_scores(self, run, src_lines: list[str], references: list[str]) -> dict:
        """BLEU of greedy decoding and of beam search on a test set, and how long each took."""
        scores = {}
        m = run.options.model
        for name, beam in (("greedy", 1), (f"beam {m.beam}", m.beam)):
            started = time.perf_counter()
            value, texts = bleu(run.model, run.learned, src_lines, references, beam, m.alpha)
            scores[name] = {
                "bleu": value,
                "seconds": time.perf_counter() - started,
                "sentences": len(src_lines),
                "examples": texts[:5],
            }
        return scores

    def evaluate(self, run, given: TestPairs | None) -> dict:
        pairs = read_pairs(given.test_files) if given is not None and given.test_files else run.options.data.pairs("test")
        if pairs is None:
            raise DataError(f"{run.path} has no test files; give --test-files SRC REF")
        return self.test_scores(run, *pairs)

    def format_scores(self, what, scores: dict) -> str:
        return "\n".join(
            f"test BLEU, {name}: {s['bleu']:.2f} ({s['sentences']} sentences in {s['seconds']:.1f} s)"
            for name, s in scores.items()
        )

    def finish(self, trained, extras) -> None:
        if trained.test is not None:
            print(self.format_scores("test", trained.test))
            print("examples (beam):")
            for line in list(trained.test.values())[-1]["examples"]:
                print(f"  {line}")

    def predict(self, run, inputs: list, beam: int | None = None) -> list[Translation]:
        if not inputs:
            raise DataError("give sentences to translate, as arguments or with --file FILE")
        return translate(run, inputs, beam)

    def format_prediction(self, t: Translation) -> str:
        return t.text


TASK = TranslateTask()
