"""The memory and exposure experiments, at toy sizes: the machinery, not the headline numbers."""

import torch

from rnnlab.data.streams import StreamBatch
from rnnlab.experiments import exposure, memory
from rnnlab.models.lm import CharLM, CharLMConfig
from rnnlab.models.recall import Recaller


def test_memory_task_batches():
    g = torch.Generator().manual_seed(0)
    ids, targets = memory.make_batch(5, 7, g)
    assert ids.shape == (5, 8)
    assert torch.equal(ids[:, 0], targets)
    assert (ids[:, 1:-1] >= memory.SIGNALS).all() and (ids[:, 1:-1] < memory.QUERY).all()
    assert (ids[:, -1] == memory.QUERY).all()


def test_parameter_budgets_match():
    budget = memory.parameter_count("lstm", 64)
    for cell in ("rnn", "gru"):
        hidden = memory.matched_hidden(cell, budget)
        assert abs(memory.parameter_count(cell, hidden) - budget) / budget < 0.02
        model = Recaller(cell, hidden, memory.SYMBOLS, memory.SIGNALS)
        assert sum(p.numel() for p in model.parameters()) == memory.parameter_count(cell, hidden)


def test_lstm_solves_a_short_lag():
    result = memory.train_one("lstm", 32, lag=5, steps=300)
    assert result.accuracy > 0.9


def test_memory_table_names_the_chance_lag():
    rows = [memory.Result("rnn", 10, 100, lag, acc, 0.0, 0.0) for lag, acc in [(5, 1.0), (20, 0.14), (50, 0.12)]]
    text = memory.table(rows)
    assert "| rnn (10, 100) | 100% | 14% | 12% | lag 20 |" in text


def test_scheduled_sampling_reads_its_own_samples():
    torch.manual_seed(0)
    lm = model = CharLM(CharLMConfig(11, hidden_size=16, num_layers=2))  # batches with sampling_prob > 0
    inputs = torch.randint(0, 11, (3, 9))
    batch = StreamBatch(inputs, torch.randint(0, 11, (3, 9)), reset=True)
    batch.sampling_prob = 0.0
    teacher, _ = model.loss(batch)
    torch.testing.assert_close(teacher, lm.loss(batch)[0])
    batch.sampling_prob = 1e-9  # the step-by-step path, reading (almost) only the true text
    stepped, state = model.loss(batch)
    torch.testing.assert_close(stepped, teacher, atol=1e-5, rtol=1e-5)
    assert state[0].shape == (2, 3, 16)
    batch.sampling_prob = 1.0  # reading only its own samples: a different loss, still differentiable
    sampled, _ = model.loss(batch)
    sampled.backward()
    assert abs(sampled.item() - teacher.item()) > 1e-4


def test_js_divergence():
    from collections import Counter

    assert exposure.js_divergence(Counter("aabb"), Counter("abab")) == 0
    assert abs(exposure.js_divergence(Counter("aa"), Counter("bb")) - 1.0) < 1e-12


def test_bias_to_remember_sets_the_keeping_gate():
    from rnnlab.cells import GRUCell, LSTMCell, bias_to_remember

    lstm, gru = LSTMCell(3, 4), GRUCell(3, 4)
    bias_to_remember(lstm, 3.0)
    bias_to_remember(gru, 2.0)
    f = lstm.gates(lstm.project(torch.zeros(1, 3)), torch.zeros(1, 4))[1]
    z = gru.gates(gru.project(torch.zeros(1, 3)), torch.zeros(1, 4))[1]
    torch.testing.assert_close(f, torch.full((1, 4), torch.sigmoid(torch.tensor(3.0)).item()))
    torch.testing.assert_close(z, torch.full((1, 4), torch.sigmoid(torch.tensor(2.0)).item()))


def test_a_gate_biased_to_remember_bridges_a_long_lag():
    """Lag 40, 400 steps: the LSTM with torch's initialisation stays near chance, with its forget
    gate biased to remember it solves the task (measured: 0.12 and 1.0)."""
    plain = memory.train_one("lstm", 32, lag=40, steps=400)
    biased = memory.train_one("lstm", 32, lag=40, steps=400, remember_bias=3.0)
    assert plain.accuracy < 0.3 < 0.9 < biased.accuracy
    assert biased.cell == "lstm, forget bias 3"


def test_truncation_teaches_lags_inside_the_chunk_only():
    """Chunks of k = 10 over a stream of copy episodes: a lag of 5 is learned (and answered also where
    the signal was read in the previous chunk); a lag of 10 never has signal and query in one chunk
    and stays at chance (1/8), though the forward state carries the signal."""
    from rnnlab.experiments.truncation import episode_stream, train_delay

    x, y = episode_stream(3, 40, 5, torch.Generator().manual_seed(0))
    queries = [(b, t) for b, t in (x == 16).nonzero().tolist() if t >= 5]  # the query marker
    assert queries and all(y[b, t] == x[b, t - 5] for b, t in queries)  # the answer: the signal 5 back
    assert (y != -100).sum() == len(queries)  # nothing else is scored (nor a query whose signal was cut off)
    inside = train_delay("lstm", chunk=10, lag=5, steps=600, hidden=64, batch=64, seed=0)
    beyond = train_delay("lstm", chunk=10, lag=10, steps=600, hidden=64, batch=64, seed=0)
    assert inside.accuracy > 0.9, inside
    assert beyond.accuracy < 0.25, beyond
