# Every target runs inside the pinned environment through scripts/in-env, which builds it on first use.
IN_ENV := scripts/in-env
PYTEST_ARGS ?=

.PHONY: env install demo test test-fast lint format docs compile bench clean

env:
	$(IN_ENV) --build

# Editable install of this checkout into the environment (a few seconds; every target re-runs it so the
# environment, shared between clones on one machine, always points at the checkout being run).
install: env
	$(IN_ENV) python -m pip install --quiet --no-deps --no-build-isolation --disable-pip-version-check -e .

demo: install
	$(IN_ENV) edgeopt demo --out demo-output

test: install
	$(IN_ENV) ruff check .
	$(IN_ENV) ruff format --check .
	$(IN_ENV) python -m pytest $(PYTEST_ARGS)

# Everything but the end-to-end pipelines and the slowest jobs (markers in pyproject.toml): the quick local check.
test-fast: install
	$(IN_ENV) ruff check .
	$(IN_ENV) python -m pytest -m "not e2e and not slow" $(PYTEST_ARGS)

lint: install
	$(IN_ENV) ruff check .
	$(IN_ENV) ruff format --check .

format: install
	$(IN_ENV) ruff format .
	$(IN_ENV) ruff check --fix .

compile: install
	$(IN_ENV) python -m edgeopt.pipelines.kfp_pipeline

# Benchmarks, not tests (about 16-18 min on 2 cores): writes benchmarks/results/latest.json, pareto.png and BENCHMARKS.md.
# One section alone (merged into latest.json): scripts/in-env python benchmarks/run.py --sections search (~2.5 min).
bench: install
	EDGEOPT_BENCH_COMMIT=$$(git rev-parse HEAD 2>/dev/null) \
	EDGEOPT_BENCH_CHANGED_FILES=$$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l) \
	$(IN_ENV) python benchmarks/run.py

docs: install
	$(IN_ENV) python -m edgeopt.components.docs

clean:
	rm -rf demo-output build *.egg-info .pytest_cache .ruff_cache
