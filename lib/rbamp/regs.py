"""rbAmp page-0 register map, command opcodes and settle times (protocol
v1.2/v1.3, VERSION 0x03/0x04). Multi-byte values are little-endian."""
try:
    from micropython import const
except ImportError:  # CPython
    def const(__x):
        return __x

DEFAULT_ADDR = const(0x50)
ADDR_MIN = const(0x08)
ADDR_MAX = const(0x77)
GC_ADDR = const(0x00)           # general call
BUS_FREQ = const(50_000)        # recommended bus speed (100 kHz needs retries, 400 kHz unvalidated)

# control
STATUS = const(0x00)            # bit0 READY, bit1 ERROR, bit2 EVENTS_PENDING
COMMAND = const(0x01)
ERROR = const(0x02)
VERSION = const(0x03)
MODE = const(0x04)
CT_MODEL = const(0x05)
PERIOD_VALID = const(0x07)      # bit0 set by LATCH when the snapshot is fresh
# system
AC_FREQ = const(0x20)
AC_PERIOD = const(0x21)         # u16 half-period, us
TOPOLOGY = const(0x24)
SENSOR_CLASS = const(0x25)
# fleet / events
FLEET_CONFIG = const(0x27)      # bit0 GC_ENABLE (after reset)
GROUP_ID = const(0x28)
DIGEST_CONFIG = const(0x29)
EVENT_FLAGS = const(0x2A)       # W1C
EVENT_MASK = const(0x2B)
THRESH_I_HI = const(0x2C)
THRESH_P_HI = const(0x2E)
# address
I2C_ADDRESS = const(0x30)
ADDR_COMMIT_MAGIC = const(0x31)
# health
UPTIME_S = const(0x46)
RESET_CAUSE = const(0x4A)
I2C_ERR_COUNT = const(0x4B)
# identity
CT_MODEL_CH0 = const(0x51)
PRODUCT_ID = const(0x54)
HW_VARIANT = const(0x55)
FW_TIER = const(0x56)           # v1.3 only, advisory
CAPABILITY = const(0x57)        # u16
GC_TICK = const(0x59)           # u16, 0xFFFF = none since boot
UID = const(0x5C)               # 12 bytes
UID_LEN = const(12)
LABEL = const(0x68)             # 8 bytes ASCII, zero padded
LABEL_LEN = const(8)
# digest + RT block (one read-freeze region)
DIGEST = const(0x70)            # byte0 STATUS mirror, byte1 SEQ
DIGEST_SEQ = const(0x71)
U_RMS = const(0x86)
U_PEAK = const(0x8A)
I_RMS0 = const(0x8E)            # + 4*ch
I_PEAK0 = const(0x9A)
P_REAL0 = const(0xA6)
PF0 = const(0xB2)
RT_FIRST = const(0x70)
RT_LEN = const(78)              # 0x70..0xBD
Q_REAC0 = const(0xD0)           # outside the freeze window
# period block
PERIOD_COMMIT_CNT = const(0xBE)
PERIOD_AVG_P_CH1 = const(0xC2)
PERIOD_AVG_P_CH2 = const(0xC6)
PERIOD_MS = const(0xCA)
DATA_VALID = const(0xCE)        # bit0: a valid RT result exists since boot
PERIOD_AVG_P = const(0xDC)      # ch0
PERIOD_MAX_P = const(0xE0)
PERIOD_LATCH_MS = const(0xEC)   # chip clock, diagnostic only

# STATUS bits
ST_READY = const(0x01)
ST_ERROR = const(0x02)
ST_EVENTS = const(0x04)

# EVENT_FLAGS bits
EV_PERIOD_READY = const(0x01)
EV_THRESH_I = const(0x02)
EV_THRESH_P = const(0x04)
EV_ERROR = const(0x08)
EV_CONFIG_CHANGED = const(0x10)
EV_RESET = const(0x20)

# CAPABILITY bits
CAP_EXT_ADDRESSING = const(0x0001)
CAP_GC_LATCH = const(0x0002)
CAP_GC_GROUP = const(0x0004)
CAP_DIGEST = const(0x0008)
CAP_EVENTS = const(0x0010)
CAP_TWO_PHASE_ADDR = const(0x0080)
CAP_VOLTAGE = const(0x0100)     # ZC_PHASE_OFFSET = voltage hardware
CAP_SAVE_USER_CONFIG = const(0x0200)
CAP_CLEAR_ERROR = const(0x0400)

# commands (opcode, settle ms)
CMD_NOP = const(0x00)
CMD_RESET = const(0x01)
CMD_LATCH_PERIOD = const(0x27)
CMD_SET_CT_MODEL_CH0 = const(0x28)
CMD_COMMIT_ADDR = const(0x30)
CMD_CLEAR_ERROR = const(0x31)
CMD_SAVE_USER_CONFIG = const(0x32)
SETTLE_RESET_MS = const(300)
SETTLE_LATCH_MS = const(50)
SETTLE_CT_MS = const(5)
SETTLE_FLASH_MS = const(700)
SETTLE_CLEAR_MS = const(5)
ADDR_MAGIC = const(0xA5)
ADDR_ARM_WINDOW_MS = const(5000)
GC_MAGIC0 = const(0xA5)
GC_MAGIC1 = const(0x27)

# device ERROR codes
ERR_OK = const(0x00)
ERR_CLONE = const(0xF9)
ERR_LUT_BAD = const(0xFA)
ERR_FLASH_PARAMS = const(0xFB)
ERR_NOT_READY = const(0xFC)
ERR_OVERFLOW = const(0xFD)
ERR_PARAM = const(0xFE)
ERR_UNHANDLED = const(0xFF)

PRODUCT_RBAMP = const(0x01)

# tiers (FW_TIER bits0-1)
TIER_BASIC = const(0)
TIER_STANDARD = const(1)
TIER_PRO = const(2)

VARIANT_NAMES = ("UI1", "UI2", "UI3", "I1", "I2", "I3")      # HW_VARIANT 1..6
TIER_NAMES = ("BASIC", "STANDARD", "PRO")
ERROR_NAMES = {
    0xF9: "CLONE", 0xFA: "LUT_BAD", 0xFB: "FLASH_PARAMS_BAD", 0xFC: "NOT_READY",
    0xFD: "SENSOR_OVERFLOW", 0xFE: "PARAM", 0xFF: "UNHANDLED",
}
