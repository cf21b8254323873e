"""rbamp_sim: register-level simulator of rbAmp I2C energy modules.

    from rbamp_sim import Bus, Module, Profile, Faults, VirtualClock, RealClock

See docs/simulator.md for the API and every fidelity choice."""
from .clocks import VirtualClock, RealClock
from .profile import Profile
from .faults import Faults
from .module import Module
from .bus import Bus, ENODEV, EIO, ETIMEDOUT, GHOST
from . import regs

__all__ = ["Bus", "Module", "Profile", "Faults", "VirtualClock", "RealClock",
           "ENODEV", "EIO", "ETIMEDOUT", "GHOST", "regs"]
