# rbAmp metering node: `make run` (the node on a laptop) and `make test` (everything).
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip -q --disable-pip-version-check
STAMP  := $(VENV)/.setup-done

.PHONY: setup run test bench clean

setup: $(STAMP) node_modules/.package-lock.json

$(STAMP): tools/requirements-dev.txt tools/requirements-stubs.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -r tools/requirements-dev.txt
	$(PIP) install --target $(VENV)/typings/esp32 --upgrade $$(grep esp32-stubs tools/requirements-stubs.txt)
	$(PIP) install --target $(VENV)/typings/rp2 --upgrade $$(grep rp2-stubs tools/requirements-stubs.txt)
	$(PIP) install --no-deps -e .
	$(VENV)/bin/pyright --version >/dev/null   # fetches pyright's node package once
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# The whole node on the MicroPython unix port against the simulated module,
# with its console on a pty and a live view until Ctrl-C.
run: setup
	$(VENV)/bin/rbmeter sim --watch

test: setup
	$(PY) -m pytest -q -n 2 --dist loadgroup tests

bench: setup
	$(PY) tools/bench/run_all.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache
