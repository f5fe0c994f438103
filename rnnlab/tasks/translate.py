"""Translation (many-to-many, unaligned), end to end: any two line-aligned text files, Multi30k by default.

    source text -> sentencepiece subwords -> Seq2Seq (bidirectional encoder, attention decoder)
                -> beam search -> subwords -> detokenised text -> BLEU (sacrebleu, default settings)

Data: a folder holding ``{train,val,test_2016_flickr}.{src,tgt}.gz`` (the Multi30k layout; plain
files work too), or explicit training / validation / test files, one sentence per line, aligned by
line. A subword vocabulary (BPE) is learned per language from the training side only; both models
are saved in the checkpoint. Validation BLEU (greedy) picks the best weights; the test set is then
translated with greedy decoding and with beam search.
"""

from __future__ import annotations

import gzip
import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from rnnlab import checkpoint
from rnnlab.data.batching import BucketBatches
from rnnlab.decoding import Hypothesis, beam_search, greedy_decode
from rnnlab.errors import CheckpointError, ConfigError, DataError
from rnnlab.models.seq2seq import BOS, EOS, PAD, UNK, Seq2Seq, Seq2SeqConfig
from rnnlab.models.tagger import IGNORE
from rnnlab.tasks.runs import options_from_dict, start_or_resume
from rnnlab.train import TrainConfig, Trainer

KIND = "translator"
SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}


def read_lines(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file")
    try:
        data = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        return data.decode("utf-8").rstrip("\n").split("\n")
    except (OSError, UnicodeDecodeError, EOFError):
        raise DataError(f"{path}: not a readable UTF-8 text file (or gzip of one)") from None


@dataclass(frozen=True)
class TranslateSource:
    folder: str | None = None  # {train,val,test_2016_flickr}.{lang}.gz inside
    src_lang: str = "de"
    tgt_lang: str = "en"
    train: tuple[str, str] | None = None  # explicit (source, target) files instead of a folder
    val: tuple[str, str] | None = None
    test: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if bool(self.folder) == bool(self.train):
            raise ConfigError("give either a Multi30k-style folder or --train-files SRC TGT")

    def files(self, split: str) -> tuple[str, str] | None:
        if self.folder:
            name = SPLITS[split]
            found = []
            for lang in (self.src_lang, self.tgt_lang):
                for suffix in (".gz", ""):
                    path = Path(self.folder) / f"{name}.{lang}{suffix}"
                    if path.is_file():
                        found.append(str(path))
                        break
            if len(found) < 2:
                if split == "train":
                    raise DataError(f"{self.folder}: no {name}.{self.src_lang}(.gz) and {name}.{self.tgt_lang}(.gz)")
                return None
            return found[0], found[1]
        pair = getattr(self, split)
        return tuple(pair) if pair else None

    def pairs(self, split: str) -> tuple[list[str], list[str]] | None:
        files = self.files(split)
        if files is None:
            return None
        src, tgt = read_lines(files[0]), read_lines(files[1])
        if len(src) != len(tgt):
            raise DataError(f"{files[0]} has {len(src)} lines but {files[1]} has {len(tgt)}: they must align")
        return src, tgt


class Subwords:
    """A sentencepiece BPE model: text <-> ids, with pad 0, unk 1, bos 2, eos 3."""

    def __init__(self, model_proto: bytes) -> None:
        import sentencepiece as spm

        self.proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def train(cls, lines: list[str], vocab_size: int) -> Subwords:
        import sentencepiece as spm

        buffer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=buffer,
            vocab_size=vocab_size,
            model_type="bpe",
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


@dataclass(frozen=True)
class TranslateOptions:
    source: TranslateSource
    vocab_size: int = 8000  # subwords per language
    cell: str = "lstm"
    embedding_dim: int = 256
    hidden_size: int = 256
    encoder_layers: int = 2
    attention: str = "additive"  # additive | dot | general | none
    attention_size: int = 256
    dropout: float = 0.3
    label_smoothing: float = 0.1
    teacher_forcing: float = 1.0  # share of steps fed the true previous token
    scheduled_sampling: float = 0.0  # if > 0: the share fed the model's own guess grows from 0 to this
    batch_size: int = 64
    max_len: int = 64  # training pairs longer than this (subwords) are left out
    beam: int = 5
    alpha: float = 1.0  # length normalisation of beam scores
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_minutes=60, eval_every=500, lr=2e-3))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TranslateOptions:
        return options_from_dict(cls, d, source=TranslateSource)


@dataclass
class PairBatch:
    src: torch.Tensor  # (B, S)
    src_lengths: torch.Tensor  # (B,)
    tgt_in: torch.Tensor  # (B, T): BOS y_1 ... y_n, PAD after
    tgt_out: torch.Tensor  # (B, T): y_1 ... y_n EOS, IGNORE after
    sampling_prob: float = 0.0
    reset: bool = True

    @property
    def num_tokens(self) -> int:
        return int((self.tgt_out != IGNORE).sum())


def pair_batch(padded, sampling_prob: float = 0.0) -> PairBatch:
    """From a PaddedBatch whose targets are BOS ... EOS sequences padded with IGNORE."""
    full = padded.targets  # (B, T + 1)
    tgt_in = full[:, :-1].masked_fill(full[:, :-1] == IGNORE, PAD)
    return PairBatch(padded.inputs, padded.lengths, tgt_in, full[:, 1:], sampling_prob)


class PairBatches:
    """Length-bucketed pairs; each batch carries the scheduled-sampling probability for its step."""

    def __init__(self, src: list, tgt: list, options: TranslateOptions) -> None:
        self.inner = BucketBatches(src, options.batch_size, targets=tgt, seed=options.train.seed)
        self.options = options
        self.total = options.train.max_steps

    def __len__(self) -> int:
        return len(self.inner)

    def sampling_prob(self, step: int) -> float:
        p = 1.0 - self.options.teacher_forcing
        if self.options.scheduled_sampling > 0:
            horizon = self.total or 10 * len(self.inner)  # ramp over the step budget, else ten epochs
            p = max(p, self.options.scheduled_sampling * min(1.0, step / horizon))
        return p

    def batch(self, step: int) -> PairBatch:
        return pair_batch(self.inner.batch(step), self.sampling_prob(step))


@dataclass
class TranslatorRun:
    path: Path
    model: Seq2Seq
    src_words: Subwords
    tgt_words: Subwords
    options: TranslateOptions
    config: dict


def encode_pairs(run_like, src_lines: list[str], tgt_lines: list[str], max_len: int | None):
    src, tgt = [], []
    for s, t in zip(src_lines, tgt_lines):
        a, b = run_like.src_words.encode(s), run_like.tgt_words.encode(t)
        if not a or not b or (max_len and (len(a) > max_len or len(b) > max_len)):
            continue
        src.append(torch.tensor(a + [EOS]))
        tgt.append(torch.tensor([BOS, *b, EOS]))
    return src, tgt


def translate_ids(
    model: Seq2Seq, items: list[torch.Tensor], beam: int, alpha: float, batch_size: int = 64, record_attention: bool = False
) -> list[Hypothesis]:
    """Decode every source (ids ending in EOS), in length-sorted batches; beam 1 is greedy."""
    model.eval()
    out: list = [None] * len(items)
    order = np.argsort([len(x) for x in items], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            seqs = [items[i] for i in idx]
            lengths = torch.tensor([len(s) for s in seqs])
            src = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=PAD)
            max_len = int(lengths.max()) * 2 + 10
            if beam == 1:
                hyps = greedy_decode(model, src, lengths, max_len, BOS, EOS, record_attention)
            else:
                hyps = beam_search(model, src, lengths, beam, max_len, BOS, EOS, alpha, record_attention)
            for i, h in zip(idx, hyps):
                out[i] = h
    return out


def bleu(run_like, src_lines: list[str], references: list[str], beam: int, alpha: float) -> tuple[float, list[str]]:
    import sacrebleu

    items = [torch.tensor(run_like.src_words.encode(s) + [EOS]) for s in src_lines]
    hyps = translate_ids(run_like.model, items, beam, alpha)
    texts = [run_like.tgt_words.decode(h.tokens) for h in hyps]
    return float(sacrebleu.corpus_bleu(texts, [references]).score), texts


@dataclass
class _Prepared:
    model: Seq2Seq
    src_words: Subwords
    tgt_words: Subwords


def train(options: TranslateOptions, out: Path, resume: bool = False, progress: bool = True, val_sentences: int = 500):
    """Train a translator into ``out``; returns (TrainResult, TranslatorRun, test scores or None)."""
    out = Path(out)
    options = start_or_resume(out, KIND, options, resume)
    if resume:
        ckpt = checkpoint.load(out, KIND)
        src_words, tgt_words = Subwords(ckpt.read("src.spm")), Subwords(ckpt.read("tgt.spm"))
    train_src, train_tgt = options.source.pairs("train")
    if not resume:
        src_words = Subwords.train(train_src, options.vocab_size)
        tgt_words = Subwords.train(train_tgt, options.vocab_size)
    torch.manual_seed(options.train.seed)
    config = Seq2SeqConfig(
        len(src_words),
        len(tgt_words),
        cell=options.cell,
        embedding_dim=options.embedding_dim,
        hidden_size=options.hidden_size,
        encoder_layers=options.encoder_layers,
        attention=options.attention,
        attention_size=options.attention_size,
        dropout=options.dropout,
        label_smoothing=options.label_smoothing,
    )
    model = Seq2Seq(config)
    prepared = _Prepared(model, src_words, tgt_words)
    src, tgt = encode_pairs(prepared, train_src, train_tgt, options.max_len)
    if not src:
        raise DataError("no training pairs left (empty lines, or all longer than --max-len)")
    val = options.source.pairs("val")

    def evaluate(m) -> dict[str, float]:
        if val is None:
            return {}
        vs, vt = encode_pairs(prepared, *val, None)
        loss = _teacher_forced_loss(m, vs, vt)
        score, _ = bleu(prepared, val[0][:val_sentences], val[1][:val_sentences], beam=1, alpha=options.alpha)
        return {"val_loss": loss, "val_bleu_greedy": score, "score": score}

    def describe() -> dict:
        return {"model": config.to_dict(), "options": options.to_dict()}

    attachments = {"src.spm": src_words.proto, "tgt.spm": tgt_words.proto}
    trainer = Trainer(
        model, PairBatches(src, tgt, options), evaluate, options.train, out, KIND, describe, progress, attachments
    )
    if resume:
        trainer.restore()
    result = trainer.fit()
    run = load_run(out)
    test = None
    test_pairs = options.source.pairs("test")
    if test_pairs is not None and result.interrupted is None:
        test = test_scores(run, *test_pairs)
    return result, run, test


def _teacher_forced_loss(model: Seq2Seq, src: list, tgt: list, batch_size: int = 128) -> float:
    from rnnlab.data.batching import eval_batches

    total, count = 0.0, 0
    for padded in eval_batches(src, batch_size, targets=tgt):
        batch = pair_batch(padded)
        loss, _ = model.loss(batch)
        total += float(loss) * batch.num_tokens
        count += batch.num_tokens
    return total / count


def test_scores(run: TranslatorRun, src_lines: list[str], references: list[str]) -> dict:
    """BLEU of greedy decoding and of beam search on a test set, and how long each took."""
    scores = {}
    for name, beam in (("greedy", 1), (f"beam {run.options.beam}", run.options.beam)):
        started = time.perf_counter()
        value, texts = bleu(run, src_lines, references, beam, run.options.alpha)
        scores[name] = {
            "bleu": value,
            "seconds": time.perf_counter() - started,
            "sentences": len(src_lines),
            "examples": texts[:5],
        }
    return scores


def load_run(path: str | Path) -> TranslatorRun:
    ckpt = checkpoint.load(path, KIND)
    try:
        config = Seq2SeqConfig(**ckpt.config["model"])
        options = TranslateOptions.from_dict(ckpt.config["options"])
        src_words, tgt_words = Subwords(ckpt.read("src.spm")), Subwords(ckpt.read("tgt.spm"))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: config.json does not describe a translator ({e})") from None
    model = Seq2Seq(config)
    checkpoint.load_module_state(model, ckpt.best_state(), ckpt.path)
    return TranslatorRun(ckpt.path, model.eval(), src_words, tgt_words, options, ckpt.config)


@dataclass
class Translation:
    text: str
    source_pieces: list[str]
    target_pieces: list[str]
    attention: torch.Tensor | None  # (target pieces + EOS, source pieces + EOS)


def translate(run: TranslatorRun, sentences: list[str], beam: int | None = None) -> list[Translation]:
    beam = run.options.beam if beam is None else beam
    if beam < 1:
        raise ConfigError(f"beam width must be at least 1, got {beam}")
    items = []
    for s in sentences:
        if not s.strip():
            raise DataError("cannot translate an empty sentence")
        ids = run.src_words.encode(s)
        if all(i == UNK for i in ids):
            raise DataError(f"{s!r}: none of its pieces are in the source vocabulary")
        items.append(torch.tensor(ids + [EOS]))
    hyps = translate_ids(run.model, items, beam, run.options.alpha, record_attention=True)
    out = []
    for x, h in zip(items, hyps):
        target = run.tgt_words.pieces(h.tokens) + ["</s>"]
        if h.attention is not None:
            target = target[: h.attention.shape[0]]  # no </s> row when decoding ran out of steps
        source = run.src_words.pieces(x[:-1].tolist()) + ["</s>"]
        attention = None if h.attention is None else h.attention[:, : len(source)]  # not the batch's padding
        out.append(Translation(run.tgt_words.decode(h.tokens), source, target, attention))
    return out
