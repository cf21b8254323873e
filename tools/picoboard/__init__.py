"""picoboard: the real RPI_PICO firmware on an emulated RP2040 (npm rp2040js)
with simulated rbAmp modules, DRDY and a console pty. See docs/pico.md."""
from .board import PicoBoard, BoardError, firmware, default_files, board_config, PULLED_UP
from . import lfsimage

__all__ = ["PicoBoard", "BoardError", "firmware", "default_files", "board_config", "PULLED_UP", "lfsimage"]
