"""Classification, tagging and forecasting end to end on small slices of the real data sets."""

import json

import numpy as np
import pytest
from conftest import SHARED_DATA

from rnnlab.cli import main
from rnnlab.data.word2vec import train_word_vectors
from rnnlab.errors import DataError
from rnnlab.models.inputs import set_word_vectors
from rnnlab.tasks import classify, forecast, load, make_options, tag, train

needs_data = pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data (the real data sets)")
pytestmark = needs_data


@pytest.fixture(scope="module")
def sst_csv(tmp_path_factory):
    """SST-2 as CSV files: the 6,920 training sentences, and the 872 dev sentences as the test file."""
    folder = tmp_path_factory.mktemp("sst")
    for name, limit in (("train", None), ("dev", None)):
        lines = (SHARED_DATA / "sentiment/sst" / f"stsa.binary.{name}").read_text().splitlines()[:limit]
        rows = ['"' + line[2:].replace('"', '""') + '",' + ("pos" if line[0] == "1" else "neg") for line in lines]
        (folder / f"{name}.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    return folder


def test_classify_csv_learns_and_predicts(sst_csv, tmp_path, capsys):
    options = make_options(
        classify.TASK,
        model={"hidden_size": 32, "embedding_dim": 32},
        data={
            "csv": str(sst_csv / "train.csv"),
            "test_csv": str(sst_csv / "dev.csv"),
            "min_count": 1,
            "max_tokens": None,
            "batch_size": 32,
        },
        train={"max_steps": 300, "eval_every": 100, "lr": 5e-3},
    )
    trained = train(classify.TASK, options, tmp_path / "run", progress=False)
    result, run, test = trained.result, trained.run, trained.test
    assert run.learned.labels == ["neg", "pos"]
    assert test["accuracy"] > 0.62 and result.best_step is not None  # chance is 0.5 (measured 0.65)
    assert main(["predict", str(tmp_path / "run"), "wonderful", "awful"]) == 0
    out = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    expected = run.predict(["wonderful", "awful"])
    assert [(label, float(p)) for label, p, _ in out] == [(label, round(float(p.max()), 3)) for _, label, p in expected]
    assert main(["eval", str(tmp_path / "run"), "--csv", str(sst_csv / "dev.csv")]) == 0
    assert "confusion matrix" in capsys.readouterr().out


def test_unseen_label_at_evaluation(sst_csv, tmp_path, capsys):
    options = make_options(
        classify.TASK,
        model={"hidden_size": 8, "embedding_dim": 8},
        data={"csv": str(sst_csv / "train.csv")},
        train={"max_steps": 2, "eval_every": 2},
    )
    train(classify.TASK, options, tmp_path / "run", progress=False)
    odd = tmp_path / "odd.csv"
    odd.write_text("text,label\na fine film,pos\nwhat a mess,meh\n")
    assert main(["eval", str(tmp_path / "run"), "--csv", str(odd)]) == 2
    assert "label(s) training never saw: 'meh'" in capsys.readouterr().err


def test_classify_bad_inputs(sst_csv, tmp_path, capsys):
    bad = tmp_path / "one_class.csv"
    bad.write_text("text,label\ngood,pos\nfine,pos\n")
    argv = ["train", "classify", "--csv", str(bad), "--max-steps", "2", "--out", str(tmp_path / "o")]
    assert main(argv) == 2 and "only one class" in capsys.readouterr().err
    argv[3] = str(sst_csv / "train.csv")
    assert main([*argv, "--label-column", "sentiment"]) == 2
    assert "no column 'sentiment'; columns are text, label" in capsys.readouterr().err


def test_padding_and_series_classification():
    options = make_options(
        classify.TASK,
        model={"hidden_size": 32},
        data={
            "ts": str(SHARED_DATA / "seqclass/BasicMotions_TRAIN.ts"),
            "test_ts": str(SHARED_DATA / "seqclass/BasicMotions_TEST.ts"),
            "val_fraction": 0.0,
            "batch_size": 8,
        },
        train={"max_steps": 150, "eval_every": 150, "lr": 5e-3},
    )
    raw = classify.TASK.read(options)
    assert raw.input == "series" and raw.train.inputs[0].shape == (100, 6) and len(raw.test.inputs) == 40
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        test = train(classify.TASK, options, Path(tmp) / "run", progress=False).test
    assert test["accuracy"] >= 0.75  # 4 classes: chance 0.25


def test_tagger_on_conll_chunking(tmp_path):
    options = make_options(
        tag.TASK,
        model={"hidden_size": 48, "embedding_dim": 32},
        data={"conll": str(SHARED_DATA / "framelabel/conll2000.zip")},
        train={"max_steps": 150, "eval_every": 75, "lr": 5e-3},
    )
    trained = train(tag.TASK, options, tmp_path / "run", progress=False)
    run, test = trained.run, trained.test
    assert "B-NP" in run.learned.tags and test["chunk_f1"] > 0.6
    sentence = "He/PRP reckons/VBZ the/DT current/JJ account/NN deficit/NN will/MD narrow/VB"
    assert [t for _, t in run.predict(sentence.split())][:3] == ["B-NP", "B-VP", "B-NP"]
    with pytest.raises(DataError, match="1 extra column"):
        run.predict(["He", "reckons"])


def test_hapt_frames_and_unlabelled_frames(tmp_path):
    from rnnlab.data.hapt import read_hapt
    from rnnlab.data.tokens import IGNORE

    recordings, names = read_hapt(SHARED_DATA / "framelabel/hapt_raw")
    assert len(recordings) == 8 and names[0] == "WALKING" and len(names) == 12
    labels = np.concatenate([r.labels for r in recordings])
    assert 0.2 < (labels == IGNORE).mean() < 0.35  # ~28% unlabelled
    options = make_options(
        tag.TASK,
        model={"hidden_size": 32},
        data={"hapt": str(SHARED_DATA / "framelabel/hapt_raw"), "window": 128},
        train={"max_steps": 40, "eval_every": 40, "lr": 5e-3},
    )
    test = train(tag.TASK, options, tmp_path / "run", progress=False).test
    assert 0 < test["accuracy"] <= 1 and "chunk_f1" not in test


def test_forecast_against_baselines(tmp_path):
    options = make_options(
        forecast.TASK,
        model={"hidden_size": 32},
        data={
            "csv": str(SHARED_DATA / "timeseries/airline_passengers.csv"),
            "horizon": 3,
            "window": 24,
            "season": 12,
            "log": True,
        },
        train={"max_steps": 150, "eval_every": 50, "lr": 5e-3},
    )
    report = train(forecast.TASK, options, tmp_path / "run", progress=False).test
    assert set(report.table) == {"model", "naive", "seasonal naive"}
    assert report.actual.shape == report.forecasts["model"].shape == (len(report.origins), 3)
    # the baselines are what they say: naive repeats the last value, seasonal naive the one a season back
    y = options.data.prepare().values[:, 0]
    t = report.origins[0]
    assert report.forecasts["naive"][0, 2] == y[t] and report.forecasts["seasonal naive"][0, 0] == y[t + 1 - 12]
    assert np.isfinite(report.table["model"]["MASE"])
    from rnnlab.viz.forecast import plot_forecasts

    plot_forecasts(report, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000
    [(column, values)] = load(tmp_path / "run").predict([])
    assert column == "passengers" and len(values) == 3


def test_forecast_bad_series(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("t,v\n" + "\n".join(f"{i},{i * 1.5}" for i in range(20)) + "\n")
    with pytest.raises(DataError, match="too few"):
        forecast.SeriesData(csv=str(csv), window=24).prepare()
    csv.write_text("t,v\n1,2.0\n2,oops\n3,4\n")
    with pytest.raises(DataError, match="row 3 is 'oops', not a number"):
        forecast.SeriesData(csv=str(csv), window=2).prepare()
    csv.write_text("t,v\n1,2.0\n2,\n3,4\n")
    with pytest.raises(DataError, match="not a number"):
        forecast.SeriesData(csv=str(csv), window=2).prepare()
    with pytest.raises(DataError, match="no value column 'price'"):
        forecast.SeriesData(csv=str(SHARED_DATA / "timeseries/msft_daily.csv"), target="price").prepare()


def test_checkpoint_of_another_task_is_refused(tmp_path, capsys):
    out = tmp_path / "f"
    argv = [
        "train",
        "forecast",
        "--csv",
        str(SHARED_DATA / "timeseries/airline_passengers.csv"),
        "--max-steps",
        "5",
        "--out",
        str(out),
        "--quiet",
        "--season",
        "12",
    ]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["sample", str(out)]) == 2
    assert "holds a 'forecaster' model, expected a 'charlm' model" in capsys.readouterr().err
    scores = json.loads((out / "test_scores.json").read_text())
    assert set(scores) == {"model", "naive", "seasonal naive"}


def test_word2vec_initialises_the_embedding_table():
    import torch

    from rnnlab.data.words import WordVocab, tokenize

    texts = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"] * 50
    vocab = WordVocab.build((tokenize(t) for t in texts), min_count=2)
    table = torch.nn.Embedding(len(vocab), 16, padding_idx=0)
    before = table.weight.detach().clone()
    vectors = train_word_vectors(texts, 16, min_count=2, seed=0)
    hits = set_word_vectors(table, vocab.words, vectors)
    assert hits == len(vocab) - 2  # every word but <pad> and <unk>
    assert torch.equal(table.weight[:2], before[:2]) and not torch.equal(table.weight[2:], before[2:])
    cat = vocab.encode(["cat"])[0]
    direction = torch.from_numpy(vectors["cat"] / np.linalg.norm(vectors["cat"]))
    assert torch.allclose(table.weight[cat] / table.weight[cat].norm(), direction)  # the vector, rescaled


def test_vocabulary_takes_pretrained_words_after_the_training_words():
    from rnnlab.data.words import WordVocab

    texts = [["good", "film", "good"], ["bad", "film", "film"]]
    vocab = WordVocab.build(texts, min_count=1, extra=["superb", "good", "dire"])
    assert vocab.words == ("<pad>", "<unk>", "film", "good", "bad", "superb", "dire")
    assert WordVocab.build([["good", "good"]], max_size=4, min_count=1, extra=["superb", "dire"]).words[-1] == "superb"


def test_bad_embedding_corpus(tmp_path):
    empty, binary = tmp_path / "empty.txt", tmp_path / "binary.txt"
    empty.write_text("\n  \n")
    binary.write_bytes(b"\xff\xfe\x00 not text")
    from rnnlab.data.word2vec import corpus_texts

    with pytest.raises(DataError, match="holds no text"):
        corpus_texts(str(empty))
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        corpus_texts(str(binary))
    assert corpus_texts(None) == []


def test_embedding_corpus_words_join_the_vocabulary(sst_csv, tmp_path, capsys):
    """A word only the embedding corpus has (here "zorbulous") gets an id and a word2vec vector; the
    vocabulary is saved with the run and a resumed run keeps it."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["a zorbulous film , truly zorbulous", "the acting was zorbulous and moving"] * 20))
    argv = ["train", "classify", "--csv", str(sst_csv / "train.csv"), "--hidden", "8", "--embedding", "8"]
    argv += ["--max-steps", "2", "--eval-every", "2", "--quiet", "--out", str(tmp_path / "run")]
    assert main([*argv, "--embedding-corpus", str(corpus)]) == 2
    assert "add --pretrain-embeddings" in capsys.readouterr().err
    assert main([*argv, "--pretrain-embeddings", "--embedding-corpus", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt: no such file (the embedding corpus)" in capsys.readouterr().err
    assert main([*argv, "--pretrain-embeddings", "--embedding-corpus", str(corpus)]) == 0
    run = load(tmp_path / "run")
    words = run.learned.encoder.vocab.words
    assert "zorbulous" in words and words.index("zorbulous") > words.index("film")  # after the training words
    assert run.learned.encoder.encode("zorbulous")[0] > 1  # not <unk>
    assert main(["train", "classify", "--resume", "--max-steps", "4", "--quiet", "--out", str(tmp_path / "run")]) == 0
    assert load(tmp_path / "run").learned.encoder.vocab.words == words


@pytest.fixture(scope="module")
def nsmc_slice(tmp_path_factory):
    """The first 8,000 training and 1,000 test reviews of the Korean set, as plain ratings_*.txt files."""
    import gzip

    folder = tmp_path_factory.mktemp("nsmc")
    for split, rows in (("train", 8000), ("test", 1000)):
        lines = gzip.decompress((SHARED_DATA / f"sentiment/nsmc/ratings_{split}.txt.gz").read_bytes()).decode()
        (folder / f"ratings_{split}.txt").write_text("\n".join(lines.splitlines()[: rows + 1]) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("tokens", ["subwords", "chars"])
def test_korean_reviews_learn_and_predict(nsmc_slice, tokens, tmp_path, capsys):
    """Korean movie reviews cut into learned subword units or characters: well above chance (50%) on
    1,000 held-out reviews after 300 small steps (measured: subwords 69.4%, chars 72.0%), saved and
    reloaded with the subword model, and Korean sentences predicted from the command line."""
    options = make_options(
        classify.TASK,
        model={"hidden_size": 64, "embedding_dim": 64},
        data={"nsmc": str(nsmc_slice), "tokens": tokens, "subwords": 2000, "batch_size": 32},
        train={"max_steps": 300, "eval_every": 100, "lr": 3e-3},
    )
    trained = train(classify.TASK, options, tmp_path / "run", progress=False)
    assert trained.test["accuracy"] > 0.64, trained.test
    if tokens == "subwords":
        assert (tmp_path / "run" / "subwords.spm").is_file()
    run = load(tmp_path / "run")
    good, bad = "정말 재미있고 감동적인 최고의 영화", "최악이다 시간 아깝고 지루한 쓰레기 영화"
    predictions = run.predict([good, bad])  # (text, label, class probabilities)
    assert [label for _, label, _ in predictions] == ["1", "0"], predictions
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), good, bad]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["1", "0"] and lines[0].endswith(good)


def test_korean_reviews_bad_input(nsmc_slice, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "ratings_train.txt").write_text("document,label\n영화,1\n", encoding="utf-8")
    (broken / "ratings_test.txt").write_text("id\tdocument\tlabel\n1\t영화\t1\n", encoding="utf-8")
    assert main(["train", "classify", "--nsmc", str(broken), "--max-steps", "1", "--out", str(tmp_path / "r")]) == 2
    assert "expected the header id<TAB>document<TAB>label" in capsys.readouterr().err
    assert main(["train", "classify", "--nsmc", str(tmp_path), "--max-steps", "1", "--out", str(tmp_path / "r")]) == 2
    assert "ratings_train.txt" in capsys.readouterr().err
    flags = ["train", "classify", "--nsmc", str(nsmc_slice), "--tokens", "chars", "--pretrain-embeddings"]
    assert main([*flags, "--max-steps", "1", "--out", str(tmp_path / "r")]) == 2
    assert "--pretrain-embeddings needs --tokens words" in capsys.readouterr().err
