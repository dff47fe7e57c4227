# One image for the pipeline's processes (`pepnet worker`, `pepnet train`, `pepnet simulate`,
# `pepnet topics create`...). The broker is not in it: docker-compose.yml runs the official
# apache/kafka image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so that a code change does not reinstall torch. torch comes from PyTorch's
# CPU-only wheel index: PyPI's default Linux build bundles the CUDA libraries (several GB) that a
# CPU trainer never loads.
COPY pyproject.toml ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.2" \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
       > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# A regular (not editable) install: the default config, the KuaiRand-Pure population and the
# broker files are package data inside the installed wheel.
COPY README.md ./
COPY stream ./stream
COPY pepnet ./pepnet
COPY embedding_store ./embedding_store
COPY monitoring ./monitoring
RUN pip install --no-deps . \
    && rm -rf build *.egg-info stream pepnet embedding_store monitoring

RUN useradd --create-home --uid 10001 pepnet && mkdir -p /app/runs && chown pepnet /app/runs
USER pepnet

# Containers are reached by Prometheus over the compose network, not on loopback.
ENV PEPNET_MONITORING_HOST=0.0.0.0
ENTRYPOINT ["pepnet"]
CMD ["--help"]
