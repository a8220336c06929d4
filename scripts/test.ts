// `npm test`: type-check and lint side by side (one core each), then the mocha suite (itself parallel
// over two workers); every step runs even when an earlier one fails, with timings and a closing count.
// Fails if any step fails.
import { spawn } from "child_process";
import { existsSync } from "fs";
import { join } from "path";

const STEPS: [string, string[]][] = [
  ["tsc (strict type check)", ["tsc", "--noEmit", "-p", "."]],
  ["eslint", ["eslint", "."]],
  ["mocha (unit tests under Pulumi mocks)", ["mocha"]],
];

function run(cmd: string[]): Promise<{ code: number; output: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    // A larger young generation halves GC time in these allocation-heavy steps (measured: scripts/measure.ts).
    const nodeOptions = `${process.env.NODE_OPTIONS ?? ""} --max-semi-space-size=64`.trim();
    const child = spawn("npx", ["--no-install", ...cmd], { env: { ...process.env, FORCE_COLOR: "0", NODE_OPTIONS: nodeOptions } });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("close", (code) => resolve({ code: code ?? 1, output, ms: Date.now() - started }));
  });
}

async function main(): Promise<void> {
  // The policy pack is its own package; without its dependencies every step fails on a missing module.
  if (!existsSync(join(__dirname, "..", "policy", "node_modules", "@pulumi", "policy"))) {
    console.error("policy/ has no node_modules: run `npm ci --ignore-scripts --prefix policy` first (README: The two commands)");
    process.exit(1);
  }
  const started = Date.now();
  // Phase 1: tsc and eslint together; phase 2: mocha alone (it already uses both cores).
  const results = [...(await Promise.all(STEPS.slice(0, 2).map(([, cmd]) => run(cmd)))), await run(STEPS[2][1])];
  let failed = 0;
  results.forEach((r, i) => {
    console.log(`\n=== ${STEPS[i][0]}: ${r.code === 0 ? "ok" : `FAILED (exit ${r.code})`} in ${(r.ms / 1000).toFixed(1)} s`);
    const text = r.output.split("\n").filter((l) => !l.startsWith("npm warn")).join("\n").trim();
    if (text) console.log(text);
    if (r.code !== 0) failed++;
  });
  // The suite's own count, as a plain closing line: "mocha: N passed, M failed".
  const mocha = results[STEPS.length - 1].output;
  const count = (word: string) => Number(new RegExp(`(\\d+) ${word}`).exec(mocha)?.[1] ?? 0);
  console.log(`\nsteps: ${STEPS.length - failed} of ${STEPS.length} ok in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`mocha: ${count("passing")} passed, ${count("failing")} failed`);
  process.exit(failed ? 1 : 0);
}

void main();
