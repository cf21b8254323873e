"""The PyPI IEC 62056-21 client (the reader utility-meter tools use) doing a
standard readout on a serial port: {OBIS address: (value, unit)}."""


def readout(port, timeout=None):
    from iec62056_21.client import Iec6205621Client
    cl = Iec6205621Client.with_serial_transport(port=port)
    if timeout is not None:
        cl.transport.timeout = timeout
    cl.connect()
    try:
        ans = cl.standard_readout()
    finally:
        cl.disconnect()
    return {d.address: (d.value, d.unit) for d in ans.data}
