"""The bundled embedding model: found without importing its package, extracted once, never half-written."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from backends import bundled_embedding
from backends.bundled_embedding import (
    bundled_embedding_path,
    default_embedding_dir,
    embedding_zip,
    prepare_bundled_embedding,
)
from backends.model_cache import READY_MARKER, BundledModelError


def test_the_zip_is_found_without_importing_the_package() -> None:
    path = embedding_zip()
    assert path.name == "model.zip" and path.stat().st_size > 50_000_000
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    # the sentence-transformers checkpoint vLLM's pooling runner reads (mean pooling, normalised)
    assert {"model.safetensors", "config.json", "tokenizer.json", "modules.json", "1_Pooling/config.json"} <= names


def test_the_default_directory_follows_maas_home() -> None:
    assert default_embedding_dir({"MAAS_HOME": "/srv/maas"}) == Path("/srv/maas/models/all-minilm-l6-v2")


def test_extraction_marks_the_directory_ready_last_and_is_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "minilm"
    assert bundled_embedding_path(target) is None
    stages: list[str] = []
    assert prepare_bundled_embedding(target, progress=lambda stage, _: stages.append(stage)) == target
    assert bundled_embedding_path(target) == target
    assert json.loads((target / READY_MARKER).read_text())["embedding_format_version"] == 1
    assert (target / "model.safetensors").stat().st_size > 50_000_000
    # a second call finds it ready and extracts nothing
    stages.clear()
    prepare_bundled_embedding(target, progress=lambda stage, _: stages.append(stage))
    assert stages == ["embedding model ready"]


def test_a_zip_member_pointing_outside_is_refused_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../escaped.txt", "x")
    monkeypatch.setattr(bundled_embedding, "embedding_zip", lambda: evil)
    target = tmp_path / "models" / "minilm"
    with pytest.raises(BundledModelError, match="outside"):
        prepare_bundled_embedding(target)
    assert not (tmp_path / "models" / "escaped.txt").exists() and bundled_embedding_path(target) is None
    assert [p.name for p in target.parent.iterdir() if not p.name.startswith(".minilm.lock")] == []
