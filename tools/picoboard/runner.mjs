// picoboard runner: the real RPI_PICO firmware on rp2040js, driven by the
// Python master (tools/picoboard/board.py) over stdin/stdout, one JSON object
// per line. The master owns the rbAmp simulator, the console pty and all
// decisions (cuts, resets); this process steps the core and asks the master
// synchronously where a peripheral needs an answer (I2C address phase and
// read snapshot, soft-I2C probe, DRDY level), so virtual time stays exact.
// Patches and workarounds: /work/shared/toolchain-notes.md §11, docs/pico.md.
import fs from 'node:fs';
import { Simulator, ConsoleLogger, LogLevel } from 'rp2040js';

const FLASH_SIZE = 2 * 1024 * 1024;
const NS_PER_CYCLE = 8;                 // 125 MHz
const ERASE_NS_PER_SECTOR = 45e6;       // ~45 ms per 4 KB sector erase
const PROG_NS_PER_PAGE = 0.7e6;         // ~0.7 ms per 256 B page program

// ---- line I/O with the master ---------------------------------------------
const inBuf = Buffer.alloc(1 << 16);
let inPend = '';
function readLine() {
  for (;;) {
    const nl = inPend.indexOf('\n');
    if (nl >= 0) {
      const line = inPend.slice(0, nl);
      inPend = inPend.slice(nl + 1);
      return line;
    }
    let n;
    try {
      n = fs.readSync(0, inBuf, 0, inBuf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      throw e;
    }
    if (n === 0) process.exit(0);   // master gone
    inPend += inBuf.toString('latin1', 0, n);
  }
}
let outQ = [];
function send(obj) { outQ.push(JSON.stringify(obj)); }
function flushOut() {
  if (outQ.length) {
    const s = outQ.join('\n') + '\n';
    outQ = [];
    let off = 0;
    const b = Buffer.from(s, 'latin1');
    while (off < b.length) {
      try { off += fs.writeSync(1, b, off); } catch (e) { if (e.code !== 'EAGAIN') throw e; }
    }
  }
}
function ask(obj) {
  // a synchronous round trip: pending async events first, in order
  const w0 = process.hrtime.bigint();
  send(obj);
  flushOut();
  const r = JSON.parse(readLine());
  stats.asks++;
  stats.askWallNs += Number(process.hrtime.bigint() - w0);
  return r;
}
const hex = (arr) => Buffer.from(arr).toString('hex');
const unhex = (s) => Uint8Array.from(Buffer.from(s, 'hex'));

// ---- state that survives resets ---------------------------------------------
let cfg = null;
let bootrom = null;
let flash = null;               // the chip's flash, shared by every Simulator
let sim = null, mcu = null, clock = null;
let base = 0;                   // global virtual ns at this Simulator's t=0
let romErase = 0, romProgram = 0;
let txBuf = [[], []];           // bytes on the wire per UART since the last report
let uartLog = [];               // programmed (baud, framing) per UART, in order
let stats = { cycles: 0, wfeNs: 0, flashOps: 0, eraseNs: 0, progNs: 0, resets: 0, rxOverrun: [0, 0],
              i2cTx: 0, pcSamples: 0, asks: 0, askWallNs: 0, runWallNs: 0 };
let cycles0 = 0;                // core.cycles of finished Simulators
let armed = null;               // power cut: {at} (global ns) or {nth, frac}
let flashOpsSeen = 0;           // flash ops since the cut was armed
let cut = null;                 // set when a cut happened in this run
let stopRun = false;
let pcEvery = 0, pcNext = 0, pcHist = new Map();
let rxQ = [[], []];             // host bytes waiting to enter the RX FIFO
let uartSt = [];                // per-UART line model state
let drdyAlarm = null, drdyPin = -1;

function now() { return base + clock.nanos; }

// ---- UART: TX FIFO with optional line-rate model, baud/framing log ---------
const UARTDR = 0x0, UARTFR = 0x18, UARTIBRD = 0x24, UARTFBRD = 0x28, UARTLCR_H = 0x2c, UARTIFLS = 0x34,
      UARTIMSC = 0x38, UARTICR = 0x44;
const TXIM = 1 << 5;
function frameBits(u) {
  const l = u.lineCtrlRegister;
  return 1 + (5 + ((l >> 5) & 3)) + ((l & 2) ? 1 : 0) + ((l & 8) ? 2 : 1);
}
function framing(u) {
  const l = u.lineCtrlRegister;
  return { bits: 5 + ((l >> 5) & 3), parity: (l & 2) ? ((l & 4) ? 'E' : 'O') : 'N', stop: (l & 8) ? 2 : 1 };
}
function patchUart(mcu, lineRate) {
  const proto = Object.getPrototypeOf(mcu.uart[0]);
  if (proto.__picoboard) return;
  proto.__picoboard = true;
  const rd = proto.readUint32, wr = proto.writeUint32;
  proto.checkInterrupts = function () {
    // only status & mask (rp2040js sets TX status on every access, the IRQ storm of §11)
    this.rp2040.setInterrupt(this.irq, !!(this.interruptStatus & this.interruptMask));
  };
  proto.readUint32 = function (offset) {
    if (offset === UARTFR) {
      const s = this.__pb;
      let f = (this.rxFIFO.full ? 1 << 6 : 0) | (this.rxFIFO.empty ? 1 << 4 : 0);
      if (!s || !s.lineRate) return f | (1 << 7);
      const depth = this.fifosEnabled ? 32 : 1;
      if (s.fifo.length >= depth) f |= 1 << 5;                      // TXFF
      if (s.fifo.length === 0 && !s.shifting) f |= 1 << 7;          // TXFE
      if (s.fifo.length || s.shifting) f |= 1 << 3;                 // BUSY
      return f;
    }
    if (offset === UARTIFLS) return this.__pb ? this.__pb.ifls : 0x12;
    return rd.call(this, offset);
  };
  proto.writeUint32 = function (offset, value) {
    const s = this.__pb;
    if (offset === UARTDR && s) {
      if (!s.lineRate) {
        s.out.push(value & 0xff);
        this.interruptStatus |= TXIM;                // a FIFO that drains at once
        this.checkInterrupts();
        return;
      }
      const depth = this.fifosEnabled ? 32 : 1;
      if (s.fifo.length < depth) s.fifo.push(value & 0xff);   // a full FIFO drops the write, as on the chip
      if (s.fifo.length > txTrigger(this)) this.interruptStatus &= ~TXIM;
      this.checkInterrupts();
      if (!s.shifting) startShift(this);
      return;
    }
    if (offset === UARTIFLS && s) { s.ifls = value & 0x3f; return; }
    if (offset === UARTICR) {
      this.interruptStatus &= ~value;
      this.checkInterrupts();
      return;
    }
    wr.call(this, offset, value);
    if (offset === UARTLCR_H && s) logFraming(this);
  };
}
function txTrigger(u) {
  const sel = (u.__pb.ifls & 7);
  return [4, 8, 16, 24, 28][sel] ?? 16;
}
function byteNs(u) {
  const baud = u.baudRate || 115200;
  return Math.round(frameBits(u) * 1e9 / baud);
}
function startShift(u) {
  const s = u.__pb;
  s.shifting = s.fifo.shift();
  if (s.shifting === undefined) { s.shifting = null; return; }
  const before = s.fifo.length + 1;
  if (before > txTrigger(u) && s.fifo.length <= txTrigger(u)) {
    u.interruptStatus |= TXIM;
    u.checkInterrupts();
  }
  s.alarm.schedule(byteNs(u));
}
function logFraming(u) {
  const s = u.__pb;
  const f = framing(u);
  const rec = { uart: s.idx, baud: u.baudRate, bits: f.bits, parity: f.parity, stop: f.stop };
  const key = JSON.stringify(rec);
  if (key !== s.lastCfg && u.baudDivider) {
    s.lastCfg = key;
    rec.t = now();
    // one init call (divisor latch write, then format) is one record
    const last = s.lastRec;
    if (last && rec.t - last.t < 100000) { Object.assign(last, rec); rec.replace = 1; }
    else { uartLog.push(rec); s.lastRec = rec; }
    send(Object.assign({ ev: 'uart_cfg' }, rec));
  }
}
function attachUart(idx) {
  const u = mcu.uart[idx];
  const s = { idx, lineRate: !!cfg.line_rate, fifo: [], shifting: null, out: txBuf[idx], ifls: 0x12, lastCfg: null,
              rxAlarm: null, rxBusy: false };
  s.alarm = clock.createAlarm(() => {
    if (s.shifting !== null) s.out.push(s.shifting);
    s.shifting = null;
    if (s.fifo.length) startShift(u);
    else { u.interruptStatus |= TXIM; u.checkInterrupts(); }
  });
  s.rxAlarm = clock.createAlarm(() => { s.rxBusy = false; feedRx(idx); });
  u.__pb = s;
  u.onByte = (b) => s.out.push(b);   // unused with the patch; kept for safety
  uartSt[idx] = s;
}
function feedRx(idx) {
  const u = mcu.uart[idx], s = uartSt[idx], q = rxQ[idx];
  if (!s || !q.length) return;
  if (!cfg.line_rate) {
    // no line model: a flow-controlled feed (never overruns)
    while (q.length && !u.rxFIFO.full) u.feedByte(q.shift());
    return;
  }
  if (s.rxBusy) return;
  const b = q.shift();
  if (u.rxFIFO.full) stats.rxOverrun[idx]++;   // overrun: the byte is lost, as on the chip
  else u.feedByte(b);
  s.rxBusy = true;
  s.rxAlarm.schedule(byteNs(u));
}

// ---- I2C0 byte hooks: the rbAmp simulator lives in the master -------------
// A wedge in progress: {i2c, al: its end alarm, clk: SCL clocks that free it
// (0: only its end time or a chip reset), n: clocks seen with the master's
// SDA released}. The soft I2C model reads SDA low while it lasts.
let wedge = null;
let softWedge = () => {};
function unwedge(why) {
  const w = wedge;
  if (!w) return;
  wedge = null;
  w.al.cancel();
  softWedge(false);
  if (why) send({ ev: 'unwedge', why, t: now() });
  if (w.i2c === mcu.i2c[cfg.i2c_id || 0]) w.i2c.completeConnect(false);
}
function attachI2c() {
  wedge = null;
  softWedge = () => {};
  const i2c = mcu.i2c[cfg.i2c_id || 0];
  let ph = null;            // current phase: {a, rd, w: [], n, snap}
  const flushPhase = (msg) => {
    if (ph) { msg.pa = ph.a; msg.prd = ph.rd; if (ph.w.length) msg.pw = hex(ph.w); if (ph.n) msg.pn = ph.n; }
    ph = null;
    return msg;
  };
  i2c.onStart = () => i2c.completeStart();
  i2c.onConnect = (addr, mode) => {
    const rdm = mode === 1;
    stats.i2cTx++;
    const r = ask(flushPhase({ ev: 'i2c', a: addr, rd: rdm ? 1 : 0, t: now() }));
    if (r.dn !== undefined) scheduleDrdy(r.dn);
    if (r.hold !== undefined) {
      // a wedged bus (a target holding SDA low): the address phase never
      // ends, the controller stays busy and the SDK times out, until the
      // line is released (then this transfer ends as a NACK) or the chip resets
      const al = clock.createAlarm(() => unwedge(null));
      wedge = { i2c, al, clk: r.clk || 0, n: 0 };
      softWedge(true);
      al.schedule(Math.max(1000, r.hold - now()));
      return;
    }
    if (!r.ack) { i2c.completeConnect(false); return; }
    ph = { a: addr, rd: rdm, w: [], n: 0, snap: rdm ? unhex(r.d) : null };
    i2c.completeConnect(true);
  };
  i2c.onWriteByte = (v) => { if (ph) ph.w.push(v); i2c.completeWrite(true); };
  i2c.onReadByte = () => {
    let v = 0xff;
    if (ph && ph.snap) { v = ph.snap[ph.n & 0xff]; ph.n++; }
    i2c.completeRead(v);
  };
  i2c.onStop = () => {
    if (ph) send(flushPhase({ ev: 'i2cstop', t: now() }));
    i2c.completeStop();
  };
}

// Software I2C (zero-length transfers: scan, probes) on the SDA/SCL GPIOs:
// an open-drain bus (a line is low if either side pulls it low) with a target
// that ACKs an address phase when the master says a module answers.
function attachSoftI2c() {
  const sdaN = cfg.sda, sclN = cfg.scl;
  if (!(sdaN >= 0 && sdaN < 30 && sclN >= 0 && sclN < 30)) return;
  const sda = mcu.gpio[sdaN], scl = mcu.gpio[sclN];
  let mSda = false, mScl = false, tSda = false;   // who pulls low
  let lSda = true, lScl = true;
  let st = 'idle', bits = 0, byte = 0, ackPhase = false, rdMode = false;
  let wSda = false;                              // a wedged target holds SDA
  softWedge = (on) => { wSda = on; update(); };
  const update = () => {
    const nSda = !(mSda || tSda || wSda), nScl = !mScl;
    const oSda = lSda, oScl = lScl;
    lSda = nSda; lScl = nScl;
    if (sda.rawInputValue !== nSda) sda.setInputValue(nSda);
    if (scl.rawInputValue !== nScl) scl.setInputValue(nScl);
    if (oScl && nScl && oSda !== nSda) {       // SDA moved while SCL high
      if (!nSda) { st = 'addr'; bits = 0; byte = 0; ackPhase = false; tSda = false; }   // START
      else { st = 'idle'; tSda = false; }                                                // STOP
      return;
    }
    // a bus clear: SCL clocked wedge.clk times in a row with SDA left to
    // the target. Conservative: the soft-I2C STOP write the rp2 port sends
    // after a failed register read (extmod read_mem) drives SDA for its
    // address bits and does not count, though it may free a real target.
    if (wedge && wedge.clk && oScl && !nScl && (wedge.n = mSda ? 0 : wedge.n + 1) >= wedge.clk) {
      unwedge('clocks');                       // the target shifted its byte out: SDA free
      return;
    }
    if (!oScl && nScl) {                       // SCL rising: sample
      if (st === 'addr' || st === 'wdata') {
        if (!ackPhase) { byte = ((byte << 1) | (nSda ? 1 : 0)) & 0xff; bits++; }
      }
    } else if (oScl && !nScl) {                // SCL falling: drive
      if (ackPhase) { ackPhase = false; tSda = false; if (st === 'rdata') tSda = false; update(); return; }
      if ((st === 'addr' || st === 'wdata') && bits === 8) {
        let ack = true;
        if (st === 'addr') {
          rdMode = !!(byte & 1);
          const r = ask({ ev: 'probe', a: byte >> 1, rd: rdMode ? 1 : 0, t: now() });
          ack = !!r.ack;
          st = ack ? (rdMode ? 'rdata' : 'wdata') : 'nack';
        }
        bits = 0; byte = 0;
        if (ack) { ackPhase = true; tSda = true; update(); }
      }
    }
  };
  const pinListener = (which) => (value) => {
    const low = value === 0;   // GPIOPinState.Low: the master drives 0
    if (which === 'sda') mSda = low; else mScl = low;
    update();
  };
  sda.addListener(pinListener('sda'));
  scl.addListener(pinListener('scl'));
  update();
}

// ---- DRDY: the master says the line level and when it next changes ----------
function scheduleDrdy(atNs) {
  if (!drdyAlarm) return;
  const d = atNs - now();
  drdyAlarm.schedule(d > 0 ? d : 1000);
}
function attachDrdy() {
  drdyPin = cfg.drdy_pin ?? -1;
  if (drdyPin < 0) return;
  drdyAlarm = clock.createAlarm(() => {
    const r = ask({ ev: 'drdy', t: now() });
    mcu.gpio[drdyPin].setInputValue(!!r.lvl);
    scheduleDrdy(r.dn);
  });
  mcu.gpio[drdyPin].setInputValue(true);
  drdyAlarm.schedule(1000);
}

// ---- flash: the boot ROM's erase/program routines, emulated ----------------
function romFunc(code) {
  const rom = bootrom;
  const u16 = (a) => rom[a] | (rom[a + 1] << 8);
  let p = u16(0x14);
  for (;;) {
    const c = u16(p), a = u16(p + 2);
    if (c === 0) return 0;
    if (c === code) return a & ~1;
    p += 4;
  }
}
function flashOp() {
  const core = mcu.core;
  const isErase = core.PC === romErase;
  const off = core.registers[0] >>> 0, n = core.registers[1] >>> 0;
  let src = isErase ? 0 : core.registers[1] >>> 0, cnt = isErase ? n : core.registers[2] >>> 0;
  const totalNs = isErase ? Math.ceil(cnt / 4096) * ERASE_NS_PER_SECTOR : Math.ceil(cnt / 256) * PROG_NS_PER_PAGE;
  stats.flashOps++;
  flashOpsSeen++;
  let done = cnt;
  let hit = armed && armed.nth !== undefined && armed.nth !== null && flashOpsSeen > armed.nth;
  if (hit) done = Math.floor(cnt * armed.frac);
  if (isErase) {
    flash.fill(0xff, off, Math.min(off + done, FLASH_SIZE));
  } else {
    for (let i = 0; i < done && off + i < FLASH_SIZE; i++) flash[off + i] &= mcu.core.readUint8(src + i);
  }
  if (cfg.flash_events) send({ ev: 'flash', op: isErase ? 'erase' : 'program', off, n: cnt, t: now() });
  const ns = Math.round(totalNs * (hit ? armed.frac : 1));
  if (isErase) stats.eraseNs += ns; else stats.progNs += ns;
  clock.tick(ns);
  if (hit) {
    cut = { t: now(), kind: 'flash', op: isErase ? 'erase' : 'program', off, n: cnt, done };
    armed = null;
    stopRun = true;
    return;
  }
  core.PC = core.LR & ~1;
}

// ---- a chip: power-up or reset on the current flash --------------------------
function boot(scratch, reason, tGlobal) {
  if (mcu) cycles0 += mcu.core.cycles;
  sim = new Simulator();
  mcu = sim.rp2040;
  clock = sim.clock;
  // the RP2040 timer (ticks_ms) restarts at every reset; start_ticks_ms moves
  // its origin so a run can cross the 2^30 ms ticks wrap early
  clock.nanosCounter = (cfg.start_ticks_ms || 0) * 1e6;
  base = tGlobal - clock.nanos;
  mcu.logger = new ConsoleLogger(LogLevel.Error);
  mcu.loadBootrom(new Uint32Array(bootrom.buffer, bootrom.byteOffset, 4096));
  // share one flash buffer across chips: copy into the new one's array
  if (flash) mcu.flash.set(flash, 0);
  flash = mcu.flash;
  patchUart(mcu, cfg.line_rate);
  const wd = mcu.peripherals[0x40058] || mcu.watchdog;
  if (scratch) for (let i = 0; i < 8; i++) wd.scratchData[i] = scratch[i] >>> 0;
  if (reason !== undefined) wd.reason = reason;
  wd.onWatchdogTrigger = () => {
    pendingReset = { kind: wd.reason === 2 ? 'soft' : 'watchdog', reason: wd.reason };
    stopRun = true;
  };
  for (const n of cfg.pins_high || []) mcu.gpio[n].setInputValue(true);
  txBuf = [[], []];
  uartSt = [];
  attachUart(0); attachUart(1);
  attachI2c();
  attachSoftI2c();
  drdyAlarm = null;
  attachDrdy();
  mcu.core.PC = 0x10000000;
}
let pendingReset = null;

function resetChip(kind, reason) {
  const wd = mcu.peripherals[0x40058] || mcu.watchdog;
  const scratch = Array.from(wd.scratchData);
  const t = now();
  flushTx();
  stats.resets++;
  boot(scratch, reason, t);
  send({ ev: 'reset', kind, t });
}

function flushTx() {
  for (const i of [0, 1]) {
    if (txBuf[i].length) {
      send({ ev: 'tx', u: i, d: hex(txBuf[i]), t: now() });
      txBuf[i].length = 0;
    }
  }
}

// ---- stepping ------------------------------------------------------------------
function run(untilNs) {
  stopRun = false;
  const core = mcu.core;
  for (;;) {
    let limit = untilNs;
    if (armed && armed.at != null && armed.at < limit) limit = armed.at;
    const target = limit - base;
    while (clock.nanos < target && !stopRun) {
      if (core.waiting) {
        let d = clock.nanosToNextAlarm;
        if (d <= 0) d = 1000;
        if (clock.nanos + d > target) d = target - clock.nanos;
        stats.wfeNs += d;
        clock.tick(d);
      } else if (core.PC === romErase || core.PC === romProgram) {
        flashOp();
      } else {
        if (pcEvery && core.cycles >= pcNext) {
          pcNext = core.cycles + pcEvery;
          const pc = core.PC;
          pcHist.set(pc, (pcHist.get(pc) || 0) + 1);
          stats.pcSamples++;
        }
        clock.tick(core.executeInstruction() * NS_PER_CYCLE);
      }
    }
    if (pendingReset) {
      const p = pendingReset;
      pendingReset = null;
      resetChip(p.kind, p.reason);
      continue;
    }
    if (cut) return;
    if (armed && armed.at != null && now() >= armed.at) {
      cut = { t: now(), kind: 'time' };
      armed = null;
      return;
    }
    return;
  }
}

function statsNow() {
  return Object.assign({}, stats, { t: now(), cycles: cycles0 + mcu.core.cycles, chipCycles: mcu.core.cycles,
                                    flashOpsSeen });
}

// ---- command loop ----------------------------------------------------------------
for (;;) {
  const line = readLine();
  if (!line) continue;
  const c = JSON.parse(line);
  switch (c.op) {
    case 'init': {
      cfg = c;
      bootrom = new Uint8Array(fs.readFileSync(c.bootrom));
      const img = new Uint8Array(FLASH_SIZE).fill(0xff);
      if (c.flash_image) img.set(new Uint8Array(fs.readFileSync(c.flash_image)).subarray(0, FLASH_SIZE), 0);
      if (c.firmware) img.set(new Uint8Array(fs.readFileSync(c.firmware)), 0);
      if (c.lfs) img.set(new Uint8Array(fs.readFileSync(c.lfs)), c.lfs_off);
      flash = img;
      romErase = romFunc(0x52 | (0x45 << 8));
      romProgram = romFunc(0x52 | (0x50 << 8));
      boot(c.scratch || null, undefined, c.t0 || 0);
      send({ ev: 'ok', t: now(), rom: [romErase, romProgram] });
      break;
    }
    case 'run': {
      if (c.rx0) { rxQ[0].push(...unhex(c.rx0)); feedRx(0); }
      if (c.rx1) { rxQ[1].push(...unhex(c.rx1)); feedRx(1); }
      cut = null;
      const w0 = process.hrtime.bigint();
      run(c.until);
      stats.runWallNs += Number(process.hrtime.bigint() - w0);
      // a flow-controlled feed tops the FIFO up once per slice too
      if (!cfg.line_rate) { feedRx(0); feedRx(1); }
      flushTx();
      const r = { ev: 'paused', t: now(), rxq: [rxQ[0].length, rxQ[1].length] };
      if (cut) r.cut = cut;
      send(r);
      break;
    }
    case 'arm':
      // a time cut, a flash-op cut, or both (the flash op, else at the time)
      armed = { at: c.at, nth: c.nth, frac: c.frac };
      flashOpsSeen = 0;
      send({ ev: 'ok' });
      break;
    case 'disarm':
      armed = null;
      send({ ev: 'ok' });
      break;
    case 'power_on': {
      // after a cut: a new chip on the same flash; RAM and scratch lost
      rxQ = [[], []];
      boot(null, 0, c.t);
      send({ ev: 'ok', t: now() });
      break;
    }
    case 'reset': {
      // watchdog (timeout) or soft (machine.reset(): a forced watchdog reboot)
      resetChip(c.kind, c.kind === 'soft' ? 2 : 1);
      send({ ev: 'ok', t: now() });
      break;
    }
    case 'scratch': {
      const wd = mcu.peripherals[0x40058] || mcu.watchdog;
      send({ ev: 'ok', scratch: Array.from(wd.scratchData) });
      break;
    }
    case 'dump':
      fs.writeFileSync(c.path, flash.subarray(c.off || 0, (c.off || 0) + (c.n || FLASH_SIZE)));
      send({ ev: 'ok' });
      break;
    case 'load':
      flash.set(new Uint8Array(fs.readFileSync(c.path)), c.off || 0);
      send({ ev: 'ok' });
      break;
    case 'stats':
      send(Object.assign({ ev: 'ok' }, statsNow(), { uart_log: uartLog }));
      break;
    case 'pc_sample':
      pcEvery = c.every || 0;
      pcNext = mcu.core.cycles + pcEvery;
      if (c.clear) pcHist = new Map();
      send({ ev: 'ok' });
      break;
    case 'pc_hist':
      send({ ev: 'ok', hist: Array.from(pcHist.entries()) });
      break;
    case 'quit':
      flushOut();
      process.exit(0);
    default:
      send({ ev: 'error', msg: 'unknown op ' + c.op });
  }
  flushOut();
}
