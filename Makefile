# rbAmp metering node: `make run` (the node on a laptop) and `make test` (everything).
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip -q --disable-pip-version-check
STAMP  := $(VENV)/.setup-done

.PHONY: setup run test bench clean firmware firmware-stock firmware-ble firmware-ble32 fsimage

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

# MicroPython v1.28.0 firmware (tools/fwbuild, firmware/BUILD.md). Source: $$MICROPY_DIR, else the
# bundle in ../shared/micropython/, else a git clone; cached in $${RBMETER_CACHE:-~/.cache/rbmeter}.
FWBUILD := PYTHONPATH=tools $(PY) -m fwbuild

# RPI_PICO with lib/ frozen: build/firmware/RPI_PICO/firmware.{elf,bin,uf2}
firmware: setup
	$(FWBUILD) rp2

# stock RPI_PICO (filesystem deploy): build/firmware/RPI_PICO-stock/firmware.{elf,bin,uf2}
firmware-stock: setup
	$(FWBUILD) rp2-stock

# unix port + NimBLE, lib/ frozen: build/firmware/unix-ble/micropython
firmware-ble: setup
	$(FWBUILD) unix-ble

# the same, 32-bit (31-bit small ints): build/firmware/unix-ble32/micropython
firmware-ble32: setup
	$(FWBUILD) unix-ble32

# LittleFS image for the stock firmware (.mpy of lib/ under /lib, boot.py, main.py, config)
fsimage: setup
	$(FWBUILD) fsimage

clean:
	rm -rf $(VENV) node_modules .pytest_cache
