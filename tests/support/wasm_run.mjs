// Runs tests/lib modules on the 32-bit MicroPython WebAssembly port
// (31-bit small ints and boxed floats, like ESP32/RP2040).
// usage: node tests/support/wasm_run.mjs test_a test_b ...
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// Same search path as the unix-port run: lib/, tools/ (rbamp_sim), tests.
const trees = ["lib", "tools", "tests/support", "tests/lib"];
const heapsize = parseInt(process.env.WASM_HEAP || String(8 * 1024 * 1024));
let out = [];
const mp = await loadMicroPython({
  heapsize,
  stdout: (l) => process.stdout.write(l + "\n"),
  stderr: (l) => process.stderr.write(l + "\n"),
});

function copyTree(src, dst) {
  try { mp.FS.mkdir(dst); } catch (e) { /* exists */ }
  for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
    if (ent.name === "__pycache__" || ent.name.startsWith(".")) continue;
    const s = path.join(src, ent.name), d = dst + "/" + ent.name;
    if (ent.isDirectory()) copyTree(s, d);
    else if (ent.name.endsWith(".py") || ent.name.endsWith(".csv")) mp.FS.writeFile(d, fs.readFileSync(s));
  }
}
const paths = [];
for (const t of trees) {
  const d = "/t/" + t.replace(/\//g, "_");
  try { mp.FS.mkdir("/t"); } catch (e) {}
  copyTree(path.join(root, t), d);
  paths.push(d);
}
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
