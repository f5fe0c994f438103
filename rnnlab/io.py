"""Files on disk: written whole or not at all.

``atomic_write(path, data)`` leaves ``path`` holding either its old bytes or the new ones, never a
part: the bytes go to a temporary file in the same folder, are flushed to the disk (fsync), and
the file is renamed over ``path``; the folder is then synced too, so that the rename itself
survives a power cut. Temporary files are named ``.NAME.*.tmp``; ``remove_stale_temporaries``
clears the ones a killed process left behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0o022)
os.umask(_UMASK)
TEMPORARY_SUFFIX = ".tmp"


def fsync_folder(folder: Path) -> None:
    """Make the renames and removals done in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: bytes, *, sync_folder: bool = True) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either the old or the new bytes, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; give it the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync_folder:
        fsync_folder(path.parent)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files that an interrupted ``atomic_write`` left in ``folder``."""
    removed = []
    for p in Path(folder).glob(f".*{TEMPORARY_SUFFIX}"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
