"""Energy metering: exact integer engine (engine.py) and the sampler that
drives rbAmp modules into it (sampler.py). docs/energy.md."""
from energy.engine import (Meter, fmt_kwh, fmt_wh, MAX_DT_MS, P_MAX_MW, Q_MWMS,
                           MWH_PER_KWH, KWH_MAX, GAP_MAX_MS, STATE_TAG, STATE_LEN)
from energy.sampler import Sampler, MasterSide, ModuleSide, select_strategy
