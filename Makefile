# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv (pinned by constraints.txt) when it is missing or stale.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench wheel clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,dask,gbm,ann]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/catvec pretrain
	$(BIN)/catvec versions artifacts
	$(BIN)/catvec similar --vectors artifacts/latest --k 5 1001
	$(BIN)/catvec recommend --vectors artifacts/latest --events data/events.csv --k 10 --out artifacts/recommendations.csv
	$(BIN)/catvec finetune --vectors artifacts/latest --table data/labels.csv --target spend \
		--cat-cols item_id,channel --cont-cols price,quantity --group-col item_id --compare --out models
	$(BIN)/catvec predict --model models/latest --table data/labels.csv --out models/predictions.csv
	$(BIN)/python examples/own_model.py --vectors artifacts/latest

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# The wheel other projects install (dist/catvec-VERSION-py3-none-any.whl); it carries the
# bundled sample as package data. tests/cli/test_wheel.py builds and runs one in a bare folder.
wheel: $(STAMP)
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation -w dist .

clean:
	rm -rf artifacts models .pytest_cache build dist

# Serve the Prefect deployments of prefect.yaml on their schedules; starts a local Prefect
# server too (UI at http://127.0.0.1:4200) unless PREFECT_API_URL names one. docs/flows.md
.PHONY: serve
serve: $(STAMP)
	$(BIN)/python flows/serve.py
