# Two commands on a fresh machine:
#   make demo   installs what is missing, starts a local Kafka broker, runs the pipeline end to end
#   make test   installs everything (Python packages, Kafka jars, Prometheus) and runs the test suite
PYTHON ?= python3
PIP := $(PYTHON) -m pip
STAMP := .pepnet/stamps

.PHONY: demo test test-fast install install-dev system-packages kafka-jars lint bench clean

demo: install kafka-jars
	$(PYTHON) -m stream.cli.main demo

test: install-dev system-packages kafka-jars
	$(PYTHON) -m pytest -ra

test-fast: install-dev
	$(PYTHON) -m pytest -ra -m "not kafka and not prometheus"

install: $(STAMP)/install
$(STAMP)/install: pyproject.toml
	$(PIP) install --disable-pip-version-check -q -e .
	@mkdir -p $(STAMP) && touch $@

install-dev: $(STAMP)/install-dev
$(STAMP)/install-dev: pyproject.toml
	$(PIP) install --disable-pip-version-check -q -e ".[dev]"
	@mkdir -p $(STAMP) && touch $@ $(STAMP)/install

# promtool/prometheus for the monitoring tests, docker-compose to validate docker-compose.yml.
system-packages:
	@if ! command -v promtool >/dev/null || ! command -v docker-compose >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q prometheus docker-compose; \
	fi

kafka-jars: install
	$(PYTHON) -m stream.cli.main kafka fetch

lint:
	$(PYTHON) -m ruff check .

bench:
	$(PYTHON) -m benchmarks.embedding_store
	$(PYTHON) -m benchmarks.model_throughput
	$(PYTHON) -m benchmarks.joiner
	$(PYTHON) -m benchmarks.trainer

clean:
	-$(PYTHON) -m stream.cli.main kafka down
	rm -rf .pepnet runs
