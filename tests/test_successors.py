"""The non-recurrent baselines (causal dilated convolutions, a causal transformer) and the
successors experiment: causality, streaming, equal sizes, and a short training that learns."""

import math

import pytest
import torch

from rnnlab.experiments import successors
from rnnlab.models.conv import ConvLM, ConvLMConfig
from rnnlab.models.transformer import TransformerLM, TransformerLMConfig


def test_convolution_streams_in_chunks_exactly():
    """Chunks with the carried left context equal one pass over the whole stream."""
    torch.manual_seed(0)
    model = ConvLM(ConvLMConfig(11, embedding_dim=8, channels=12, blocks=4, dilation_cycle=3))
    tokens = torch.randint(0, 11, (3, 40))
    whole, _ = model(tokens)
    first, state = model(tokens[:, :17])
    second, _ = model(tokens[:, 17:], state=state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=0, atol=1e-5)
    assert [s.shape for s in state] == [(2, 3, 12), (4, 3, 12), (8, 3, 12), (2, 3, 12)]  # (P, B, C)


@pytest.mark.parametrize(
    "model",
    [
        ConvLM(ConvLMConfig(11, embedding_dim=8, channels=12, blocks=3, dilation_cycle=3)),
        TransformerLM(TransformerLMConfig(11, model_dim=16, heads=2, blocks=2, max_len=64)),
    ],
)
def test_baselines_never_look_ahead(model):
    torch.manual_seed(1)
    tokens = torch.randint(0, 11, (2, 30))
    changed = tokens.clone()
    changed[:, 20:] = (changed[:, 20:] + 1) % 11
    a, _ = model(tokens)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, :20], b[:, :20], rtol=0, atol=1e-6)
    assert (a[:, 20] - b[:, 20]).abs().max() > 1e-4  # the changed token itself is read


def test_receptive_field_is_what_the_config_says():
    config = ConvLMConfig(11, embedding_dim=8, channels=8, kernel_size=3, blocks=6, dilation_cycle=6)
    assert config.receptive_field() == 127  # 1 + 2 * (1 + 2 + ... + 32)
    torch.manual_seed(2)
    model = ConvLM(config)
    tokens = torch.randint(0, 11, (1, 200))
    changed = tokens.clone()
    changed[0, 50] = (changed[0, 50] + 1) % 11
    diff = (model(tokens)[0] - model(changed)[0]).abs().amax(-1)[0]  # (T,)
    reached = (diff > 0).nonzero().flatten()
    assert reached.min() == 50 and reached.max() == 50 + 126


def test_every_model_is_sized_to_the_same_budget():
    for name in successors.MODELS:
        model, size = successors.sized(name, 65, 200_000)
        assert abs(successors.parameters(model) - 200_000) < 0.03 * 200_000, (name, size)


def test_transformer_refuses_a_window_beyond_its_positions():
    model = TransformerLM(TransformerLMConfig(11, model_dim=8, heads=2, blocks=1, max_len=16))
    with pytest.raises(ValueError, match="longer than max_len 16"):
        model(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("name", ["conv", "transformer"])
def test_a_short_run_learns_and_reports(name):
    """150 steps on the bundled corpus, through the Trainer: well below the 4.17 nats/char of a
    uniform guess (measured 2.30 for the convolutions, 3.00 for the transformer, still warming up)."""
    trained = successors.train_one(name, 100_000, minutes=5, max_steps=150, lengths=(64, 128))
    assert trained.steps == 150 and set(trained.step_seconds) == {64, 128}
    assert trained.curve and trained.curve[-1][1] < math.log(65) - 0.75, trained.curve
    assert trained.tokens_per_second > 0
    text = successors.table([trained], marks=[0.01, 5])
    assert f"| {name} | {trained.size} |" in text


def test_the_command_writes_its_tables_and_plot(tmp_path, capsys):
    from rnnlab.cli import main

    assert main(["experiment", "successors", "--params", "5"]) == 2
    assert "--params must be at least 10,000" in capsys.readouterr().err
    out = tmp_path / "successors"
    assert (
        main(["experiment", "successors", "--models", "conv", "--params", "20000", "--minutes", "0.05", "--out", str(out)])
        == 0
    )
    text = (out / "successors.md").read_text()
    assert "| conv | channels" in text and "| T = 1024 / T = 64 |" in text
    assert (out / "successors.png").read_bytes()[:4] == b"\x89PNG"
