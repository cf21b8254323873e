"""The bridge's monotonic guard and on-disk outbox (tools/rbmeter/bridge_store.py),
no broker and no node: pure bookkeeping, under a second."""
import json

from rbmeter.bridge_store import HOLD, NEW, PUBLISH, Guard, Outbox, fmt_kwh

TOL = 10000


def never(drop):
    return False


def always(drop):
    return drop <= TOL


def test_fmt_kwh_matches_the_node_format():
    assert fmt_kwh(0) == "0.000000"
    assert fmt_kwh(123456789) == "123.456789"
    assert fmt_kwh(-1867) == "-0.001867"
    assert fmt_kwh(2000000000001) == "2000000.000001"


def test_guard_publishes_increases_and_holds_a_fallback_after_a_reboot(tmp_path):
    g = Guard(str(tmp_path / "g.json"))
    assert g.step("m", 1000, 50, never) == (PUBLISH, 1000, 50, None)
    assert g.step("m", 5000, 50, never) == (PUBLISH, 5000, 50, None)
    # power cut: the node restored its last commit (lower); the bridge holds
    asked = []

    def rebooted(drop):
        asked.append(drop)
        return True
    assert g.step("m", 4200, 50, rebooted) == (HOLD, 5000, 50, None)
    assert asked == [800]
    # still below while catching up: held, no new meter although no new reboot
    assert g.step("m", 4900, 60, never) == (HOLD, 5000, 60, None)
    # passed again: published as read
    assert g.step("m", 5100, 70, never) == (PUBLISH, 5100, 70, None)
    g.save()
    # the guard survives a bridge restart
    g2 = Guard(str(tmp_path / "g.json"))
    assert g2.step("m", 5050, 70, always)[0] == HOLD
    assert g2.step("m", 5050, 70, always)[1] == 5100


def test_guard_preset_or_large_fall_is_a_new_meter_and_the_old_one_retired(tmp_path):
    logs = []
    g = Guard(str(tmp_path / "g.json"), log=logs.append)
    g.step("m", 90000, 0, never)
    # preset lower without a reboot
    act, i, e, old = g.step("m", 100, 0, never)
    assert (act, i, e, old) == (NEW, 100, 0, "m")
    assert g.current("m") == "m_g1"
    assert any("retired" in m and "m" in m for m in logs)
    # a fall larger than the tolerance after a reboot is also a new meter
    g.step("m", 50000, 0, never)
    act, _, _, old = g.step("m", 10, 0, always)
    assert act == NEW and old == "m_g1" and g.current("m") == "m_g2"
    g.save()
    d = json.loads((tmp_path / "g.json").read_text())
    assert [r["unique_id"] for r in d["retired"]] == ["m", "m_g1"]
    assert Guard(str(tmp_path / "g.json")).current("m") == "m_g2"


def test_guard_replaced_module_retires_the_slot():
    g = Guard(None)
    assert g.slot("0x50/0", "n_aaaa_0") is None
    assert g.slot("0x50/0", "n_aaaa_0") is None
    assert g.slot("0x50/0", "n_bbbb_0") == "n_aaaa_0"
    assert g.retired[-1]["unique_id"] == "n_aaaa_0"


def test_guard_unreadable_file_is_kept_not_silently_lost(tmp_path):
    p = tmp_path / "g.json"
    p.write_text("{broken")
    logs = []
    g = Guard(str(p), log=logs.append)
    assert g.meters == {} and (tmp_path / "g.json.broken").exists() and logs


def _drain(box, busy=None):
    """Hand and acknowledge everything, as the broker would (in order)."""
    out = []
    busy = set() if busy is None else busy
    while True:
        e = box.take(busy)
        if e is None:
            return out
        out.append((e.topic, e.payload))
        box.acked(e)


def test_outbox_order_one_in_flight_per_topic_and_ack():
    box = Outbox(None)
    for i in range(3):
        box.put("a/state", "a%d" % i)
        box.put("b/state", "b%d" % i)
    busy = set()
    e1 = box.take(busy)
    busy.add(e1.topic)
    e2 = box.take(busy)
    busy.add(e2.topic)
    assert (e1.payload, e2.payload) == ("a0", "b0")
    assert box.take(busy) is None          # a1 waits for a0's ack: never two of one topic in flight
    box.acked(e1)
    busy.discard(e1.topic)
    assert box.take(busy).payload == "a1"
    assert len(box) == 5


def test_outbox_restart_resends_unacked_newest_per_topic(tmp_path):
    path = str(tmp_path / "q.jsonl")
    box = Outbox(path)
    for i in range(4):
        box.put("n/0x50/0/state", json.dumps({"import_kwh": fmt_kwh(i)}))
        box.put("ha/sensor/x/config", "cfg%d" % i)
    e = box.take(set())
    box.acked(e)
    box.save_ack()
    box.flush()
    del box                                # crash: no close()
    again = Outbox(path)
    got = _drain(again)
    assert got == [("n/0x50/0/state", json.dumps({"import_kwh": fmt_kwh(3)})), ("ha/sensor/x/config", "cfg3")]
    assert again.dropped == 5              # superseded, never sent after a newer one
    again.close()
    assert _drain(Outbox(path)) == []      # acknowledged: nothing comes back


def test_outbox_is_bounded_and_keeps_the_newest_state(tmp_path):
    box = Outbox(str(tmp_path / "q.jsonl"), max_len=16)
    for i in range(1000):
        box.put("t%d/state" % (i % 4), str(i))
    assert len(box) <= 16 and box.dropped >= 1000 - 16
    got = _drain(box)
    last = {}
    for t, p in got:
        assert int(p) > last.get(t, -1)     # order per topic kept
        last[t] = int(p)
    assert last == {"t0/state": 996, "t1/state": 997, "t2/state": 998, "t3/state": 999}
