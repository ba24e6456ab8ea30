# Everything a fresh machine needs is installed by these targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := bubblewrap libfluidsynth3 fluidsynth
DATASET_OUT ?= out
SOUNDFONT_PACKAGES := fluid-soundfont-gm musescore-general-soundfont-small
DATASET_TEMPOS ?= 0.8 1.0 1.2
DATASET_SOUNDFONTS ?= timgm6mb
# Every extra of pyproject.toml, so that make test and make dataset lose nothing.
EXTRAS := dev,dask,performances
# The compact form: piece files only, read by msmd_prep.reader.SnippetReader.
# DATASET_FORM=--shards also writes compressed shards for SnippetDataset.
DATASET_FORM ?= --no-shards

.PHONY: install apt soundfonts test dataset fixture bench clean

# Install the Debian packages $(1) that are missing (with sudo unless root).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

apt:
	$(call apt_install,$(APT_PACKAGES))

soundfonts:
	$(call apt_install,$(SOUNDFONT_PACKAGES))

$(BIN)/activate:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	touch $@

install: apt $(VENV)/.installed

test: install soundfonts
	$(BIN)/python -m pytest -q

dataset: install
	$(BIN)/msmd-prep dataset examples --out $(DATASET_OUT) --tempo $(DATASET_TEMPOS) --soundfont $(DATASET_SOUNDFONTS) $(DATASET_FORM)

fixture: install
	$(BIN)/msmd-prep render tests/fixtures --out $(DATASET_OUT)/fixtures

bench: install
	$(BIN)/python benchmarks/bench_synth.py
	$(BIN)/python benchmarks/bench_spectrogram.py
	$(BIN)/python benchmarks/bench_reader.py

clean:
	rm -rf $(DATASET_OUT) .pytest_cache
