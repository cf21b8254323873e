"""Exception hierarchy. Everything derives from RbAmpError(OSError) so code
written for the module's own package (which catches OSError or the rbAmp
names) keeps working. Bus failures carry the errno of the last attempt."""
import sys


class RbAmpError(OSError):
    pass


class RbAmpIOError(RbAmpError):
    """Bus failure after all retries (NACK, EIO, bus timeout), or a value
    rejected by the sanity filter (NaN, Inf, implausible)."""


class RbAmpTimeoutError(RbAmpError):
    """A wait on the module ran out (data never became valid, address-change
    arm window expired)."""


class RbAmpNotReadyError(RbAmpError):
    pass


class RbAmpStaleError(RbAmpError):
    """The period latch found an empty period (PERIOD_VALID bit0 == 0)."""


# Also a ValueError on CPython, as in the module's own package; MicroPython
# allows only one native exception base.
if sys.implementation.name == "micropython":
    class RbAmpParamError(RbAmpError):  # type: ignore
        """Bad argument (channel, address, group, label...) or ERROR 0xFE."""
else:
    class RbAmpParamError(RbAmpError, ValueError):  # type: ignore
        """Bad argument (channel, address, group, label...) or ERROR 0xFE."""


class RbAmpModeError(RbAmpError):
    """Operation not allowed in the module's current configuration/state."""


class RbAmpVersionError(RbAmpError):
    """Not an rbAmp, or an unsupported/invalid VERSION or HW_VARIANT."""


class RbAmpUnsupportedError(RbAmpError):
    """Operation not available on this hardware variant or tier."""


class RbAmpDeviceError(RbAmpError):
    """The module reported an error code in ERROR (0x02) after a command,
    or its identity registers contradict each other (faulty device)."""
