# vitrine: the two commands a fresh machine needs are `make demo` and `make test` (see README.md).
# Every target is idempotent: a warm machine re-runs them in seconds.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(PYTHON) -m uv
UV_VERSION := 0.13.8
# Kafka jars are resolved once per machine into a shared cache, not per clone.
VITRINE_CACHE ?= $(HOME)/.cache/vitrine
KAFKA_LIB := $(VITRINE_CACHE)/kafka/lib
KAFKA_POM := deploy/kafka/pom.xml
KAFKA_TOOLS := $(VITRINE_CACHE)/kafka/tools
KAFKA_TOOLS_POM := deploy/kafka/tools/pom.xml

.PHONY: setup venv proto protoset kafka-jars kafka-tools prometheus go-tools ghz demo test test-fast lint format reliability bench clean

## setup: Python environment (pinned, cached wheels), generated protos, Kafka jars
setup: venv proto kafka-jars

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --user "uv==$(UV_VERSION)"
	@[ -x $(PY) ] || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	@# grpcio-tools first: the editable install needs the generated vitrine.v1 package to exist.
	$(UV) pip install --quiet --python $(PY) "grpcio-tools==1.85.1" "protobuf==7.36.2"
	$(PY) protos/generate.py
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -e ".[train,dev]"
	@touch $@

venv: $(VENV)/.installed

proto: venv
	@$(PY) protos/generate.py >/dev/null

# Re-resolved only when the pom's content changed (not its mtime: every fresh clone has a new one),
# into a temporary folder first, so a broker starting meanwhile never sees a half-copied classpath.
kafka-jars:
	@if ! cmp -s $(KAFKA_POM) $(KAFKA_LIB)/.resolved 2>/dev/null; then \
		echo "resolving Apache Kafka jars from Maven Central into $(KAFKA_LIB)"; \
		rm -rf $(KAFKA_LIB).tmp && \
		mvn -q -B -f $(KAFKA_POM) dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(KAFKA_LIB).tmp && \
		cp $(KAFKA_POM) $(KAFKA_LIB).tmp/.resolved && \
		rm -rf $(KAFKA_LIB) && mv $(KAFKA_LIB).tmp $(KAFKA_LIB); \
	fi

## kafka-tools: Kafka's own perf tools (ProducerPerformance), the benchmarks' peer figures; not needed by tests
kafka-tools: kafka-jars
	@if ! cmp -s $(KAFKA_TOOLS_POM) $(KAFKA_TOOLS)/.resolved 2>/dev/null; then \
		echo "resolving kafka-tools from Maven Central into $(KAFKA_TOOLS)"; \
		rm -rf $(KAFKA_TOOLS).tmp && \
		mvn -q -B -f $(KAFKA_TOOLS_POM) dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(KAFKA_TOOLS).tmp && \
		cp $(KAFKA_TOOLS_POM) $(KAFKA_TOOLS).tmp/.resolved && \
		rm -rf $(KAFKA_TOOLS) && mv $(KAFKA_TOOLS).tmp $(KAFKA_TOOLS); \
	fi

## demo: local Kafka, a trained model, both services, a catalogue streaming in, recommendations printed
demo: setup
	VITRINE_KAFKA_LIB=$(KAFKA_LIB) $(VENV)/bin/vitrine demo

## prometheus: Debian's Prometheus server and promtool, which the integration tests run (installed only when missing)
prometheus:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

## go-tools: grpcurl and ghz (the reflection test, the recommender benchmarks) from the Go module proxy, pinned, into a shared cache (installed only when missing)
GO_BIN := $(VITRINE_CACHE)/go/bin
GRPCURL_VERSION := v1.9.3
GHZ_VERSION := v0.120.0
go-tools:
	@command -v go >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go; }
	@mkdir -p $(GO_BIN)
	@[ -x $(GO_BIN)/grpcurl ] && [ -f $(GO_BIN)/.grpcurl-$(GRPCURL_VERSION) ] || { \
	  echo "installing grpcurl $(GRPCURL_VERSION) from the Go module proxy into $(GO_BIN)"; \
	  GOBIN=$(GO_BIN) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION) && \
	  rm -f $(GO_BIN)/.grpcurl-* && touch $(GO_BIN)/.grpcurl-$(GRPCURL_VERSION); }
	@[ -x $(GO_BIN)/ghz ] && [ -f $(GO_BIN)/.ghz-$(GHZ_VERSION) ] || { \
	  echo "installing ghz $(GHZ_VERSION) from the Go module proxy into $(GO_BIN)"; \
	  GOBIN=$(GO_BIN) go install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION) && \
	  rm -f $(GO_BIN)/.ghz-* && touch $(GO_BIN)/.ghz-$(GHZ_VERSION); }

## ghz: the Go gRPC load generator alone (the benchmarks; go-tools installs it with grpcurl)
ghz: go-tools

## protoset: protos/vitrine.protoset, the compiled descriptors (with imports) for grpcurl, ghz and other tools
protoset: venv
	@$(PY) protos/generate.py --protoset protos/vitrine.protoset >/dev/null
	@echo "wrote protos/vitrine.protoset (ghz --protoset protos/vitrine.protoset --call vitrine.v1.Recommender/Similar ...)"

## test: lint + the whole test suite against real Kafka, gRPC, Qdrant Edge, Prometheus, grpcurl and ghz
test: setup lint prometheus go-tools
	VITRINE_KAFKA_LIB=$(KAFKA_LIB) VITRINE_GO_BIN=$(GO_BIN) $(PY) -m pytest -q

## reliability: the long fault-injection runs (20 encoder kills, the full soak, overload past saturation) on top of the CI-sized ones
reliability: setup ghz
	VITRINE_KAFKA_LIB=$(KAFKA_LIB) VITRINE_RELIABILITY_KILLS=20 VITRINE_RELIABILITY_REPORT_DIR=bench/results/reliability \
		$(PY) -m pytest -q -s tests/reliability tests/integration/test_encoder_failures.py tests/integration/test_poison_records.py
	$(PY) bench/reliability_report.py
	PATH="$(GO_BIN):$$PATH" $(PY) bench/overload.py
	$(PY) bench/soak.py --minutes 10

test-fast: setup
	$(PY) -m pytest -q -m "not integration and not slow"

lint: venv
	$(VENV)/bin/ruff check libs services tests bench protos/generate.py
	$(VENV)/bin/ruff format --check libs services tests bench protos/generate.py

format: venv
	$(VENV)/bin/ruff check --fix libs services tests bench protos/generate.py
	$(VENV)/bin/ruff format libs services tests bench protos/generate.py

clean:
	rm -rf $(VENV) libs/vitrine/v1 .pytest_cache .ruff_cache build *.egg-info
