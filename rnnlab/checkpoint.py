"""Checkpoints: a folder of safetensors and JSON, never pickle.

    RUN/
      model.safetensors     the weights at the last step (torch.nn names: a Recurrent's weight_ih_l0 ...)
      best.safetensors      the weights at the best evaluation (what eval, predict and sample use)
      config.json           format_version, kind (which task/model), the configs needed to rebuild
                            the model and go on training, the vocabulary, and the sha256 of each file
      trainer.safetensors   optimiser moments, RNG state, the carried hidden state; its header's
                            metadata holds the step, elapsed time and optimiser hyperparameters
      metrics.csv           one row per training step

Every file is written to a temporary name, flushed to disk, and renamed over the old one, so a
file is never half-written. config.json goes last and records the hash of the others: if a save is
ever cut off between two renames, loading notices the mismatch instead of mixing two saves.
Loading reads only JSON and safetensors, so a crafted checkpoint cannot run code.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from rnnlab.errors import CheckpointError

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
BEST_FILE = "best.safetensors"
TRAINER_FILE = "trainer.safetensors"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either the old or the new bytes, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def save(
    run_dir: Path,
    *,
    kind: str,
    config: dict,
    model_state: dict[str, Tensor],
    best_state: dict[str, Tensor] | None = None,
    trainer_state: dict[str, Tensor] | None = None,
    trainer_meta: dict | None = None,
    metrics: list[dict] | None = None,
    attachments: dict[str, bytes] | None = None,
) -> None:
    """Save a checkpoint into ``run_dir`` (created if needed); see the module docstring.

    ``attachments`` are further files the model needs (a tokenizer model...), hashed like the others."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    blobs = {MODEL_FILE: tensors_to_bytes(model_state)}
    if best_state is not None:
        blobs[BEST_FILE] = tensors_to_bytes(best_state)
    if trainer_state is not None:
        blobs[TRAINER_FILE] = tensors_to_bytes(trainer_state, {"meta": json.dumps(trainer_meta or {})})
    if metrics is not None:
        blobs[METRICS_FILE] = metrics_to_csv(metrics)
    blobs.update(attachments or {})
    for name, data in blobs.items():
        atomic_write(run_dir / name, data)
    document = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        **config,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in blobs.items()},
    }
    atomic_write(run_dir / CONFIG_FILE, json.dumps(document, indent=2, ensure_ascii=False).encode())


@dataclass
class Checkpoint:
    path: Path
    config: dict  # config.json as saved

    def read(self, name: str) -> bytes:
        """A file of the checkpoint, checked against the hash that config.json recorded."""
        path = self.path / name
        expected = self.config.get("files", {}).get(name)
        if expected is None or not path.is_file():
            raise CheckpointError(f"{self.path}: checkpoint has no {name}")
        data = path.read_bytes()
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
        return self.tensors(BEST_FILE if BEST_FILE in self.config.get("files", {}) else MODEL_FILE)[0]

    def trainer_state(self) -> tuple[dict[str, Tensor], dict]:
        tensors, metadata = self.tensors(TRAINER_FILE)
        return tensors, json.loads(metadata.get("meta", "{}"))

    def metrics(self) -> list[dict]:
        if METRICS_FILE not in self.config.get("files", {}):
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
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{path / CONFIG_FILE}: corrupt (not valid JSON)") from None
    if not isinstance(config, dict) or "format_version" not in config or "kind" not in config:
        raise CheckpointError(f"{run_dir}: not an rnnlab checkpoint ({CONFIG_FILE} has no format_version)")
    if not isinstance(config["format_version"], int) or config["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{run_dir}: checkpoint format {config['format_version']!r} is newer than this rnnlab "
            f"understands ({FORMAT_VERSION}); upgrade rnnlab"
        )
    if kind is not None and config["kind"] != kind:
        raise CheckpointError(f"{run_dir}: holds a {config['kind']!r} model, expected a {kind!r} model")
    return Checkpoint(path, config)


def load_module_state(module: torch.nn.Module, state: dict[str, Tensor], where: Path) -> None:
    """``module.load_state_dict(state)`` with a ``CheckpointError`` when names or shapes disagree."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[:3]
        raise CheckpointError(f"{where}: weights do not fit the model in config.json: {' '.join(first)}") from None
