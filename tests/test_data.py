"""Reading text, the character vocabulary, and contiguous batching for truncated BPTT."""

import unicodedata

import pytest
import torch
import torch.nn.functional as F

from rnnlab.data.streams import StreamBatches, eval_batches
from rnnlab.data.text import bundled_corpus, read_text
from rnnlab.data.vocab import CharVocab
from rnnlab.errors import DataError
from rnnlab.models.lm import CharLM, CharLMConfig

KOREAN = "동해 물과 백두산이 마르고 닳도록\n하느님이 보우하사 우리나라 만세.\n"


def test_bundled_corpus_is_tiny_shakespeare():
    text = bundled_corpus()
    assert len(text) == 1_115_394
    assert len(set(text)) == 65
    assert text.startswith("First Citizen:\nBefore we proceed any further")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary\x00", "binary"),
        ("caf\u00e9".encode("latin-1"), "not valid UTF-8"),
        (b"  \n\t\n", "only whitespace"),
    ],
)
def test_bad_text_files(tmp_path, content, message):
    path = tmp_path / "t.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_text(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_text(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="is a directory"):
        read_text(tmp_path)


def test_text_is_normalised(tmp_path):
    decomposed = unicodedata.normalize("NFD", KOREAN)
    assert decomposed != KOREAN
    path = tmp_path / "k.txt"
    path.write_bytes(b"\xef\xbb\xbf" + decomposed.replace("\n", "\r\n").encode())
    assert read_text(path) == KOREAN  # BOM dropped, CRLF -> LF, jamo recomposed


def test_korean_vocabulary_round_trip():
    vocab = CharVocab.from_text(KOREAN)
    assert "한" not in vocab and "해" in vocab
    ids = vocab.encode(KOREAN)
    assert vocab.decode(ids) == KOREAN
    assert len(vocab) == len(set(KOREAN))


def test_unknown_characters_are_named():
    vocab = CharVocab.from_text("abc")
    with pytest.raises(DataError, match=r"2 character\(s\).*'z'.*'한'"):
        vocab.encode("abzz한")


def test_stream_batches_are_contiguous_and_shifted():
    tokens = torch.arange(1000)
    batches = StreamBatches(tokens, batch_size=4, seq_len=10, seed=3)
    first, second = batches.batch(0), batches.batch(1)
    assert first.reset and not second.reset
    assert torch.equal(first.targets, first.inputs + 1)
    # each row of the next batch continues the same row of this one
    assert torch.equal(second.inputs[:, 0], first.inputs[:, -1] + 1)
    # a new epoch starts over (at its own offset) and says so
    assert batches.batch(len(batches)).reset
    # deterministic: the same step gives the same batch, even from a fresh object
    again = StreamBatches(tokens, batch_size=4, seq_len=10, seed=3)
    assert torch.equal(again.batch(len(batches) + 2).inputs, batches.batch(len(batches) + 2).inputs)


def test_eval_carries_state_into_the_tail(shakespeare):
    """503 tokens in 4 rows of 125 targets plus a 2-token tail that continues the last row:
    the score equals scoring each row, the last one with its tail, as one sequence."""
    from rnnlab.tasks.charlm import score_tokens

    torch.manual_seed(0)
    vocab = CharVocab.from_text(shakespeare)
    tokens = vocab.encode(shakespeare[:503])
    model = CharLM(CharLMConfig(len(vocab), hidden_size=32)).eval()
    score = score_tokens(model, tokens, batch_size=4, seq_len=37)
    pieces = [tokens[0:126], tokens[125:251], tokens[250:376], tokens[375:503]]
    with torch.no_grad():
        total = sum(F.cross_entropy(model(p[None, :-1])[0][0], p[1:], reduction="sum") for p in pieces)
    assert score.chars == 502
    assert abs(score.nats_per_char - float(total) / 502) < 1e-5


def test_too_short_text_for_one_batch():
    with pytest.raises(DataError, match="too short for one batch"):
        StreamBatches(torch.arange(100), batch_size=8, seq_len=16)


def test_eval_batches_cover_the_stream():
    tokens = torch.arange(103)
    targets = torch.cat([b.targets.flatten() for b in eval_batches(tokens, 4, 7)])
    assert sorted(targets.tolist()) == list(range(1, 103))  # every token after the first, once


def test_carried_state_gives_the_untruncated_loss(shakespeare):
    """Truncated BPTT's forward pass: chunks with the state carried across = one long forward."""
    torch.manual_seed(0)
    vocab = CharVocab.from_text(shakespeare)
    tokens = vocab.encode(shakespeare[:4001])
    model = CharLM(CharLMConfig(len(vocab), hidden_size=32, num_layers=2)).eval()
    inputs, targets = tokens[:-1].view(4, 1000), tokens[1:].view(4, 1000)
    with torch.no_grad():
        whole_logits, _ = model(inputs)
        whole = F.cross_entropy(whole_logits.flatten(0, 1), targets.flatten())
        carried, fresh, state = [], [], None
        for start in range(0, 1000, 64):
            logits, state = model(inputs[:, start : start + 64], state=state)
            carried.append(logits)
            fresh.append(model(inputs[:, start : start + 64])[0])
        carried, fresh = torch.cat(carried, 1), torch.cat(fresh, 1)
    chunked = F.cross_entropy(carried.flatten(0, 1), targets.flatten())
    torch.testing.assert_close(carried, whole_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)
    assert (fresh - whole_logits).abs().max() > 1e-3  # dropping the state does change the predictions


def test_cropped_buckets_have_no_padding():
    from rnnlab.data.batching import BucketBatches

    items = [torch.arange(n) for n in range(5, 105)]
    batches = BucketBatches(items, batch_size=10, labels=list(range(100)), seed=0, crop=True)
    for step in range(len(batches)):
        b = batches.batch(step)
        assert b.lengths.unique().numel() == 1  # one length: no padding
        for row, i, label in zip(b.inputs, b.index.tolist(), b.labels.tolist()):
            assert torch.equal(row, items[i][-len(row) :]) and label == i  # the end of its own sequence
