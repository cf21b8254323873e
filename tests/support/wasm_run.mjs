// Runs tests/lib modules on the 32-bit MicroPython WebAssembly port
// (31-bit small ints and boxed floats, like ESP32/RP2040).
// usage: node tests/support/wasm_run.mjs test_a test_b ...
import { loadWithTrees } from "./wasm_load.mjs";

// Same search path as the unix-port run: lib/, tools/ (rbamp_sim), tests.
const heapsize = parseInt(process.env.WASM_HEAP || String(8 * 1024 * 1024));
const { mp, paths } = await loadWithTrees(["lib", "tools", "tests/support", "tests/lib"], heapsize);
const mods = process.argv.slice(2);
const code = `
import sys
sys.path[:0] = ${JSON.stringify(paths)}
import mprun
_ok = mprun.run(${JSON.stringify(mods)})
`;
try {
  mp.runPython(code);
  mp.runPython("import sys\nif not _ok: raise SystemExit(1)");
} catch (e) {
  process.stdout.write("WASM-ERROR " + String(e && e.message || e) + "\n");
  process.exit(1);
}
