# syntax=docker/dockerfile:1
# One image for every mode: `remote-ollama standalone` (default), `operator`, `proxy`, `sandbox`.
#   docker build -t remote-ollama .
#   docker run -p 11434:11434 -e EXOSCALE_API_KEY=... -e EXOSCALE_API_SECRET=... remote-ollama
# Both stages use the same pinned base, so the venv built in the first runs unchanged in the second.
# Pinned by digest: the multi-platform index of python:3.11.15-slim-bookworm as published in
# docker-library/repo-info (repos/python/remote/3.11.15-slim-bookworm.md, commit 3effc3eac4f6).
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY remote_ollama ./remote_ollama
# Into a self-contained venv that the final stage copies alone: exactly the packages
# requirements.lock lists, each file checked against its sha256 (all published as wheels: no
# compiler needed), then the project built by the locked setuptools; pip check fails the build if
# the lock misses a dependency.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
 && /opt/venv/bin/pip check

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="remote-ollama" \
      org.opencontainers.image.description="An Ollama endpoint backed by an Exoscale GPU VM that exists only while it is used" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REMOTE_OLLAMA_STATE_FILE=/data/state.json \
    REMOTE_OLLAMA_HOST=0.0.0.0
# A fixed non-root uid/gid (10001): Kubernetes' runAsUser in the chart matches it.
RUN groupadd --system --gid 10001 remote-ollama \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin remote-ollama \
 && install -d -o 10001 -g 10001 -m 0700 /data
COPY --from=builder /opt/venv /opt/venv
# Standalone mode keeps its instance id, key and CA here so a restarted container adopts its VM.
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 11434
# slim images have no curl: probe with the interpreter that is already there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:11434/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["remote-ollama"]
CMD ["standalone"]
