"""rbAmp I2C power-meter module driver (import name `rbamp`).

Same surface as the module's own package (RbAmp(i2c, addr=0x50), begin(),
read_power(ch), power[ch], read_period_snapshot(), energy.wh(ch), ...) plus
the allocation-free hot path read_rt() -> p_mw[ch] in int milliwatts."""
from rbamp.errors import (RbAmpError, RbAmpIOError, RbAmpTimeoutError, RbAmpNotReadyError,
                          RbAmpStaleError, RbAmpParamError, RbAmpModeError, RbAmpVersionError,
                          RbAmpUnsupportedError, RbAmpDeviceError)
from rbamp.decode import BAD, LIMIT_MW, mw_at
from rbamp.snapshot import RbAmpPeriodSnapshot
from rbamp.energy import RbAmpEnergy
from rbamp.device import RbAmp
from rbamp.fleet import RbAmpFleet, MAX_MODULES
from rbamp import regs

RBAMP_FLEET_MAX_MODULES = MAX_MODULES
BUS_FREQ = regs.BUS_FREQ
__version__ = "0.1.0"

__all__ = [
    "RbAmp", "RbAmpFleet", "RbAmpEnergy", "RbAmpPeriodSnapshot", "BAD", "LIMIT_MW", "mw_at", "regs",
    "RbAmpError", "RbAmpIOError", "RbAmpTimeoutError", "RbAmpNotReadyError", "RbAmpStaleError",
    "RbAmpParamError", "RbAmpModeError", "RbAmpVersionError", "RbAmpUnsupportedError", "RbAmpDeviceError",
    "BUS_FREQ", "RBAMP_FLEET_MAX_MODULES",
]
