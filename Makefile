# Two entry points a fresh machine needs: `make run` and `make test`.
# Each creates .venv when missing. Torch comes from a local wheel folder when there is one
# (WHEELS), so no multi-GB CUDA build is pulled; elsewhere pip resolves it normally.

PYTHON ?= python3
VENV ?= .venv
WHEELS ?= /opt/wheels
BIN := $(VENV)/bin
TORCH_WHEEL := $(firstword $(wildcard $(WHEELS)/torch-*.whl))
FIND_LINKS := $(if $(TORCH_WHEEL),--find-links $(WHEELS),)
# The wheel file itself when there is one: a plain "torch" would take the registry's newest
# build, with several GB of CUDA packages.
TORCH_REQUIREMENT := $(if $(TORCH_WHEEL),$(TORCH_WHEEL),torch>=2.1)
STAMP := $(VENV)/.installed
# The versions the container image installs; the tests run on the same (make constraints).
CONSTRAINTS := docker/constraints.txt
# The tensorflow-serving-api the tests call TF Serving's gRPC API with.
TF_SERVING_API := 2.21.0

.PHONY: venv run test lint example clean tools bench constraints gpu-wheels gpu-check

$(STAMP): pyproject.toml Makefile $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, from the local wheel when present, so nothing else drags in a CUDA build
	$(BIN)/python -m pip install --quiet "$(TORCH_REQUIREMENT)"
	$(BIN)/python -m pip install --quiet $(FIND_LINKS) -c $(CONSTRAINTS) -e ".[torch,dev]"
	# TF Serving's own gRPC client, for the tests. --no-deps: it requires "tensorflow", whose
	# modules tensorflow-cpu (a dev dependency) already provides without the GPU build.
	$(BIN)/python -m pip install --quiet --no-deps "tensorflow-serving-api==$(TF_SERVING_API)"
	touch $(STAMP)

venv: $(STAMP)

# Pin what the image installs at the versions .venv has (after upgrading a package there).
constraints:
	$(BIN)/python docker/constraints.py > $(CONSTRAINTS).new && mv $(CONSTRAINTS).new $(CONSTRAINTS)

# The archives the README and docs use, in one model store: digits (trained the first time,
# about 10 s on 2 cores), and the ONNX models pair, tiny and examples/onnx/model.onnx; the
# Triton examples' ONNX digit classifier (the Paddle Serving example's model too); the
# TorchServe workflow example's archives; the streaming example's token generator (tokens.mar).
example: $(STAMP)
	$(BIN)/python examples/digits/build.py
	$(BIN)/python examples/onnx/build.py
	$(BIN)/python examples/triton/build.py
	$(BIN)/python examples/paddle/build.py
	$(BIN)/python examples/workflows/build.py
	$(BIN)/python examples/streaming/build.py

run: example
	@echo "Serving the digits model; once the server says it is ready, try in another shell:"
	@echo "  curl -X POST http://127.0.0.1:8080/predictions/digits -T examples/digits/sample.png"
	$(BIN)/modelserve start --foreground --model-store examples/model_store --models digits=digits.mar

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# Prometheus, wrk and h2load, which some tests and benchmarks drive, installed once where apt-get and root allow;
# elsewhere nothing is installed and those tests skip themselves.
tools:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		missing=""; \
		test -x /usr/bin/prometheus || missing="$$missing prometheus"; \
		command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
		command -v h2load >/dev/null 2>&1 || missing="$$missing nghttp2-client"; \
		if [ -n "$$missing" ]; then \
			echo "installing$$missing with apt-get"; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				--no-install-recommends $$missing; } >/dev/null 2>&1 \
				|| echo "could not install$$missing; the tests that need them will skip"; \
		fi; \
	fi

test: $(STAMP) tools
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

# modelserve against TorchServe 0.12, Triton (PyTriton), Ray Serve, BentoML, MLServer, LitServe
# and the in-process limit, 3 alternating rounds: over an hour on 2 cores; the competitors' venvs
# are installed once into .bench-cache/. BENCH_ARGS narrows it, e.g. the tiny MLP at c=64 alone:
# make bench BENCH_ARGS="--models mlp --concurrency 64". See docs/performance.md.
BENCH_ARGS ?=
bench: $(STAMP) tools
	$(BIN)/python benchmarks/compare_servers.py $(BENCH_ARGS)

# The GPU check (docs/performance.md, "GPU check"). gpu-wheels, run here with network, fills
# .gpu-wheels/ with the wheels a GPU machine without network lacks beside its CUDA torch;
# gpu-check runs there with that machine's Python (no .venv), or here with .venv's, where
# without a GPU it is a smoke test.
GPU_CHECK_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))

gpu-wheels: $(STAMP)
	$(BIN)/python benchmarks/gpu_wheels.py

gpu-check:
	$(GPU_CHECK_PYTHON) benchmarks/gpu_check.py

# logs/: background servers' console logs and the snapshots of registered models.
clean:
	rm -rf $(VENV) examples/model_store examples/digits/build examples/onnx/build \
		examples/onnx/model.onnx logs .gpu-wheels
