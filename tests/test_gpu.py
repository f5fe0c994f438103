"""On a CUDA GPU (skipped without one; run with `pytest -m gpu`): the fused path equals the explicit
one on the GPU, every task trains a few steps in bf16, and sampling and decoding run there."""

from pathlib import Path

import pytest
import torch

from rnnlab.cells import GRUCell, LSTMCell, RNNCell
from rnnlab.cli import main
from rnnlab.recurrent import Recurrent
from rnnlab.tasks import load

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
V1 = Path(__file__).parent / "fixtures" / "v1"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.parametrize("cell", [LSTMCell, GRUCell, RNNCell])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_fused_equals_explicit_on_cuda(cell, bidirectional):
    torch.manual_seed(0)
    rnn = Recurrent(cell, 12, 32, num_layers=2, bidirectional=bidirectional).cuda().double()
    x = torch.randn(5, 17, 12, device="cuda", dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([17, 9, 3, 17, 1])
    out_f, state_f = rnn(x, lengths=lengths)
    grads_f = torch.autograd.grad(out_f.sum() + state_f[0].sum(), [x, *rnn.parameters()])
    out_e, state_e = rnn.forward_explicit(x, lengths=lengths)
    grads_e = torch.autograd.grad(out_e.sum() + state_e[0].sum(), [x, *rnn.parameters()])
    torch.testing.assert_close(out_f, out_e, atol=1e-10, rtol=1e-10)
    for a, b in zip(grads_f, grads_e):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize(
    "task, flags",
    [
        ("charlm", ["--hidden", "64", "--sample-length", "50"]),
        ("classify", ["--csv", str(V1 / "data/reviews.csv"), "--test-csv", str(V1 / "data/reviews.csv")]),
        ("tag", ["--conll", str(V1 / "data/chunks.txt"), "--test-file", str(V1 / "data/chunks.txt")]),
        ("forecast", ["--csv", str(V1 / "data/airline.csv"), "--season", "12"]),
        ("translate", ["--multi30k", str(V1 / "data/mt"), "--vocab-size", "200", "--hidden", "32", "--layers", "1"]),
        ("caption", ["--folder", str(V1 / "data/captions"), "--batch-size", "8", "--hidden", "32"]),
        ("transcribe", ["--fsdd", str(V1 / "data/fsdd"), "--batch-size", "8", "--hidden", "16", "--layers", "1"]),
    ],
)
def test_every_task_trains_in_bf16_on_cuda_and_is_used_there(task, flags, tmp_path, capsys):
    out = tmp_path / task
    argv = ["train", task, *flags, "--max-steps", "6", "--eval-every", "3", "--precision", "bf16", "--device", "cuda"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("device: cuda")
    assert main(["eval", str(out), "--device", "cuda"]) == 0
    run = load(out, device="cuda")
    assert next(run.model.parameters()).is_cuda


def test_sampling_beam_search_and_ctc_decoding_on_cuda(capsys):
    assert main(["sample", str(V1 / "charlm"), "--length", "30", "--seed", "1", "--device", "cuda"]) == 0
    assert main(["translate", str(V1 / "translator"), "ein Mann", "--device", "cuda"]) == 0
    assert main(["caption", str(V1 / "captioner"), str(V1 / "data/captions/images/img00.jpg"), "--device", "cuda"]) == 0
    assert main(["transcribe", str(V1 / "transcriber"), str(V1 / "data/fsdd/3_yweweler_0.wav"), "--device", "cuda"]) == 0
    out = capsys.readouterr().out
    assert "inaln his inalru onhen j froroaln j" in out  # the same translation as on the CPU


def test_a_cpu_checkpoint_resumes_on_cuda(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text((V1 / "data/shakespeare.txt").read_text())
    common = ["--text", str(text), "--hidden", "16", "--seq-len", "16", "--batch-size", "4", "--quiet"]
    common += ["--sample-length", "0"]
    assert main(["train", *common, "--max-steps", "4", "--device", "cpu", "--out", str(tmp_path / "r")]) == 0
    assert main(["train", "--out", str(tmp_path / "r"), "--resume", "--max-steps", "8", "--device", "cuda", "--quiet"]) == 0
    assert load(tmp_path / "r").config["progress"]["step"] == 8
