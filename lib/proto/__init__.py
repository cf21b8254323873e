"""Console line protocol: text/JSON commands, HMAC auth, IEC 62056-21 readout."""
from proto.engine import Engine, ProtoError
from proto.crc import crc16, seal, verify
from proto.auth import hmac_sha256
