// Runs tools/bench/energy_mp.py on the 32-bit MicroPython WebAssembly port
// (31-bit small ints, boxed floats: the ESP32/RP2040 object model).
// usage: node tools/bench/energy_wasm.mjs "day cost"
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const mp = await loadMicroPython({
  heapsize: 8 * 1024 * 1024,
  stdout: (l) => process.stdout.write(l + "\n"),
  stderr: (l) => process.stderr.write(l + "\n"),
});

function copyTree(src, dst) {
  try { mp.FS.mkdir(dst); } catch (e) { /* exists */ }
  for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
    if (ent.name === "__pycache__" || ent.name.startsWith(".")) continue;
    const s = path.join(src, ent.name), d = dst + "/" + ent.name;
    if (ent.isDirectory()) copyTree(s, d);
    else if (ent.name.endsWith(".py")) mp.FS.writeFile(d, fs.readFileSync(s));
  }
}
try { mp.FS.mkdir("/b"); } catch (e) {}
const paths = [];
for (const t of ["lib", "tools"]) {
  const d = "/b/" + t;
  copyTree(path.join(root, t), d);
  paths.push(d);
}
paths.push("/b/tools/bench");
const what = process.argv[2] || "day cost";
mp.runPython(`
import sys
sys.path[:0] = ${JSON.stringify(paths)}
import energy_mp
energy_mp.main(${JSON.stringify(what)})
`);
