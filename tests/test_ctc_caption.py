"""CTC decoding and the transcription data path; the captioning data path and a short run of each task."""

import itertools
import math

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from rnnlab.decoding import ctc_greedy, ctc_prefix_beam_search
from rnnlab.errors import DataError
from rnnlab.models.ctc import CTCConfig, CTCModel

needs_data = pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data (the real data sets)")


def test_ctc_greedy_merges_repeats_then_drops_blanks():
    path = [0, 2, 2, 0, 2, 1, 1, 0, 0, 3]
    log_probs = torch.full((len(path), 4), -10.0)
    log_probs[torch.arange(len(path)), torch.tensor(path)] = 0.0
    assert ctc_greedy(log_probs) == [2, 2, 1, 3]


def _collapse(path):
    out, prev = [], 0
    for c in path:
        if c != prev and c != 0:
            out.append(c)
        prev = c
    return tuple(out)


def test_prefix_beam_search_finds_the_most_probable_labelling():
    """Brute force over every path of 6 frames and 3 classes: sum the paths of each labelling."""
    torch.manual_seed(1)
    log_probs = torch.randn(6, 3).mul(1.5).log_softmax(-1)
    totals = {}
    for path in itertools.product(range(3), repeat=6):
        p = math.exp(sum(float(log_probs[t, c]) for t, c in enumerate(path)))
        key = _collapse(path)
        totals[key] = totals.get(key, 0.0) + p
    best = max(totals, key=totals.get)
    assert tuple(ctc_prefix_beam_search(log_probs, beam=50)) == best


def test_ctc_model_shapes_and_loss():
    model = CTCModel(CTCConfig(features=40, labels=10, hidden_size=16))
    x = torch.randn(3, 51, 40)
    log_probs, state = model(x, torch.tensor([51, 40, 9]))
    lengths = model.output_lengths(torch.tensor([51, 40, 9]))
    assert log_probs.shape == (3, 26, 11) and lengths.tolist() == [26, 20, 5] and state is None
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3, 26))


def test_wav_reading_resamples_and_refuses_empty(tmp_path):
    import soundfile as sf

    from rnnlab.data.audio import log_mel, read_wav

    sf.write(tmp_path / "a.wav", np.sin(np.arange(16000) / 10).astype(np.float32), 16000)
    audio = read_wav(tmp_path / "a.wav")
    assert abs(len(audio) - 8000) <= 2  # one second at 8 kHz
    assert log_mel(audio).shape[1] == 40
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(DataError, match="empty"):
        read_wav(tmp_path / "empty.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="not a readable audio file"):
        read_wav(tmp_path / "junk.wav")


@needs_data
def test_utterances_join_recordings_of_the_right_speakers():
    from rnnlab.data import fsdd

    pools = fsdd.read_fsdd(SHARED_DATA / "speech/fsdd")
    assert sum(len(v) for v in pools["train"].values()) == 2250  # 5 speakers x 10 digits x recordings 0-44
    assert sum(len(v) for v in pools["val"].values()) == 250  # the same speakers' recordings 45-49
    assert sum(len(v) for v in pools["test"].values()) == 500  # the test speaker, nowhere else
    rng = np.random.default_rng(0)
    audio, text = fsdd.make_utterance(pools["test"], rng)
    assert 3 <= len(text) <= 7 and text.isdigit() and len(audio) > 8000 * 0.3 * len(text)
    augmented, text = fsdd.make_utterance(pools["train"], rng, augment=True)
    assert 3 <= len(text) <= 7 and augmented.dtype == np.float32


def test_non_images_are_refused(tmp_path):
    from rnnlab.data.images import load_image

    (tmp_path / "x.jpg").write_text("this is not a jpeg")
    with pytest.raises(DataError, match="not a readable image"):
        load_image(tmp_path / "x.jpg")
    with pytest.raises(DataError, match="no such file"):
        load_image(tmp_path / "missing.jpg")


@needs_data
def test_captioning_runs_end_to_end(tmp_path, capsys):
    from rnnlab.cli import main
    from rnnlab.data.captions import read_captions
    from rnnlab.tasks import caption

    data = read_captions(SHARED_DATA / "captioning/flickr8k_1000")
    assert [len(data.names[k]) for k in ("train", "val", "test")] == [800, 100, 100]
    assert data.images["test"].shape == (100, 3, 64, 64) and all(len(c) == 5 for c in data.captions["test"])
    base = caption.baselines(data)
    assert set(base) == {"most frequent training caption", "nearest training image by pixel statistics"}
    argv = [
        "train",
        "caption",
        "--folder",
        str(SHARED_DATA / "captioning/flickr8k_1000"),
        "--max-steps",
        "6",
        "--eval-every",
        "3",
        "--hidden",
        "32",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
    ]
    assert main(argv) == 0
    assert "test BLEU-4, most frequent training caption" in capsys.readouterr().out
    image = SHARED_DATA / "captioning/flickr8k_1000/images" / data.names["test"][0]
    assert main(["caption", str(tmp_path / "run"), str(image)]) == 0
    assert capsys.readouterr().out.startswith(str(image))


@needs_data
def test_transcription_runs_end_to_end(tmp_path, capsys):
    from rnnlab.cli import main
    from rnnlab.tasks import make_options, train, transcribe

    fsdd = SHARED_DATA / "speech/fsdd"
    options = make_options(
        transcribe.TASK,
        model={"hidden_size": 16, "num_layers": 1},
        data={"fsdd": str(fsdd), "batch_size": 8, "val_size": 8, "test_size": 8},
        train={"max_steps": 4, "eval_every": 2},
    )
    test = train(transcribe.TASK, options, tmp_path / "run", progress=False).test
    assert set(test) == {"cer_greedy", "exact_greedy", "cer_beam", "exact_beam"}
    assert main(["transcribe", str(tmp_path / "run"), str(fsdd / "7_theo_0.wav"), "--beam", "0"]) == 2
    assert "beam width" in capsys.readouterr().err
    assert main(["transcribe", str(tmp_path / "run"), str(fsdd / "7_theo_0.wav")]) == 0
    assert capsys.readouterr().out.startswith(str(fsdd / "7_theo_0.wav"))


def test_captioner_never_emits_unk_pad_or_start():
    """Even a model that puts nearly all its mass on <unk> decodes to real words."""
    from rnnlab.data.tokens import BOS, EOS, PAD, UNK
    from rnnlab.decoding import beam_search, greedy_decode
    from rnnlab.models.generator import IMAGE_SIZE, Captioner, CaptionerConfig

    torch.manual_seed(0)
    model = Captioner(CaptionerConfig(vocab=12, hidden_size=16, embedding_dim=8, channels=8)).eval()
    with torch.no_grad():
        model.decoder.out_bias[UNK] = 50.0
        model.decoder.out_bias[PAD] = 40.0
        model.decoder.out_bias[BOS] = 30.0
    images = torch.randn(3, 3, IMAGE_SIZE, IMAGE_SIZE)
    lengths = torch.ones(3, dtype=torch.int64)
    with torch.inference_mode():
        hyps = greedy_decode(model, images, lengths, 8, BOS, EOS) + beam_search(model, images, lengths, 3, 8, BOS, EOS)
    tokens = {t for h in hyps for t in h.tokens}
    assert tokens and not tokens & {PAD, UNK, BOS}
