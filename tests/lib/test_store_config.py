"""Config validation (store.config) on every runtime, over flashsim.memfs."""
import json

import mptest
from store import config
from flashsim.memfs import MemFS


def test_missing_file_gives_defaults_and_message():
    cfg, errs = config.load("/config.json", MemFS())
    assert cfg == config.defaults()
    assert len(errs) == 1 and "missing" in errs[0]
    assert cfg["save"]["threshold_mwh"] == 1000 and cfg["save"]["min_interval_s"] == 5
    assert cfg["save"]["max_interval_s"] == 600 and cfg["modules"][0]["addr"] == 0x50


def test_broken_json_and_wrong_top_level():
    fs = MemFS()
    for text in (b"{not json", b"\xff\xfe", b"[1, 2]", b"42", b""):
        fs.write("/config.json", text)
        cfg, errs = config.load("/config.json", fs)
        assert cfg == config.defaults() and errs, text


def test_bad_values_fall_back_per_key():
    raw = {"i2c": {"freq": 5, "sda": 4, "scl": "x"}, "save": {"threshold_mwh": 500, "min_interval_s": True},
           "uart": {"baud": 1234, "parity": "E", "bits": 8}, "bogus": 1, "auth": {"secret": "s" * 65, "x": 2}}
    cfg, errs = config.validate(raw)
    assert cfg["i2c"]["freq"] == 50000 and cfg["i2c"]["sda"] == 4 and cfg["i2c"]["scl"] is None
    assert cfg["save"]["threshold_mwh"] == 500 and cfg["save"]["min_interval_s"] == 5
    assert cfg["uart"]["baud"] == 9600 and cfg["uart"]["bits"] == 8 and cfg["auth"]["secret"] == ""
    text = "\n".join(errs)
    for frag in ("i2c.freq", "i2c.scl", "save.min_interval_s", "uart.baud", "bogus", "auth.secret", "auth.x"):
        assert frag in text, (frag, text)
    assert len(errs) == 7, errs


def test_modules_and_channels():
    raw = {"modules": [{"addr": 0x51, "label": "kitchen", "ch": [{"invert": True}, {"noload_w": 5000}, "x"]},
                       {"addr": 0x51}, {"addr": 3}, 7]}
    cfg, errs = config.validate(raw)
    mods = cfg["modules"]
    assert len(mods) == 2 and mods[0]["addr"] == 0x51 and mods[1]["addr"] == 0x50
    assert mods[0]["ch"][0]["invert"] is True and mods[0]["ch"][1]["noload_w"] == 0
    assert len(mods[0]["ch"]) == 3
    text = "\n".join(errs)
    assert "modules.1.addr: duplicate" in text and "modules.2.addr" in text and "modules.3" in text
    assert "modules.0.ch.1.noload_w" in text and "modules.0.ch.2" in text
    cfg, errs = config.validate({"modules": []})
    assert cfg["modules"] == config.defaults()["modules"] and errs


def test_interval_consistency():
    cfg, errs = config.validate({"save": {"min_interval_s": 120, "max_interval_s": 60}})
    assert cfg["save"]["max_interval_s"] == 120 and errs


def test_set_key_validates_and_coerces():
    cfg = config.defaults()
    assert config.set_key(cfg, "i2c.freq", "400000") == (True, "ok")
    assert cfg["i2c"]["freq"] == 400000
    assert config.set_key(cfg, "i2c.freq", "0x61A80")[0] and cfg["i2c"]["freq"] == 400000
    assert not config.set_key(cfg, "i2c.freq", "fast")[0]
    assert not config.set_key(cfg, "i2c.freq", 5)[0] and cfg["i2c"]["freq"] == 400000
    assert config.set_key(cfg, "powerfail.pin", "12")[0] and cfg["powerfail"]["pin"] == 12
    assert config.set_key(cfg, "powerfail.pin", "none")[0] and cfg["powerfail"]["pin"] is None
    assert config.set_key(cfg, "powerfail.active_low", "off")[0] and cfg["powerfail"]["active_low"] is False
    assert config.set_key(cfg, "uart.parity", "N")[0] and not config.set_key(cfg, "uart.parity", "X")[0]
    assert config.set_key(cfg, "uart.baud", "115200")[0] and cfg["uart"]["baud"] == 115200
    assert config.set_key(cfg, "modules.0.ch.2.invert", "1")[0] and cfg["modules"][0]["ch"][2]["invert"]
    assert config.set_key(cfg, "modules.1.addr", "0x52")[0] and cfg["modules"][1]["addr"] == 0x52
    assert not config.set_key(cfg, "modules.1.addr", "0x50")[0]      # in use
    assert not config.set_key(cfg, "modules.5.addr", "0x53")[0]      # no gap
    assert not config.set_key(cfg, "modules.0.ch.3.invert", "1")[0]
    assert not config.set_key(cfg, "save.max_interval_s", "2")[0]
    assert not config.set_key(cfg, "nope", "1")[0]
    assert config.get_key(cfg, "modules.1.addr") == 0x52 and config.get_key(cfg, "x.y") is None
    assert config.validate(json.loads(json.dumps(cfg)))[1] == []


def test_save_is_atomic_and_roundtrips():
    fs = MemFS()
    cfg = config.defaults()
    config.set_key(cfg, "auth.secret", "hunter2")
    assert config.save(cfg, "/config.json", fs) is None
    assert "/config.json.tmp" not in fs.files
    back, errs = config.load("/config.json", fs)
    assert back == cfg and errs == []
    fs.readonly = True
    msg = config.save(cfg, "/config.json", fs)
    assert msg and "save failed" in msg
    assert config.load("/config.json", fs)[0] == cfg


def test_policy_from_config():
    from store.policy import Policy
    cfg = config.defaults()
    p = Policy.from_config(cfg)
    assert (p.threshold_mwh, p.min_ms, p.max_ms) == (1000, 5000, 600000)
    config.set_key(cfg, "save.min_interval_s", "10")
    assert Policy.from_config(cfg).min_ms == 10000
