"""Shared set-up for the emulated-Pico tests: the firmware is built once per
session (fwbuild cache), each test gets its own board."""
import os
import shutil

import pytest

import picoboard


@pytest.fixture(scope="session")
def fw():
    if shutil.which(os.environ.get("NODE", "node")) is None:
        pytest.fail("node is required for the emulated Pico (make setup)")
    return picoboard.firmware()


@pytest.fixture
def board_factory(fw):
    made = []

    def make(**kw):
        kw.setdefault("pty", False)
        kw.setdefault("firmware_bin", fw)
        b = picoboard.PicoBoard(**kw)
        made.append(b)
        return b.start()

    yield make
    for b in made:
        b.close()
