"""The hand-written BPTT (rnnlab.bptt) against autograd through the explicit loop, for every cell that
has it: values and every gradient equal in float64 (1e-10), with layers, directions, ragged lengths,
training and evaluation; the new cells (layer norm, peepholes, zoneout) inside Recurrent and the tasks."""

import pytest
import torch

from rnnlab import Recurrent, bptt, native
from rnnlab.cells import CELLS
from rnnlab.recurrent import HANDWRITTEN_UP_TO
from rnnlab.variants import LayerNormLSTMCell, PeepholeLSTMCell, ZoneoutCell

HANDWRITTEN = ["rnn", "lstm", "gru", "lnlstm", "peephole", "zoneout-lstm", "zoneout-gru"]


def _grads(run, rec, x, state, lengths, seed=7):
    torch.manual_seed(seed)  # zoneout draws its masks in the same order on both paths
    out, final = run(x, state, lengths)
    loss = (out * out.detach().cos()).sum() + sum(f.sin().sum() for f in final)
    return out, final, torch.autograd.grad(loss, [x, *state, *rec.parameters()])


@pytest.mark.parametrize("name", HANDWRITTEN)
@pytest.mark.parametrize(
    ("layers", "bidirectional", "ragged", "training"),
    [(1, False, False, True), (2, True, True, True), (2, False, True, False)],
)
def test_handwritten_equals_autograd(name, layers, bidirectional, ragged, training):
    torch.manual_seed(0)
    rec = Recurrent(CELLS[name], 3, 4, num_layers=layers, bidirectional=bidirectional, dropout=0.0).double()
    rec.train(training)
    with torch.no_grad():  # move the gains and peepholes off their starting values
        for p in rec.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = torch.randn(3, 11, 3, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(s.shape, dtype=torch.float64, requires_grad=True) for s in rec.initial_state(3))
    lengths = torch.tensor([11, 4, 1]) if ragged else None
    expected = _grads(rec.forward_explicit, rec, x, state, lengths)
    got = _grads(rec.forward_handwritten, rec, x, state, lengths)
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-10)
    for a, b in zip(got[1], expected[1]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    for a, b in zip(got[2], expected[2]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["lstm", "lnlstm", "peephole"])
def test_handwritten_passes_gradcheck(name):
    torch.manual_seed(1)
    cell = CELLS[name](2, 3).double()
    xw = cell.project(torch.randn(5, 2, 2, dtype=torch.float64)).detach().requires_grad_()
    state = tuple(torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for _ in cell.state_names)

    def run(xw, *state):
        out, final = bptt.recurrence(cell, xw, state, None)
        return out, *final

    assert torch.autograd.gradcheck(run, (xw, *state))


def test_forward_takes_the_fastest_path():
    lstm = Recurrent(CELLS["lstm"], 4, 8)
    gru_small, gru_large = Recurrent(CELLS["gru"], 4, 8), Recurrent(CELLS["gru"], 4, HANDWRITTEN_UP_TO["GRUCell"] + 1)
    x = torch.randn(2, 5, 4)
    assert not lstm._handwritten_wins(x)  # oneDNN's LSTM is faster than our loop, even with the fused kernels
    assert lstm._handwritten_wins(x, torch.tensor([5, 3])) and not lstm._handwritten_wins(x, torch.tensor([5, 5]))
    assert gru_small._handwritten_wins(x) and gru_large._handwritten_wins(x)  # the fused kernels win at every size
    with native.disabled():  # without them, the Python loop wins at small sizes only
        assert gru_small._handwritten_wins(x) and not gru_large._handwritten_wins(x)
    with torch.no_grad():
        assert not gru_small._handwritten_wins(x)  # inference: the fused kernel
    for name in ("lnlstm", "peephole", "zoneout-lstm"):
        assert Recurrent(CELLS[name], 4, 8).handwritten
    assert not Recurrent(CELLS["mingru"], 4, 8).handwritten  # the minimal cells scan instead


def test_new_cells_are_what_they_say():
    torch.manual_seed(2)
    ln = LayerNormLSTMCell(3, 4).double()
    h, c = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    x = torch.randn(2, 3, dtype=torch.float64)
    # a scaled W_hh changes nothing: the norm removes the scale of the recurrent input
    h1, c1 = ln.recur(ln.project(x), (h, c))
    with torch.no_grad():
        ln.weight_hh.mul_(10.0)
    h2, c2 = ln.recur(ln.project(x), (h, c))
    torch.testing.assert_close((h1, c1), (h2, c2), rtol=0, atol=1e-4)  # all but the epsilon under the root
    # zero peepholes are the plain LSTM
    peep, plain = PeepholeLSTMCell(3, 4).double(), CELLS["lstm"](3, 4).double()
    plain.load_state_dict({k: v for k, v in peep.state_dict().items() if not k.startswith("peephole")})
    with torch.no_grad():
        for p in (peep.peephole_i, peep.peephole_f, peep.peephole_o):
            p.zero_()
    torch.testing.assert_close(peep.recur(peep.project(x), (h, c)), plain.recur(plain.project(x), (h, c)))
    # zoneout: in training every unit is either its old value or the cell's new one; in evaluation the mix
    zoneout = ZoneoutCell(plain, (0.5, 0.5))
    new = plain.recur(plain.project(x), (h, c))
    zoned = zoneout.recur(zoneout.project(x), (h, c))
    for z, n, old in zip(zoned, new, (h, c)):
        assert bool(((z == n) | (z == old)).all()) and bool((z == old).any()) and bool((z == n).any())
    zoneout.eval()
    for z, n, old in zip(zoneout.recur(zoneout.project(x), (h, c)), new, (h, c)):
        torch.testing.assert_close(z, 0.5 * old + 0.5 * n)


def test_peephole_trace_records_its_gates():
    rec = Recurrent(PeepholeLSTMCell, 3, 4)
    trace = rec.trace(torch.randn(2, 6, 3))
    assert trace.get("o").shape == (2, 6, 4) and float(trace.get("f").detach().min()) > 0


@pytest.mark.parametrize("cell", ["lnlstm", "peephole", "zoneout-lstm"])
def test_character_model_with_a_new_cell_learns_and_samples(cell, shakespeare, tmp_path, capsys):
    from rnnlab.cli import main

    text = tmp_path / "text.txt"
    text.write_text(shakespeare[:60_000], encoding="utf-8")
    flags = ["--text", str(text), "--cell", cell, "--hidden", "64", "--seq-len", "64", "--lr", "1e-2"]
    assert main(["train", *flags, "--max-steps", "80", "--eval-every", "40", "--quiet", "--out", str(tmp_path / "r")]) == 0
    losses = [float(line.split(",")[3]) for line in (tmp_path / "r/metrics.csv").read_text().splitlines()[1:]]
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:5]) / 5
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "r"), "--prime", "KING", "--length", "30", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("KING")
