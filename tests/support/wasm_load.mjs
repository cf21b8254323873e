// Loads the 32-bit MicroPython WebAssembly port with folders of this repo
// copied into its in-memory filesystem (shared by the test runner and the
// benchmarks). Returns { mp, paths } with paths ready for sys.path.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export async function loadWithTrees(trees, heapsize) {
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
  try { mp.FS.mkdir("/t"); } catch (e) { /* exists */ }
  const paths = [];
  for (const t of trees) {
    const d = "/t/" + t.replace(/\//g, "_");
    copyTree(path.join(root, t), d);
    paths.push(d);
  }
  return { mp, paths };
}
