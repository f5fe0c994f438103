"""The character language model (many-to-many, aligned), the main job of ``rnnlab train``.

    trained = train(TASK, make_options(TASK), "runs/charlm")    # the bundled Tiny Shakespeare
    run = load("runs/charlm")
    print(run.sample("ROMEO:", 200))
    print(run.score_text("To be, or not to be").nats_per_char)

Losses are mean cross-entropy per character: nats (natural log) and bits (log base 2; bits =
nats / ln 2). Validation is the last 10% of the text, scored in full with the state carried.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from rnnlab.cells import CellName
from rnnlab.config import Config
from rnnlab.data.streams import StreamBatches
from rnnlab.data.text import BUNDLED_CORPUS, bundled_corpus, read_text, text_digest
from rnnlab.data.vocab import CharVocab
from rnnlab.decoding import SamplingOptions, sample_next
from rnnlab.device import device_of
from rnnlab.errors import ConfigError, DataError
from rnnlab.evaluation import LN2, TextScore, score_tokens
from rnnlab.models.lm import CharLM, CharLMConfig
from rnnlab.tasks.base import Learned, Run, Task
from rnnlab.train import TrainConfig


@dataclass(frozen=True)
class LMModel(Config):
    cell: CellName = "lstm"  # recurrent cell
    embedding_dim: int = 64  # [N] character embedding size
    hidden_size: int = 768  # [N] hidden units per layer and direction (the best of benchmarks/charlm_sweep.py)
    num_layers: int = 1  # [N] recurrent layers
    dropout: float = 0.0  # [P] dropout probability


@dataclass(frozen=True)
class TextData(Config):
    text: str | None = None  # [FILE] UTF-8 text to train on (default: the bundled Tiny Shakespeare)
    seq_len: int = 128  # [N] characters per BPTT chunk (the truncation length)
    batch_size: int = 32  # [N] parallel streams per batch
    val_fraction: float = 0.1  # [F] the end of the text held out for validation

    def __post_init__(self) -> None:
        if self.seq_len < 1 or self.batch_size < 1:
            raise ConfigError(f"seq-len and batch-size must be positive, got {self.seq_len} and {self.batch_size}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"validation fraction must be in (0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class CharLMOptions(Config):
    model: LMModel = field(default_factory=LMModel)
    data: TextData = field(default_factory=TextData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_minutes=5))


@dataclass(frozen=True)
class AfterTraining(Config):
    sample_length: int = 500  # [N] characters of sample to print at the end

    def __post_init__(self) -> None:
        if self.sample_length < 0:
            raise ConfigError(f"--sample-length must be >= 0, got {self.sample_length}")


@dataclass(frozen=True)
class TextToScore(Config):
    text: str | None = None  # [FILE] character model: a UTF-8 text to score (default: its validation text)


@dataclass
class CharLearned(Learned):
    vocab: CharVocab  # the text's characters
    source: str  # the file trained on, or bundled:NAME
    text_sha256: str  # to notice a changed text on resume

    def to_dict(self) -> dict:
        return {"vocab": list(self.vocab.chars), "source": self.source, "text_sha256": self.text_sha256}

    @classmethod
    def load(cls, saved: dict, read) -> CharLearned:
        return cls(CharVocab(tuple(saved["vocab"])), str(saved.get("source", "")), str(saved.get("text_sha256", "")))


@dataclass
class LMRun(Run):
    @property
    def vocab(self) -> CharVocab:
        return self.learned.vocab

    def sample(
        self, prime: str = "", length: int = 500, options: SamplingOptions | None = None, seed: int | None = None
    ) -> str:
        return "".join(generate(self.model, self.vocab, prime, length, options, seed))

    def score_text(self, text: str, name: str = "text") -> TextScore:
        tokens = self.vocab.encode(text, name)
        if len(tokens) < 2:
            raise DataError(f"{name}: need at least two characters to score a prediction")
        return score_tokens(self.model, tokens)

    def explorer(self, text: str | None = None, chars: int = 10_000, shown: int = 2_000):
        """The hidden-cell explorer of ``text`` (default: the validation text) as a page that Jupyter
        shows inline (``.html`` is the page itself; ``.save(path)`` writes it)."""
        from rnnlab.viz.explorer import ExplorerPage, explain, page_html

        text = self.validation_text() if text is None else text
        return ExplorerPage(page_html(explain(self, text[:chars], shown=shown)))

    def validation_text(self) -> str:
        """The held-out end of the text the run was trained on (read again from its source)."""
        data = self.options.data
        try:
            text, source = read_corpus(data.text)
        except DataError as e:
            raise DataError(f"cannot read the run's training text again ({e}); pass a text file instead") from None
        if text_digest(text) != self.learned.text_sha256:
            raise DataError(f"{source} changed since {self.path} was trained; pass a text file instead")
        return text[int(round(len(text) * (1 - data.val_fraction))) :]


def read_corpus(path: str | None) -> tuple[str, str]:
    """(text, name) of a training text: the file, or the bundled corpus."""
    if path is None:
        return bundled_corpus(), f"bundled:{BUNDLED_CORPUS}"
    return read_text(path), str(path)


def split_tokens(tokens: Tensor, val_fraction: float) -> tuple[Tensor, Tensor]:
    """The first (1 - val_fraction) of the stream for training, the rest for validation."""
    cut = int(round(len(tokens) * (1 - val_fraction)))
    train, val = tokens[:cut], tokens[cut:]
    if len(val) < 2:
        raise DataError(f"the text is too short to hold out a validation part: {len(tokens)} characters")
    return train, val


def generate(
    model: CharLM, vocab: CharVocab, prime: str = "", length: int = 500, options: SamplingOptions | None = None, seed=None
) -> Iterator[str]:
    """Yield ``length`` characters, one at a time, continuing ``prime`` (default options: plain sampling)."""
    options = options or SamplingOptions()
    if length < 0:
        raise ConfigError(f"length must be >= 0, got {length}")
    context = prime if prime else ("\n" if "\n" in vocab else vocab.chars[0])
    device = device_of(model)
    ids = vocab.encode(context, "the prime").to(device)
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    with torch.inference_mode():
        stepper = model.stepper(batch_size=1)
        for token in ids[:-1]:
            stepper.step(token.view(1))
        token = ids[-1:]
        for _ in range(length):
            token = sample_next(stepper.step(token), options, generator)
            yield vocab.chars[int(token)]


class CharLMTask(Task):
    name = kind = "charlm"
    help = "character language model (the default task)"
    description = (
        "Train a character language model on a UTF-8 text (default: the bundled Tiny Shakespeare), save a "
        "checkpoint, print a sample and write the explorer page. `rnnlab train` alone runs this."
    )
    Options, ModelConfig, Learned, EvalData, Run = CharLMOptions, CharLMConfig, CharLearned, TextToScore, LMRun
    Extras = AfterTraining

    def read(self, options: CharLMOptions) -> tuple[str, str]:
        return read_corpus(options.data.text)

    def fit(self, options, raw) -> CharLearned:
        text, source = raw
        return CharLearned(CharVocab.from_text(text), source, text_digest(text))

    def encode(self, options, learned: CharLearned, raw) -> tuple[Tensor, Tensor]:
        text, source = raw
        if text_digest(text) != learned.text_sha256:
            raise DataError(f"{source}: the text changed since the run started; resume needs the same text")
        return split_tokens(learned.vocab.encode(text, source), options.data.val_fraction)

    def model_config(self, options, learned) -> CharLMConfig:
        return CharLMConfig(vocab_size=len(learned.vocab), **options.model.to_dict())

    def check_learned(self, learned: CharLearned, config: CharLMConfig) -> None:
        if len(learned.vocab) != config.vocab_size:
            raise ValueError(f"{len(learned.vocab)} characters in the vocabulary, but a model of {config.vocab_size}")

    def build(self, config: CharLMConfig) -> CharLM:
        return CharLM(config)

    def batches(self, options, data) -> StreamBatches:
        return StreamBatches(data[0], options.data.batch_size, options.data.seq_len, seed=options.train.seed)

    def validator(self, options, learned, data):
        def validate(model: CharLM) -> dict[str, float]:
            score = score_tokens(model, data[1])
            return {"val_loss": score.nats_per_char, "val_bpc": score.bits_per_char}

        return validate

    def evaluate(self, run: LMRun, given: TextToScore | None) -> dict:
        if given is None or given.text is None:
            text, name = run.validation_text(), "validation text"
        else:
            text, name = read_text(given.text), given.text
        score = run.score_text(text, name)
        return {
            "text": name,
            "chars": score.chars,
            "nats_per_char": score.nats_per_char,
            "bits_per_char": score.bits_per_char,
        }

    def format_scores(self, what: str, s: dict) -> str:
        nats, bits = s["nats_per_char"], s["bits_per_char"]
        return f"{s['text']}: {s['chars']:,} characters scored, {nats:.4f} nats/char, {bits:.4f} bits/char"

    def predict(self, run: LMRun, inputs: list, length: int = 200, seed: int = 0) -> list[tuple[str, str]]:
        """(prime, its continuation) for each text (temperature 0.8)."""
        if not inputs:
            raise DataError("give texts to continue (or use rnnlab sample)")
        return [(prime, run.sample(prime, length, SamplingOptions(temperature=0.8), seed)) for prime in inputs]

    def format_prediction(self, prediction) -> str:
        return prediction[0] + prediction[1]

    def finish(self, trained, extras: AfterTraining | None) -> None:
        """A sample, the explorer page of the validation text, and what to do next."""
        from rnnlab.io import atomic_write
        from rnnlab.viz.explorer import write_explorer

        run, length = trained.run, (extras or AfterTraining()).sample_length
        if length:
            text = run.sample("", length, SamplingOptions(temperature=0.8), seed=0)
            atomic_write(run.path / "samples.txt", text.encode())
            print(f"--- sample (temperature 0.8) ---\n{text}\n---")
        held_out = run.validation_text()
        print(write_explorer(run, held_out, run.path))
        words = held_out.split()
        prime = "ROMEO:" if "ROMEO:" in held_out or not words else words[0][:20]  # a prime from this corpus
        print(
            f"next: rnnlab sample {run.path} --prime {shlex.quote(prime)}  |  rnnlab eval {run.path} --text FILE  |  "
            f"open {run.path}/explorer.html"
        )

    def summary(self, out, result) -> str:
        val = result.metrics.get("val_loss")
        text = f"step {result.step}, {result.elapsed / 60:.1f} min"
        if val is not None:
            text += f", validation {val:.4f} nats/char = {val / LN2:.4f} bits/char"
        return f"saved {out} ({text})"


TASK = CharLMTask()
