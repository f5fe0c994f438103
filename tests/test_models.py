"""Classifier and tagger: padding never leaks; a causal tagger never looks ahead, a bidirectional one does."""

import pytest
import torch

from rnnlab.errors import ConfigError
from rnnlab.models.classifier import ClassifierConfig, build_classifier
from rnnlab.models.tagger import TaggerConfig, build_tagger
from rnnlab.pooling import POOLINGS


@pytest.mark.parametrize("pooling", list(POOLINGS))
@pytest.mark.parametrize("recurrent", [True, False])
def test_padding_never_changes_a_prediction(pooling, recurrent):
    torch.manual_seed(0)
    config = ClassifierConfig(
        3, vocab_sizes=(20,), embedding_dims=(8,), hidden_size=6, num_layers=2, pooling=pooling, recurrent=recurrent
    )
    model = build_classifier(config).eval()
    seq = torch.randint(1, 20, (1, 5))
    alone, _ = model(seq, torch.tensor([5]))
    for pad_with in (0, 7):  # padding id, or any junk: only the length counts
        padded = torch.cat([seq, torch.full((1, 4), pad_with)], dim=1)
        batch = torch.cat([padded, torch.randint(1, 20, (1, 9))])
        together, _ = model(batch, torch.tensor([5, 9]))
        torch.testing.assert_close(together[:1], alone, atol=1e-6, rtol=1e-6)


def test_feature_input_classifier():
    model = build_classifier(ClassifierConfig(4, feature_size=12, hidden_size=8)).eval()
    x = torch.randn(3, 10, 12)
    assert model(x, torch.tensor([10, 7, 3]))[0].shape == (3, 4)


def _tagger(bidirectional):
    torch.manual_seed(0)
    return build_tagger(TaggerConfig(5, feature_size=3, hidden_size=8, num_layers=2, bidirectional=bidirectional)).eval()


def test_causal_tagger_does_not_look_ahead():
    model = _tagger(bidirectional=False)
    x = torch.randn(2, 12, 3)
    changed = x.clone()
    changed[:, 7:] = torch.randn(2, 5, 3)  # change the future after step 6
    a, _ = model(x)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-3
    stepper = model.stepper(batch_size=2)  # and online, step by step, it gives the same answers
    online = torch.stack([stepper.step(x[:, t]) for t in range(12)], dim=1)
    torch.testing.assert_close(online, a, atol=1e-5, rtol=1e-5)


def test_bidirectional_tagger_does_look_ahead():
    model = _tagger(bidirectional=True)
    x = torch.randn(2, 12, 3)
    changed = x.clone()
    changed[:, 11] += 1.0
    a, _ = model(x)
    b, _ = model(changed)
    assert (a[:, 0] - b[:, 0]).abs().max() > 1e-5  # step 0 sees step 11
    with pytest.raises(ValueError, match="cannot be stepped"):
        model.stepper()


def test_frame_mlp_has_no_context():
    model = build_tagger(TaggerConfig(5, feature_size=3, hidden_size=8, recurrent=False)).eval()
    x = torch.randn(1, 6, 3)
    changed = x.clone()
    changed[:, :3] += 1.0
    torch.testing.assert_close(model(x)[0][:, 3:], model(changed)[0][:, 3:])


def test_token_fields_and_bad_configs():
    model = build_tagger(TaggerConfig(4, vocab_sizes=(30, 10), embedding_dims=(8, 4), hidden_size=6)).eval()
    ids = torch.stack([torch.randint(1, 30, (2, 7)), torch.randint(1, 10, (2, 7))], dim=-1)  # (B, T, 2)
    assert model(ids, torch.tensor([7, 4]))[0].shape == (2, 7, 4)
    with pytest.raises(ConfigError, match="either tokens"):
        build_tagger(TaggerConfig(4, vocab_sizes=(30,), embedding_dims=(8,), feature_size=3))
    with pytest.raises(ConfigError, match="at least 2 classes"):
        ClassifierConfig(1, feature_size=3)
    with pytest.raises(ConfigError, match="unknown pooling"):
        build_classifier(ClassifierConfig(2, feature_size=3, pooling="median"))
