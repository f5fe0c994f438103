"""The task protocol: a new task is one small module; the registry gives it train, eval, predict,
resume and --help. Configs go to JSON and back, checked. Every model answers (output, state)."""

from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F

from rnnlab.config import Config
from rnnlab.errors import ConfigError
from rnnlab.tasks import TASKS, Task, load, register
from rnnlab.train import TrainConfig


# ---------------------------------------------------------------- a toy task, as a user would add one
@dataclass(frozen=True)
class EchoModel(Config):
    hidden_size: int = 16  # [N] hidden units


@dataclass(frozen=True)
class EchoData(Config):
    lag: int = 3  # [N] steps between the symbol and the question


@dataclass(frozen=True)
class EchoOptions(Config):
    model: EchoModel = field(default_factory=EchoModel)
    data: EchoData = field(default_factory=EchoData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=60, eval_every=30, lr=1e-2, warmup_steps=0))


class Echo(torch.nn.Module):
    def __init__(self, config: EchoModel):
        super().__init__()
        self.rnn, self.head = torch.nn.GRU(4, config.hidden_size, batch_first=True), torch.nn.Linear(config.hidden_size, 4)

    def forward(self, inputs, lengths=None, state=None):
        return self.head(self.rnn(F.one_hot(inputs, 4).float(), state)[0][:, -1]), None

    def loss(self, batch, carry=None):
        return F.cross_entropy(self(batch.inputs)[0], batch.inputs[:, 0]), None


@dataclass
class EchoBatch:
    inputs: torch.Tensor  # (32, lag + 1) symbols
    reset: bool = True
    num_tokens: int = 32


class EchoBatches:
    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data) // 32

    def batch(self, step):
        k = step % len(self)
        return EchoBatch(self.data[32 * k : 32 * (k + 1)])


class EchoTask(Task):  # "remember the first of lag + 1 symbols"
    name = kind = "echo"
    help = description = "repeat the first symbol of a sequence"
    Options, ModelConfig = EchoOptions, EchoModel

    def build(self, config):
        return Echo(config)

    def read(self, options):
        return torch.randint(0, 4, (2000, options.data.lag + 1), generator=torch.Generator().manual_seed(0))

    def batches(self, options, data):
        return EchoBatches(data)

    def test(self, run, data):
        return {"accuracy": float((run.model(data)[0].argmax(-1) == data[:, 0]).float().mean())}

    def predict(self, run, inputs):
        return [int(run.model(torch.tensor([[int(c) for c in text]]))[0].argmax()) for text in inputs]


@pytest.fixture
def echo():
    task = register(EchoTask())
    yield task
    TASKS.pop(task.name)


def test_a_new_task_gets_train_eval_predict_resume_and_help(echo, tmp_path, capsys):
    from rnnlab.cli import main

    with pytest.raises(SystemExit):
        main(["train", "echo", "--help"])
    assert "--lag N" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["train", "echo", "--lag", "2", "--hidden", "24", "--out", str(out), "--quiet"]) == 0
    assert "saved" in capsys.readouterr().out
    assert main(["eval", str(out)]) == 0
    assert float(capsys.readouterr().out.split("accuracy ")[1]) > 0.9  # chance is 0.25
    assert main(["predict", str(out), "213", "020"]) == 0
    assert capsys.readouterr().out.split() == ["2", "0"]
    assert main(["train", "echo", "--out", str(out), "--resume", "--max-steps", "80", "--quiet"]) == 0
    run = load(out)
    assert run.config["progress"]["step"] == 80 and run.options.data.lag == 2 and run.options.model.hidden_size == 24


# ---------------------------------------------------------------- configs
def test_configs_go_to_json_and_back_and_refuse_wrong_types():
    import json

    from rnnlab.tasks import get, make_options

    for name, data in (("charlm", {}), ("forecast", {"csv": "s.csv", "values": ("a", "b")})):
        options = make_options(get(name), model={"hidden_size": 32}, data=data, train={"max_steps": 5})
        assert type(options).from_dict(json.loads(json.dumps(options.to_dict()))) == options
    options = get("translate").Options.from_dict(
        {"data": {"train_files": ["a.de", "a.en"]}, "model": {"hidden_size": 8}, "train": {"max_steps": 3}}
    )
    assert options.data.train_files == ("a.de", "a.en") and options.model.hidden_size == 8
    assert options.train.max_steps == 3 and options.train.max_minutes is None
    with pytest.raises(ConfigError, match="hidden_size: expected an integer, got 'many'"):
        get("charlm").Options.from_dict({"model": {"hidden_size": "many"}})
    with pytest.raises(ConfigError, match="lr: expected a finite number"):
        TrainConfig.from_dict({"max_steps": 3, "lr": float("nan")})
    with pytest.raises(ConfigError, match="cell: expected one of"):
        get("classify").Options.from_dict({"model": {"cell": "transformer"}, "data": {"csv": "x.csv"}})
    with pytest.raises(ConfigError, match="exactly one data source"):
        make_options(get("classify"))


def test_the_comments_are_the_help():
    from rnnlab.tasks.charlm import TextData

    assert TextData.docs()["seq_len"].startswith("[N] characters per BPTT chunk")
    assert TrainConfig.docs()["clip_norm"] == "[X] gradient norm clip, 0 for none"


# ---------------------------------------------------------------- one model contract
def _models():
    from rnnlab.models.classifier import ClassifierConfig, build_classifier
    from rnnlab.models.ctc import CTCConfig, CTCModel
    from rnnlab.models.forecaster import ForecasterConfig, build_forecaster
    from rnnlab.models.generator import Captioner, CaptionerConfig
    from rnnlab.models.lm import CharLM, CharLMConfig
    from rnnlab.models.seq2seq import Seq2Seq, Seq2SeqConfig
    from rnnlab.models.tagger import TaggerConfig, build_tagger

    ids, feats, lengths = torch.randint(1, 9, (2, 5)), torch.randn(2, 6, 3), torch.tensor([5, 3])
    yield CharLM(CharLMConfig(9, hidden_size=4)), ids, None
    for recurrent in (True, False):
        yield build_classifier(ClassifierConfig(2, vocab_sizes=(9,), embedding_dims=(4,), recurrent=recurrent)), ids, lengths
        yield build_tagger(TaggerConfig(3, feature_size=3, hidden_size=4, recurrent=recurrent)), feats, lengths
        yield build_forecaster(ForecasterConfig(3, 2, hidden_size=4, recurrent=recurrent, window=6)), feats, None
    yield CTCModel(CTCConfig(3, 4, hidden_size=4)), feats, lengths
    yield Seq2Seq(Seq2SeqConfig(9, 9, hidden_size=4, embedding_dim=4, attention_size=4)), (ids, ids), lengths
    yield Captioner(CaptionerConfig(9, hidden_size=4, embedding_dim=4, channels=4)), (torch.randn(2, 3, 64, 64), ids), None


def test_every_model_returns_output_and_state():
    for model, inputs, lengths in _models():
        result = model.eval()(inputs, lengths)
        assert isinstance(result, tuple) and len(result) == 2, type(model).__name__
        output, state = result
        assert isinstance(output, torch.Tensor) and output.shape[0] == 2
        assert state is None or all(isinstance(s, torch.Tensor) for s in state)


def test_one_step_function_for_every_step_by_step_user():
    """Recurrent.step is what the stepper, the generator, the decoder and scheduled sampling run:
    stepping it over a sequence gives the forward pass, for stacked layers too."""
    from rnnlab.cells import GRUCell
    from rnnlab.models.lm import CharLM, CharLMConfig
    from rnnlab.recurrent import Recurrent

    torch.manual_seed(0)
    rnn = Recurrent(GRUCell, 3, 5, num_layers=3).eval()
    x = torch.randn(2, 7, 3)
    whole, final = rnn(x)
    state, steps = None, []
    for t in range(7):
        y, state = rnn.step(x[:, t], state)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state[0], final[0], atol=1e-5, rtol=1e-5)
    lm = CharLM(CharLMConfig(11, hidden_size=6, num_layers=2)).eval()
    tokens = torch.randint(0, 11, (1, 9))
    logits, _ = lm(tokens)
    stepper = lm.stepper()
    with torch.inference_mode():
        stepped = torch.stack([stepper.step(tokens[:, t]) for t in range(9)], 1)
    torch.testing.assert_close(stepped, logits, atol=1e-5, rtol=1e-5)
