"""Files on disk: written whole or not at all, and one writer per run folder.

``atomic_write(path, data)`` leaves ``path`` holding either its old bytes or the new ones, never a
part: the bytes go to a temporary file in the same folder, are flushed to the disk (fsync), and
the file is renamed over ``path``; the folder is then synced too, so that the rename itself
survives a power cut. Temporary files are named ``.NAME.*.tmp``; ``remove_stale_temporaries``
clears the ones a killed process left behind.

``RunLock(folder)`` holds an exclusive lock on ``folder/.lock`` while a run trains: a second
process that tries to train into the same folder is refused at once. The operating system drops
the lock when its process dies, however it dies, so a stale lock is simply taken over.

``crash_point()`` marks the moments of a save where a crash matters; setting the environment
variable RNNLAB_CRASH_AT=N makes the process kill itself (SIGKILL, no clean-up) at the Nth one. The
fault-injection tests use it to stop a real save at every point and check what is left.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

from rnnlab.errors import ConfigError

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
            f.write(data[: len(data) // 2])
            crash_point()  # half a temporary file on disk
            f.write(data[len(data) // 2 :])
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; give it the usual permissions
        crash_point()  # the whole temporary file, not yet renamed
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    crash_point()  # renamed
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


_crashes = {"seen": 0}


def crash_point() -> None:
    """Kill this process here if RNNLAB_CRASH_AT says so (fault-injection tests only; see the docstring)."""
    at = os.environ.get("RNNLAB_CRASH_AT")
    if not at:
        return
    _crashes["seen"] += 1
    if _crashes["seen"] == int(at):
        os.kill(os.getpid(), signal.SIGKILL)


class RunLock:
    """An exclusive lock on a run folder while it trains (created if need be); see the docstring."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.file = None
        self.created = False  # the folder did not exist: if nothing gets saved, it goes again

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # no advisory locks on this platform: one writer is up to the user
            return self
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(f"{self.folder}: is a file; the run folder must be a folder")
        try:
            self.created = not self.folder.exists()
            self.folder.mkdir(parents=True, exist_ok=True)
            self.file = open(self.folder / ".lock", "a+")  # noqa: SIM115 (held until __exit__)
        except OSError as e:
            raise ConfigError(f"{self.folder}: cannot write the run folder there ({e.strerror})") from None
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            self.file = None
            raise ConfigError(
                f"{self.folder} is being trained by {holder}; wait for it to finish or choose another --out"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"process {os.getpid()}")
        self.file.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self.file is None:
            return
        self.file.close()  # closing releases the lock
        self.file = None
        if self.created and [p.name for p in self.folder.iterdir()] == [".lock"]:
            (self.folder / ".lock").unlink(missing_ok=True)  # refused before anything was saved: leave no trace
            self.folder.rmdir()
