# Two commands: `make demo` runs the whole loop, `make test` runs the tests.
# Both create .venv and install serein into it on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean bench-batch bench-detection bench-monitor-window bench-drift bench-serving bench-protocols bench-estimation bench-shipper

# Reinstalling (pip install -e) rebuilds src/serein/lib*.so from their C sources (hatch_build.py);
# serein does not use a library built from other source than the one beside it, so after an edit of a
# C source its kernel stays unused (Python does its work) until the next make install/test/demo.
$(STAMP): pyproject.toml hatch_build.py src/serein/tree_kernel.c src/serein/json_rows.c src/serein/column_stats.c
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "serein needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
# pip -q hides the build hook's warning: say whether the compiled kernels are used
	$(BIN)/python -m serein.native
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/serein demo --workspace demo-workspace

test: $(STAMP)
	$(BIN)/python -m pytest -q tests src/serein --doctest-modules

clean:
	rm -rf $(VENV) demo-workspace

bench-batch: $(STAMP)
	$(BIN)/python -m benchmarks.batch

bench-detection: $(STAMP)
	$(BIN)/python -m benchmarks.detection

bench-monitor-window: $(STAMP)
	$(BIN)/python -m benchmarks.monitor_window

bench-drift: $(STAMP)
	$(BIN)/python -m benchmarks.drift

bench-serving: $(STAMP)  # needs wrk (apt-get install -y wrk)
	$(BIN)/python -m benchmarks.serving

bench-protocols: $(STAMP)  # needs wrk (apt-get install -y wrk)
	$(BIN)/python -m benchmarks.protocols

bench-estimation: $(STAMP)  # NannyML in its own venv under ~/.cache/serein-bench (first run installs it)
	$(BIN)/python -m benchmarks.estimation

bench-shipper: $(STAMP)
	$(BIN)/python -m benchmarks.shipper
