// `npm run measure:failover -- [runs]`: the patroni daemon group, `runs` times (default 3) for each
// synchronous mode, and a summary of what it measured: seconds from the leader's pod kill to a
// promoted replica and to the first write on it, acknowledged commits lost, seconds for the old
// leader to rejoin and for a point-in-time restore. Needs what the daemon tier needs (root,
// tests/daemons/packages.txt). The figures in docs/data.md come from here.
import { spawnSync } from "child_process";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..");
const runs = Number(process.argv[2] ?? 3);
const MODES = (process.env.MODES ?? "on,off").split(",");

interface Sample {
  promoted: number;
  writes: number;
  lost: number;
  acked: number;
  rejoin: number;
  restore: number;
}

function once(mode: string): Sample | string {
  const r = spawnSync("npx", ["tsx", "scripts/test-daemons.ts", "patroni"], { cwd: ROOT, env: { ...process.env, PATRONI_SYNCHRONOUS: mode }, encoding: "utf8" });
  const out = r.stdout + r.stderr;
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  const s: Sample = {
    promoted: num(/promoted ([\d.]+) s after/),
    writes: num(/writes resumed after ([\d.]+) s/),
    acked: num(/; (\d+) commits acknowledged/),
    lost: num(/\), (\d+) lost/),
    rejoin: num(/rejoined as a replica ([\d.]+) s/),
    restore: num(/promoted in ([\d.]+) s/),
  };
  return r.status === 0 && !Object.values(s).some(Number.isNaN) ? s : `run failed (exit ${r.status}):\n${out.split("\n").slice(-40).join("\n")}`;
}

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const med = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return `min ${s[0].toFixed(1)}  median ${med.toFixed(1)}  max ${s[s.length - 1].toFixed(1)}`;
}

for (const mode of MODES) {
  const samples: Sample[] = [];
  for (let i = 1; i <= runs; i++) {
    const s = once(mode);
    if (typeof s === "string") {
      console.error(`synchronous ${mode}, run ${i}: ${s}`);
      process.exit(1);
    }
    console.log(`synchronous ${mode}, run ${i}: promoted ${s.promoted} s, writes after ${s.writes} s, ${s.lost} of ${s.acked} commits lost, rejoin ${s.rejoin} s, restore ${s.restore} s`);
    samples.push(s);
  }
  console.log(`\nsynchronous ${mode}, ${runs} runs:`);
  console.log(`  promotion after the leader's pod is killed (s): ${stats(samples.map((s) => s.promoted))}`);
  console.log(`  first write on the new leader (s):              ${stats(samples.map((s) => s.writes))}`);
  console.log(`  acknowledged commits lost:                      ${stats(samples.map((s) => s.lost))} (of ${samples.reduce((a, s) => a + s.acked, 0)} in all runs)`);
  console.log(`  old leader rejoined as replica (s):             ${stats(samples.map((s) => s.rejoin))}`);
  console.log(`  point-in-time restore to promotion (s):         ${stats(samples.map((s) => s.restore))}\n`);
}
