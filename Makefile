# Set-up and everyday commands. `make run` and `make test` work on a fresh clone: they create
# .venv when missing and (re)install the pinned dependencies whenever pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MLFLOW_PORT ?= 5000
VIZ_PORT ?= 4141
SERVE_PORT ?= 5001
VIZ_PIPELINE ?= asc
# The suite's end-to-end tests spend much of their time starting processes and sessions: two
# workers on two cores finish it in about 6 minutes instead of 9. Whole files go to one worker,
# so a module's expensive fixture is built once.
TEST_WORKERS ?= 2
export KEDRO_DISABLE_TELEMETRY := 1
# `make run` uses the machine's cores: with room for two or more workers of 2 torch threads (the
# pinned thread count), the models and CV folds fan out over a local Dask cluster -- the same bytes
# as one after another. WORKERS=1 trains them one after another; WORKERS=N sets the worker count.
CORES   := $(shell nproc 2>/dev/null || echo 1)
WORKERS ?= $(shell echo $$(( $(CORES) / 2 )))

.PHONY: install run test test-fast repro repro-check bench mlflow-ui viz serve clean reproduce

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install            ## install, then train and compare the asc models on the embedded data
	@if [ "$(WORKERS)" -ge 2 ]; then \
		echo "make run: $(CORES) cores: the models fan out over $(WORKERS) local workers x 2 torch threads (--runner=dask; WORKERS=1: one after another)"; \
		$(BIN)/kedro run --pipelines=asc --runner=dask --runner-params n_workers=$(WORKERS),torch_threads=2; \
	else \
		echo "make run: $(CORES) cores: the models train one after another on 2 torch threads (WORKERS=N fans them out over N local workers)"; \
		$(BIN)/kedro run --pipelines=asc; \
	fi
	@# the outputs are those of dvc.yaml's asc stages: record them in DVC's cache, so a later `dvc repro`
	@# has nothing to re-run (with conf/local parameter overrides they are not the stages' outputs)
	@if ls conf/local/parameters*.yml >/dev/null 2>&1; then \
		echo "make run: conf/local overrides parameters, so these outputs are not dvc.yaml's: not recorded in DVC"; \
	else \
		$(BIN)/dvc commit --force --quiet asc_data asc_features asc && \
		echo "make run: outputs recorded in DVC's cache (dvc status: up to date; dvc repro re-runs nothing)"; \
	fi

test: install           ## install, then run the whole test suite (TEST_WORKERS processes, a test file each)
	MLSP_PROGRESS=0 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: install      ## the suite without its end-to-end runs (pytest -m "not slow"): about 2 minutes on 2 cores
	MLSP_PROGRESS=0 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

repro: install          ## re-run the DVC stages whose inputs changed (stages find .venv/bin/kedro themselves)
	$(BIN)/dvc repro

repro-check: install    ## fresh-clone check: every stage reproduces dvc.lock (dvc status clean, dvc.lock unchanged)
	$(BIN)/dvc repro
	$(BIN)/dvc status
	git diff --exit-code --stat dvc.lock

bench: install          ## measurements against baselines (minutes)
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/simulation.py
	$(BIN)/python benchmarks/word2vec.py

viz: install            ## the pipeline graph in kedro-viz on http://127.0.0.1:$(VIZ_PORT) (VIZ_PIPELINE=asc; namespaces collapse per model)
	$(BIN)/kedro viz run --host 127.0.0.1 --port $(VIZ_PORT) --no-browser --pipeline $(VIZ_PIPELINE)

serve: install          ## serve a logged model over HTTP on 127.0.0.1:$(SERVE_PORT): make serve MODEL=models:/<model id>
	@test -n "$(MODEL)" || { echo "make serve: say which model, e.g. make serve MODEL=models:/m-...  (the model_uri tag of a model run)"; exit 2; }
	PATH="$(abspath $(BIN)):$$PATH" MLFLOW_TRACKING_URI="$${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}" \
		$(BIN)/mlflow models serve -m "$(MODEL)" --env-manager local -h 127.0.0.1 -p $(SERVE_PORT)

mlflow-ui: install      ## browse and compare runs: prints each experiment's runs-view URL, then serves the UI
	$(BIN)/python -m mlsp_pipelines.tracking urls --host 127.0.0.1 --port $(MLFLOW_PORT)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db \
		--host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1

clean:                  ## remove generated data, runs and caches (keeps .venv)
	rm -rf data/0*/* data/08_reporting/* data/.locks mlflow.db mlflow.db.lock mlartifacts .pytest_cache
	git checkout -- data 2>/dev/null || true

reproduce: install      ## rebuild a past run from its lineage record: make reproduce RUN=<mlflow run id>
	$(BIN)/python -m mlsp_pipelines.reproduce $(RUN)
