# One image for the pipeline's processes (`pepnet worker`, `pepnet train`, `pepnet topics create`...).
# The broker is not in it: docker-compose.yml runs the official apache/kafka image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so that a code change does not reinstall torch.
COPY pyproject.toml README.md ./
RUN mkdir -p stream pepnet embedding_store monitoring \
    && touch stream/__init__.py pepnet/__init__.py embedding_store/__init__.py monitoring/__init__.py \
    && pip install -e . \
    && rm -rf stream pepnet embedding_store monitoring

# Editable install: config/default.yaml and data/ are found next to the packages.
COPY config ./config
COPY data ./data
COPY stream ./stream
COPY pepnet ./pepnet
COPY embedding_store ./embedding_store
COPY monitoring ./monitoring

RUN useradd --create-home --uid 10001 pepnet && mkdir -p /app/runs && chown pepnet /app/runs
USER pepnet

# Containers are reached by Prometheus over the compose network, not on loopback.
ENV PEPNET_MONITORING_HOST=0.0.0.0
ENTRYPOINT ["pepnet"]
CMD ["--help"]
