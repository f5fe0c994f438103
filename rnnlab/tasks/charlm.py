"""The character language model, end to end: train on a text, sample from it, score a text.

    result = train(CharLMOptions(), out=Path("runs/charlm"))       # the bundled Tiny Shakespeare
    run = load_run("runs/charlm")
    print("".join(generate(run, "ROMEO:", 200)))
    print(evaluate_text(run, "To be, or not to be").nats_per_char)

Losses are mean cross-entropy per character: nats (natural log) and bits (log base 2; bits =
nats / ln 2). Validation is the last 10% of the text, scored in full with the state carried.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
from torch import Tensor

from rnnlab import checkpoint
from rnnlab.data.streams import StreamBatches, eval_batches
from rnnlab.data.text import BUNDLED_CORPUS, bundled_corpus, read_text, text_digest
from rnnlab.data.vocab import CharVocab
from rnnlab.decoding import SamplingOptions, sample_next
from rnnlab.errors import CheckpointError, ConfigError, DataError
from rnnlab.models.lm import CharLM, CharLMConfig
from rnnlab.train import TrainConfig, Trainer, TrainResult

KIND = "charlm"
LN2 = math.log(2)


@dataclass(frozen=True)
class DataConfig:
    text: str | None = None  # a UTF-8 text file; None: the bundled Tiny Shakespeare
    seq_len: int = 128  # T, characters per row of a batch (the truncation length of BPTT)
    batch_size: int = 32  # B, parallel rows of the stream
    val_fraction: float = 0.1  # the last part of the text, held out for validation

    def __post_init__(self) -> None:
        if self.seq_len < 1 or self.batch_size < 1:
            raise ConfigError(f"seq-len and batch-size must be positive, got {self.seq_len} and {self.batch_size}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"validation fraction must be in (0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class ModelOptions:
    """CharLMConfig without the vocabulary size, which comes from the text."""

    cell: str = "lstm"
    embedding_dim: int = 64
    hidden_size: int = 768  # the best of the sweep in benchmarks/charlm_sweep.py for 10 CPU minutes
    num_layers: int = 1
    dropout: float = 0.0

    def config(self, vocab_size: int) -> CharLMConfig:
        return CharLMConfig(vocab_size=vocab_size, **asdict(self))


@dataclass(frozen=True)
class CharLMOptions:
    model: ModelOptions = field(default_factory=ModelOptions)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_minutes=5))


@dataclass
class LMRun:
    """A trained model loaded from its checkpoint folder."""

    path: Path
    model: CharLM
    vocab: CharVocab
    config: dict


@dataclass(frozen=True)
class TextScore:
    chars: int  # characters scored (every one after the first)
    nats_per_char: float

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / LN2


def load_text(data: DataConfig) -> tuple[str, str]:
    """(text, name) of the training text."""
    if data.text is None:
        return bundled_corpus(), f"bundled:{BUNDLED_CORPUS}"
    return read_text(data.text), str(data.text)


def split_tokens(tokens: Tensor, val_fraction: float) -> tuple[Tensor, Tensor]:
    """The first (1 - val_fraction) of the stream for training, the rest for validation."""
    cut = int(round(len(tokens) * (1 - val_fraction)))
    train, val = tokens[:cut], tokens[cut:]
    if len(val) < 2:
        raise DataError(f"the text is too short to hold out a validation part: {len(tokens)} characters")
    return train, val


def score_tokens(model: CharLM, tokens: Tensor, batch_size: int = 32, seq_len: int = 256) -> TextScore:
    """Mean cross-entropy of every next token of ``tokens``, state carried through the stream."""
    total, count, state = 0.0, 0, None
    with torch.inference_mode():
        for batch in eval_batches(tokens, batch_size, seq_len):
            if batch.reset:
                state = None
            elif batch.keep_rows is not None:
                state = tuple(s[:, batch.keep_rows] for s in state)  # (L, B, H) -> (L, rows, H)
            logits, state = model(batch.inputs, state)
            total += float(torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), reduction="sum"))
            count += batch.num_tokens
    return TextScore(count, total / count)


def train(options: CharLMOptions, out: Path, resume: bool = False, progress: bool = True) -> tuple[TrainResult, LMRun]:
    """Train (or, with ``resume``, continue training) a character model into the folder ``out``."""
    out = Path(out)
    if resume:
        options, vocab = _resumed_options(out, options)
    elif checkpoint.is_checkpoint(out):
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    text, source = load_text(options.data)
    if not resume:
        vocab = CharVocab.from_text(text)
    else:
        saved = checkpoint.load(out, KIND).config["data"]
        if text_digest(text) != saved["text_sha256"]:
            raise DataError(f"{source}: the text changed since the run in {out} started; resume needs the same text")
    train_tokens, val_tokens = split_tokens(vocab.encode(text, source), options.data.val_fraction)

    torch.manual_seed(options.train.seed)
    model = CharLM(options.model.config(len(vocab)))
    batches = StreamBatches(train_tokens, options.data.batch_size, options.data.seq_len, seed=options.train.seed)

    def evaluate(m: CharLM) -> dict[str, float]:
        score = score_tokens(m, val_tokens)
        return {"val_loss": score.nats_per_char, "val_bpc": score.bits_per_char}

    def describe() -> dict:
        return {
            "model": model.config.to_dict(),
            "data": {
                **asdict(options.data),
                "source": source,
                "text_sha256": text_digest(text),
                "train_chars": len(train_tokens),
                "val_chars": len(val_tokens),
            },
            "vocab": list(vocab.chars),
        }

    trainer = Trainer(model, batches, evaluate, options.train, out, KIND, describe, progress)
    if resume:
        trainer.restore()
    result = trainer.fit()
    return result, LMRun(out, model.eval(), vocab, checkpoint.load(out, KIND).config)


def _resumed_options(out: Path, options: CharLMOptions) -> tuple[CharLMOptions, CharVocab]:
    """The saved options of the run in ``out``, with the budget of ``options`` when it names one."""
    config = checkpoint.load(out, KIND).config
    try:
        model = ModelOptions(**{f.name: config["model"][f.name] for f in fields(ModelOptions)})
        data = DataConfig(**{f.name: config["data"][f.name] for f in fields(DataConfig)})
        saved_train = TrainConfig.from_dict(config["train"])
        vocab = CharVocab(tuple(config["vocab"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{out}: config.json lacks what resuming needs ({e})") from None
    budget = {"max_steps": options.train.max_steps, "max_minutes": options.train.max_minutes}
    return CharLMOptions(model, data, replace(saved_train, **budget)), vocab


def load_run(path: str | Path) -> LMRun:
    """Rebuild the model saved in a checkpoint folder."""
    ckpt = checkpoint.load(path, KIND)
    try:
        config = CharLMConfig(**ckpt.config["model"])
        vocab = CharVocab(tuple(ckpt.config["vocab"]))
    except (KeyError, TypeError, ValueError, DataError) as e:
        raise CheckpointError(f"{path}: config.json does not describe a character model ({e})") from None
    if config.vocab_size != len(vocab):
        raise CheckpointError(f"{path}: config.json's vocab_size {config.vocab_size} != {len(vocab)} characters")
    model = CharLM(config)
    checkpoint.load_module_state(model, ckpt.best_state(), ckpt.path)
    return LMRun(ckpt.path, model.eval(), vocab, ckpt.config)


def validation_text(run: LMRun) -> str:
    """The held-out end of the text the run was trained on (read again from its source)."""
    data = run.config.get("data", {})
    try:
        options = DataConfig(text=data.get("text"), val_fraction=data.get("val_fraction", 0.1))
        text, source = load_text(options)
    except DataError as e:
        raise DataError(f"cannot read the run's training text again ({e}); pass a text file instead") from None
    if text_digest(text) != data.get("text_sha256"):
        raise DataError(f"{source} changed since {run.path} was trained; pass a text file instead")
    return text[int(round(len(text) * (1 - options.val_fraction))) :]


def generate(
    run: LMRun,
    prime: str = "",
    length: int = 500,
    options: SamplingOptions | None = None,
    seed: int | None = None,
) -> Iterator[str]:
    """Yield ``length`` characters, one at a time, continuing ``prime`` (default options: plain sampling)."""
    options = options or SamplingOptions()
    if length < 0:
        raise ConfigError(f"length must be >= 0, got {length}")
    context = prime if prime else ("\n" if "\n" in run.vocab else run.vocab.chars[0])
    ids = run.vocab.encode(context, "the prime")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.inference_mode():
        stepper = run.model.stepper(batch_size=1)
        for token in ids[:-1]:
            stepper.step(token.view(1))
        token = ids[-1:]
        for _ in range(length):
            token = sample_next(stepper.step(token), options, generator)
            yield run.vocab.chars[int(token)]


def evaluate_text(run: LMRun, text: str, name: str = "text") -> TextScore:
    """Nats and bits per character of ``run``'s model on ``text``."""
    tokens = run.vocab.encode(text, name)
    if len(tokens) < 2:
        raise DataError(f"{name}: need at least two characters to score a prediction")
    return score_tokens(run.model, tokens)
