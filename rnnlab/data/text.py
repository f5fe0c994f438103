"""Reading user text files, and the corpus that ships inside the package.

Text is decoded as UTF-8 (a leading byte-order mark is dropped), line endings become ``\\n``, and
the result is put in Unicode normal form NFC, so that the same visible text is always the same
sequence of code points (Korean typed on macOS arrives decomposed into jamo; NFC recomposes it into
Hangul syllables).
"""

from __future__ import annotations

import hashlib
import os
import stat
import unicodedata
from importlib import resources
from pathlib import Path

from rnnlab.errors import DataError

BUNDLED_CORPUS = "tinyshakespeare.txt"


def decode_text(data: bytes, name: str) -> str:
    """Validate and decode the bytes of a text file; ``name`` is used in error messages."""
    if not data:
        raise DataError(f"{name}: the file is empty")
    if b"\x00" in data[: 1 << 16]:
        raise DataError(f"{name}: looks like a binary file (it contains NUL bytes); expected UTF-8 text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{name}: not valid UTF-8 (byte {e.start} is {data[e.start : e.start + 1]!r}); "
            "convert it first, e.g. iconv -f latin1 -t utf-8"
        ) from None
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    if not text.strip():
        raise DataError(f"{name}: holds only whitespace")
    return text


def max_file_bytes() -> int:
    """The largest data file rnnlab reads (``RNNLAB_MAX_FILE_BYTES``, default 4 GiB)."""
    value = os.environ.get("RNNLAB_MAX_FILE_BYTES", "")
    return int(value) if value.isdigit() else 4 << 30


def check_regular_file(path: str | Path) -> Path:
    """``path`` if it names a readable regular file (not a folder, a device or a pipe)."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{path}: is a directory; expected a file")
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: not a regular file (a device, pipe or socket); expected a file")
    if st.st_size > max_file_bytes():
        raise DataError(
            f"{path}: {st.st_size:,} bytes, more than rnnlab reads ({max_file_bytes():,}); "
            "set RNNLAB_MAX_FILE_BYTES to allow it"
        )
    return p


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a regular file of bounded size, with one clear ``DataError`` otherwise."""
    p = check_regular_file(path)
    try:
        return p.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file, with one clear ``DataError`` for anything that is not one."""
    return decode_text(read_bytes(path), str(path))


def bundled_corpus() -> str:
    """Tiny Shakespeare (1,115,394 characters, public domain), as shipped inside rnnlab."""
    data = resources.files("rnnlab.data").joinpath("corpora", BUNDLED_CORPUS).read_bytes()
    return decode_text(data, BUNDLED_CORPUS)


def text_digest(text: str) -> str:
    """sha256 of the text's UTF-8 bytes: recorded with a run to notice a changed corpus on resume."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
