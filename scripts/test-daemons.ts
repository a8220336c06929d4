// `npm run test:daemons [group ...]`: the daemon tier. Every group (tests/daemons/<group>.test.ts)
// runs the rendered configuration with the real server programs from Debian's packages, in its own
// mocha process, four at a time (DAEMONS_JOBS), longest first; the time per group is printed. The
// tier refuses to start, naming what is missing, without its packages or without root (namespaces
// need it), and it fails when a group runs no test or skips one: it never passes without running.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..");
const DIR = path.join(ROOT, "tests", "daemons");
// A group waits much of its time on timers (failure detection, elections, retries): two at a time
// left the cores idle about half the time, four keep two cores busy (the README has the figures). Every group has
// its own namespaces, bridge, resolver and files (tests/daemons/lib/sandbox.ts), so groups running
// side by side never share a name or port.
const JOBS = Number(process.env.DAEMONS_JOBS ?? 4);

/**
 * Seconds per group in a full run, four at a time (README): the tier lasts as long as its busiest
 * slot, so the long groups start first and the short ones fill the gaps. A group not listed (a new
 * one) starts first of all: its length is unknown.
 */
const SECONDS: Record<string, number> = { patroni: 125, "mail-abuse": 112, sentinel: 102, "mail-variants": 93, mail: 90, backups: 69, "patroni-import": 55, postgres: 43, redis: 30, smoke: 25, nginx: 9 };

function longestFirst(groups: string[]): string[] {
  return [...groups].sort((a, b) => (SECONDS[b] ?? Infinity) - (SECONDS[a] ?? Infinity) || a.localeCompare(b));
}

function prerequisites(): string[] {
  const problems: string[] = [];
  const packages = fs
    .readFileSync(path.join(DIR, "packages.txt"), "utf8")
    .split("\n")
    .filter((l) => l.trim() && !l.trim().startsWith("#"))
    .map((l) => l.trim().split(/\s+/)[0]);
  const missing = packages.filter((p) => !/install ok installed/.test(spawnSync("dpkg-query", ["-W", "-f=${Status}", p], { encoding: "utf8" }).stdout ?? ""));
  if (missing.length) problems.push(`missing Debian packages: ${missing.join(" ")} (install them: sudo scripts/install-daemons.sh)`);
  if (process.getuid?.() !== 0) problems.push("must run as root: each pod is a network, mount and PID namespace");
  return problems;
}

interface Outcome {
  group: string;
  code: number;
  ms: number;
  passing: number;
  failing: number;
  pending: number;
  output: string;
}

function runGroup(group: string): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn("npx", ["--no-install", "mocha", "--config", path.join(DIR, ".mocharc.json"), path.join(DIR, `${group}.test.ts`)], {
      cwd: ROOT,
      env: { ...process.env, FORCE_COLOR: "0" },
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("close", (code) => {
      const count = (word: string) => Number(new RegExp(`(\\d+) ${word}`).exec(output)?.[1] ?? 0);
      resolve({ group, code: code ?? 1, ms: Date.now() - started, passing: count("passing"), failing: count("failing"), pending: count("pending"), output });
    });
  });
}

async function main(): Promise<void> {
  const problems = prerequisites();
  if (problems.length) {
    console.error(`daemon tier cannot run:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    process.exit(1);
  }
  const all = fs.readdirSync(DIR).filter((f) => f.endsWith(".test.ts")).map((f) => f.replace(/\.test\.ts$/, "")).sort();
  const asked = process.argv.slice(2);
  const unknown = asked.filter((g) => !all.includes(g));
  if (unknown.length) {
    console.error(`unknown group(s) ${unknown.join(", ")}; groups: ${all.join(", ")}`);
    process.exit(2);
  }
  if (!Number.isInteger(JOBS) || JOBS < 1) {
    console.error(`DAEMONS_JOBS must be a whole number of at least 1, not ${process.env.DAEMONS_JOBS}`);
    process.exit(2);
  }
  const groups = asked.length ? asked : all;
  const started = Date.now();
  const queue = longestFirst(groups);
  console.log(`daemon tier: ${groups.length} group(s), ${Math.min(JOBS, groups.length)} at a time, in this order: ${queue.join(", ")}`);
  const outcomes: Outcome[] = [];
  await Promise.all(
    Array.from({ length: Math.min(JOBS, queue.length) }, async () => {
      for (let g = queue.shift(); g; g = queue.shift()) {
        const o = await runGroup(g);
        outcomes.push(o);
        console.log(`\n=== ${o.group}: ${verdict(o)} in ${(o.ms / 1000).toFixed(1)} s\n${o.output.trim()}`);
      }
    }),
  );
  console.log("\ndaemon groups:");
  for (const o of outcomes.sort((a, b) => a.group.localeCompare(b.group))) {
    console.log(`  ${o.group.padEnd(12)} ${(o.ms / 1000).toFixed(1).padStart(6)} s  ${o.passing} passed, ${o.failing} failed${o.pending ? `, ${o.pending} skipped` : ""}`);
  }
  const failed = outcomes.filter((o) => verdict(o) !== "ok");
  console.log(`daemon tier: ${outcomes.length - failed.length} of ${outcomes.length} groups ok in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exit(failed.length ? 1 : 0);
}

/** ok only with at least one test run, none failed and none skipped. */
function verdict(o: Outcome): string {
  if (o.code !== 0 || o.failing) return `FAILED (exit ${o.code})`;
  if (o.passing === 0) return "FAILED (no test ran)";
  if (o.pending) return `FAILED (${o.pending} skipped)`;
  return "ok";
}

void main();
