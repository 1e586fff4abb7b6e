"""Model artifacts: written so that a reader sees the old file or the whole new one, never a
part (a temporary file in the same folder, fsync, rename, fsync of the folder), and read
only when they hash to the sha256 the registry recorded."""

import hashlib
import io
import os
import tempfile
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A checkpoint that must not be used: wrong digest, format or feature schema."""


def write_atomically(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically; return its sha256 (hex)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return hashlib.sha256(data).hexdigest()


def read_verified(path: str | Path, *, sha256: str, checkpoint_format: str) -> dict:
    """The payload saved at ``path``; CheckpointError unless the file hashes to ``sha256``
    and holds a checkpoint of ``checkpoint_format``."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise CheckpointError(f"sha256 mismatch: expected {sha256}, file has {digest}")
    payload = torch.load(io.BytesIO(data), weights_only=True)
    if payload.get("format") != checkpoint_format:
        raise CheckpointError(f"unknown checkpoint format {payload.get('format')!r}")
    return payload


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
