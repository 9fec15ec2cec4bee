# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv at the repo root by themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.callqa-installed
LOCK := requirements.lock
MODEL := models/cache/whisper-base/callqa-model.json
# Debian packages the tests need: festival (Russian calls), sox, espeak-ng (English speech), and chromium with
# fonts-dejavu-core to open the HTML report headless.
APT_PACKAGES := festival festvox-ru sox espeak-ng chromium fonts-dejavu-core

.PHONY: help venv model demo test test-fast bench soak system-deps samples lint lock clean

help:
	@echo "make demo   - set up .venv and the default model, analyse the bundled sample calls"
	@echo "make test   - set up the same way and run the whole test suite"
	@echo "make bench  - run the benchmarks (figures go to bench/README.md by hand)"
	@echo "make soak   - the fault-injection soak: 300 calls, an hour or two (bench/soak.py)"
	@echo "make samples - re-render the sample calls with festival (tests/synth/render.py)"
	@echo "make lock   - re-resolve pyproject.toml's dependencies into $(LOCK) (then make test, commit both)"

# Installs exactly the versions in $(LOCK) (pip constraints), so a fresh clone gets what CI tested.
$(INSTALLED): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "callqa needs Python 3.11 or newer"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $@

venv: $(INSTALLED)

$(MODEL): $(INSTALLED)
	$(BIN)/callqa model prepare whisper-base

model: $(MODEL)

demo: model
	$(BIN)/callqa demo --out demo-output

# The generator test needs festival; install the Debian packages when they are missing and we may (root).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian packages:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "missing Debian packages:$$missing (sudo apt-get install -y$$missing)"; exit 1; \
		fi; \
	fi

test: model system-deps
	$(BIN)/python -m pytest

bench: model
	$(BIN)/python bench/analyze_vs_bare.py
	$(BIN)/python bench/stereo_strategies.py
	$(BIN)/python bench/hotwords.py
	$(BIN)/python bench/rescore.py
	$(BIN)/python bench/long_file.py
	$(BIN)/python bench/batch.py
	$(BIN)/python bench/bitrix24.py
	$(BIN)/python bench/diarization.py
	$(BIN)/python bench/audio_copy.py

soak: model
	$(BIN)/python bench/soak.py

samples: venv system-deps
	$(BIN)/python -m tests.synth.render --out tests/data/calls

lint: venv
	$(BIN)/ruff check pipeline models tests bench
	$(BIN)/mypy

# A fresh resolution of pyproject.toml's ranges, frozen: the newest versions they admit today.
lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet --upgrade pip
	build/lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '/^#/p' $(LOCK); build/lock-venv/bin/python -m pip freeze --all --exclude-editable --exclude pip; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf build/lock-venv
	@echo "$(LOCK) written: run make clean test, then commit it"

clean:
	rm -rf $(VENV) models/cache demo-output .pytest_cache
