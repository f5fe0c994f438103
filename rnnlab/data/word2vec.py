"""Word vectors learned from unlabelled text (word2vec, gensim), to start a classifier's embeddings.

No validation or test text may be read here: the vectors and the words they add to the
vocabulary come from training and unlabelled texts only.
"""

from __future__ import annotations

from pathlib import Path

from rnnlab.data.sentiment import read_imdb
from rnnlab.data.text import read_bytes
from rnnlab.data.words import tokenize
from rnnlab.errors import DataError
from rnnlab.extras import require


def corpus_texts(path: str | None) -> list[str]:
    """Unlabelled texts for word2vec: an IMDB tarball gives its training and unlabelled reviews
    (never its test reviews); any other file, one text per non-empty line."""
    if path is None:
        return []
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file (the embedding corpus)")
    if p.name.endswith((".tar.gz", ".tgz", ".tar")):
        data = read_imdb(p)
        return data["train"][0] + data["unsup"][0]
    try:
        texts = [line for line in read_bytes(p).decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file (the embedding corpus: one text per line)") from None
    if not texts:
        raise DataError(f"{path}: holds no text (the embedding corpus: one text per line)")
    return texts


def train_word_vectors(texts: list[str], dim: int, min_count: int, seed: int):
    """word2vec (gensim: CBOW, window 5, 5 epochs) over ``texts``, which must not include any text
    that is scored. A word needs at least two sightings (and ``min_count``) for a vector.
    Returns gensim ``KeyedVectors``; ``index_to_key`` lists its words, most frequent first."""
    Word2Vec = require("gensim.models", "text").Word2Vec  # noqa: N806

    sentences = [tokenize(t) for t in texts]
    model = Word2Vec(sentences, vector_size=dim, window=5, min_count=max(2, min_count), workers=2, epochs=5, seed=seed)
    return model.wv
