"""Checkpoints: a folder of safetensors and JSON, never pickle, consistent whatever happens during a save.

    RUN/
      config.json            the manifest: format_version, kind, the run's options, the model config,
                             what was learned from the data (vocabulary, encoders...), progress, and
                             ``files``: the sha256 of every file below
      model.safetensors      the weights at the last step (torch.nn names)
      best.safetensors       the weights at the best evaluation (what eval, predict and sample use)
      trainer.safetensors    optimiser moments, RNG state, the carried hidden state; its header's
                             metadata holds the step, elapsed time and optimiser hyperparameters
      metrics.csv            one row per training step
      .versions/             the same files under names that hold their own hash: model.<sha>.safetensors...

Crash consistency (format 2). A save writes each file into ``.versions/`` under a name that holds
the start of its sha256 (to a temporary name, flushed, renamed); only then is config.json replaced,
the single commit point; only after that do the plain names move to the new files (hard links: no
copy) and are the previous checkpoint's files removed. A kill, power cut or full disk at any moment
leaves config.json naming either the previous complete checkpoint or the new one, with all of its
files present. Loading reads ``.versions/``, or the plain name if its hash is right (a folder copied
without its hidden files), and checks every hash, so damage is reported, never half-read. A save
that fails says so and leaves the previous checkpoint as it was.

Format 1 (rnnlab before the task protocol) stored the files under their plain names; such folders
still load, and the first save of a resumed run turns them into format 2.
Loading reads only JSON and safetensors, so a crafted checkpoint cannot run code.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from rnnlab.errors import CheckpointError
from rnnlab.io import atomic_write, crash_point, fsync_folder, remove_stale_temporaries

FORMAT_VERSION = 2
VERSIONS = ".versions"
MODEL_FILE = "model.safetensors"
BEST_FILE = "best.safetensors"
TRAINER_FILE = "trainer.safetensors"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
_STORED = re.compile(r"^(?P<stem>[\w-]+)\.(?P<digest>[0-9a-f]{16})(?P<suffix>\.\w+)$")


def stored_name(name: str, digest: str) -> str:
    """Format 2's name in .versions/ for the file ``name`` with this sha256: model.<16 hex>.safetensors."""
    stem, dot, suffix = name.partition(".")
    return f"{stem}.{digest[:16]}{dot}{suffix}"


def tensors_to_bytes(tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> bytes:
    return st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)


def metrics_to_csv(rows: list[dict]) -> bytes:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def finite_json(value):
    """``value`` with every NaN or infinity replaced by None: config.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def save(run_dir: Path, *, kind: str, config: dict, files: dict[str, bytes]) -> None:
    """Save a checkpoint into ``run_dir`` (created if needed): ``files`` maps each plain name
    (model.safetensors, a tokenizer model...) to its bytes; ``config`` goes into config.json."""
    run_dir = Path(run_dir)
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    document = {"format_version": FORMAT_VERSION, "kind": kind, **finite_json(config), "files": digests}
    manifest = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False).encode()
    versions = run_dir / VERSIONS
    try:
        versions.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            path = versions / stored_name(name, digests[name])
            if not (path.is_file() and path.stat().st_size == len(data)):  # unchanged files are kept
                atomic_write(path, data, sync_folder=False)
        fsync_folder(versions)
        crash_point()  # every new file in place, config.json still the old one
        atomic_write(run_dir / CONFIG_FILE, manifest)  # the commit point
    except OSError as e:
        raise CheckpointError(
            f"{run_dir}: could not save the checkpoint ({e.strerror or e}); the previous checkpoint is intact"
        ) from None
    try:
        _link_plain_names(run_dir, digests)
        remove_unreferenced(run_dir, digests)
    except OSError:
        pass  # the checkpoint is saved; tidying up happens again at the next save


def _link_plain_names(run_dir: Path, digests: dict[str, str]) -> None:
    """Give every stored file its plain name too (a hard link: no copy), for people and other tools."""
    for name, digest in digests.items():
        target, plain = run_dir / VERSIONS / stored_name(name, digest), run_dir / name
        if not target.is_file() or (plain.exists() and os.path.samefile(target, plain)):
            continue  # (a folder copied without .versions/ keeps its plain files)
        tmp = run_dir / f".{name}.link.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(target, tmp)
        except OSError:  # no hard links on this file system: no plain name rather than a stale one
            plain.unlink(missing_ok=True)
            continue
        crash_point()
        os.replace(tmp, plain)


def remove_unreferenced(run_dir: Path, digests: dict[str, str]) -> None:
    """Remove the stored files of earlier checkpoints, and temporaries a killed save left behind."""
    keep = {stored_name(name, digest) for name, digest in digests.items()}
    versions = Path(run_dir) / VERSIONS
    for p in versions.iterdir() if versions.is_dir() else ():
        if _STORED.match(p.name) and p.name not in keep and p.is_file():
            crash_point()
            p.unlink(missing_ok=True)
    remove_stale_temporaries(versions)
    remove_stale_temporaries(run_dir)


def tidy(run_dir: Path) -> None:
    """Clear what a killed save left in a run folder: temporaries, and stored files that no
    committed config.json names (called with the run's lock held, before training goes on)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    digests = {}
    if is_checkpoint(run_dir):
        try:
            digests = load(run_dir).files
        except CheckpointError:
            return  # a damaged folder is left as it is, for the user to look at
    digests = {k: v for k, v in digests.items() if isinstance(v, str)}
    try:
        if digests and load(run_dir).config.get("format_version") == FORMAT_VERSION:
            _link_plain_names(run_dir, digests)  # a kill may have come between the commit and the links
        remove_unreferenced(run_dir, digests)
    except OSError:
        pass  # tidying is a courtesy; loading checks every file anyway


@dataclass
class Checkpoint:
    path: Path
    config: dict  # config.json as saved

    @property
    def files(self) -> dict:
        files = self.config.get("files", {})
        return files if isinstance(files, dict) else {}

    def read(self, name: str) -> bytes:
        """A file of the checkpoint, checked against the hash that config.json recorded."""
        expected = self.files.get(name)
        if not isinstance(expected, str):
            raise CheckpointError(f"{self.path}: checkpoint has no {name}")
        plain = self.path / name
        stored = self.path / VERSIONS / stored_name(name, expected)
        path = stored if self.config.get("format_version", 1) > 1 and stored.is_file() else plain
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CheckpointError(f"{plain}: missing (config.json names it; the run folder was damaged)") from None
        except OSError as e:
            raise CheckpointError(f"{path}: cannot be read ({e.strerror})") from None
        if hashlib.sha256(data).hexdigest() != expected:
            raise CheckpointError(f"{path}: does not match config.json (truncated, modified, or a save was cut off)")
        return data

    def tensors(self, name: str) -> tuple[dict[str, Tensor], dict[str, str]]:
        data = self.read(name)
        try:
            tensors = st_load(data)
            header_len = int.from_bytes(data[:8], "little")
            metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__", {}) or {}
        except (SafetensorError, ValueError) as e:
            raise CheckpointError(f"{self.path / name}: not a readable safetensors file ({e})") from None
        return tensors, metadata

    def model_state(self) -> dict[str, Tensor]:
        """The weights at the last step."""
        return self.tensors(MODEL_FILE)[0]

    def best_state(self) -> dict[str, Tensor]:
        """The weights at the best evaluation, or the last ones if there was no evaluation."""
        return self.tensors(BEST_FILE if BEST_FILE in self.files else MODEL_FILE)[0]

    def trainer_state(self) -> tuple[dict[str, Tensor], dict]:
        tensors, metadata = self.tensors(TRAINER_FILE)
        try:
            return tensors, json.loads(metadata.get("meta", "{}"))
        except ValueError:
            raise CheckpointError(f"{self.path / TRAINER_FILE}: its metadata is not valid JSON") from None

    def metrics(self) -> list[dict]:
        if METRICS_FILE not in self.files:
            return []
        text = self.read(METRICS_FILE).decode()
        return [{k: _number(v) for k, v in row.items() if v != ""} for row in csv.DictReader(io.StringIO(text))]


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def is_checkpoint(run_dir: Path) -> bool:
    return (Path(run_dir) / CONFIG_FILE).is_file()


def load(run_dir: str | Path, kind: str | None = None) -> Checkpoint:
    """Open a checkpoint folder, with one clear ``CheckpointError`` for anything wrong with it."""
    path = Path(run_dir)
    if not path.exists():
        raise CheckpointError(f"{run_dir}: no such checkpoint folder")
    if not path.is_dir():
        raise CheckpointError(f"{run_dir}: expected a checkpoint folder (holding {CONFIG_FILE}), got a file")
    if not (path / CONFIG_FILE).is_file():
        raise CheckpointError(f"{run_dir}: not an rnnlab checkpoint (no {CONFIG_FILE})")
    try:
        config = json.loads((path / CONFIG_FILE).read_bytes())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"{path / CONFIG_FILE}: corrupt (not valid JSON)") from None
    except OSError as e:
        raise CheckpointError(f"{path / CONFIG_FILE}: cannot be read ({e.strerror})") from None
    if not isinstance(config, dict) or "format_version" not in config or "kind" not in config:
        raise CheckpointError(f"{run_dir}: not an rnnlab checkpoint ({CONFIG_FILE} has no format_version)")
    version = config["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{run_dir}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{run_dir}: checkpoint format {version} is newer than this rnnlab reads ({FORMAT_VERSION}); upgrade rnnlab"
        )
    if not isinstance(config["kind"], str):
        raise CheckpointError(f"{run_dir}: kind must be a string, got {config['kind']!r}")
    if kind is not None and config["kind"] != kind:
        raise CheckpointError(f"{run_dir}: holds a {config['kind']!r} model, expected a {kind!r} model")
    return Checkpoint(path, config)


def load_module_state(module: torch.nn.Module, state: dict[str, Tensor], where: Path) -> None:
    """``module.load_state_dict(state)`` with a ``CheckpointError`` when names or shapes disagree,
    or when a weight is not finite (a run that diverged is never used)."""
    bad = [name for name, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(f"{where}: the weights hold NaN or infinite values ({bad[0]}...); the run diverged")
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[:3]
        raise CheckpointError(f"{where}: weights do not fit the model in config.json: {' '.join(first)}") from None
