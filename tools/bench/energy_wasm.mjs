// Runs tools/bench/energy_mp.py on the 32-bit MicroPython WebAssembly port
// (31-bit small ints, boxed floats: the ESP32/RP2040 object model).
// usage: node tools/bench/energy_wasm.mjs "day cost"
import { loadWithTrees } from "../../tests/support/wasm_load.mjs";

const { mp, paths } = await loadWithTrees(["lib", "tools", "tools/bench"], 8 * 1024 * 1024);
const what = process.argv[2] || "day cost";
mp.runPython(`
import sys
sys.path[:0] = ${JSON.stringify(paths)}
import energy_mp
energy_mp.main(${JSON.stringify(what)})
`);
