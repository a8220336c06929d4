// How the program scales with the number of workloads: evaluation time under mocks, registered
// resources, Kubernetes objects and the largest object, for 0, 50 and 200 extra HTTP services
// (each routed, with an egress destination) and as many extra worker pools, on the prod stack.
// Usage: npm run bench:scale [-- --runs 3 --sizes 0,50,200 --stack prod]
// A measurement to read, not a timed test: the figures depend on the machine (see README).
import type { Evaluation } from "../tests/harness";
import { evaluate, k8sObjects } from "../tests/harness";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const RUNS = Number(arg("runs", "3"));
const SIZES = arg("sizes", "0,50,200").split(",").map(Number);
const STACK = arg("stack", "prod");
/** Kubernetes' own limits: 256 KiB of annotations per object, about 1.5 MiB per object in etcd; the target is 64 KiB. */
const TARGET_BYTES = 64 * 1024;

type Shape = "services" | "pools" | "both";

function settings(shape: Shape, n: number): Record<string, unknown> {
  const set: Record<string, unknown> = {};
  const pad = (i: number) => String(i).padStart(3, "0");
  for (let i = 0; i < n; i++) {
    if (shape !== "pools") {
      set[`services.svc-${pad(i)}`] = {
        image: `registry.example.com/svc-${pad(i)}:1.0.0`,
        path: `/svc-${pad(i)}`,
        dependsOn: ["postgres", "redis", "jaeger"],
        egress: { partner: { internet: true, ports: [443] } },
      };
    }
    if (shape !== "services") set[`workers.pools.pool-${pad(i)}`] = { queues: [`queue-${pad(i)}`] };
  }
  return set;
}

interface Sample {
  ms: number;
  resources: number;
  objects: number;
  largest: { bytes: number; what: string };
  totalBytes: number;
}

function sizes(ev: Evaluation): Pick<Sample, "objects" | "largest" | "totalBytes"> {
  let largest = { bytes: 0, what: "" };
  let totalBytes = 0;
  const objects = k8sObjects(ev);
  for (const { obj } of objects) {
    const bytes = Buffer.byteLength(JSON.stringify(obj));
    totalBytes += bytes;
    if (bytes > largest.bytes) largest = { bytes, what: `${obj.kind} ${obj.metadata?.name}` };
  }
  return { objects: objects.length, largest, totalBytes };
}

async function sample(shape: Shape, n: number): Promise<Sample> {
  const times: number[] = [];
  let ev: Evaluation | undefined;
  for (let r = 0; r < RUNS; r++) {
    const t = process.hrtime.bigint();
    ev = await evaluate({ stack: STACK, set: settings(shape, n) });
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (ev.error) throw ev.error;
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], resources: ev!.resources.length, ...sizes(ev!) };
}

const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;

async function main(): Promise<void> {
  await evaluate({ stack: STACK }); // module loading and JIT warm-up, not counted
  console.log(`stack ${STACK}, median of ${RUNS} evaluations each\n`);
  console.log("| extra | eval (ms) | resources | k8s objects | largest object | all objects |");
  console.log("|---|---|---|---|---|---|");
  const base = await sample("both", 0);
  const row = (label: string, s: Sample) =>
    console.log(`| ${label} | ${s.ms.toFixed(0)} | ${s.resources} | ${s.objects} | ${kib(s.largest.bytes)} (${s.largest.what}) | ${kib(s.totalBytes)} |`);
  row("none", base);
  const perUnit: string[] = [];
  let overTarget = false;
  for (const shape of ["services", "pools", "both"] as const) {
    for (const n of SIZES.filter((x) => x > 0)) {
      const s = await sample(shape, n);
      row(shape === "both" ? `${n} services + ${n} pools` : `${n} ${shape}`, s);
      if (s.largest.bytes > TARGET_BYTES) overTarget = true;
      if (n === Math.max(...SIZES) && shape !== "both") {
        const unit = shape === "services" ? "service" : "pool";
        perUnit.push(`per ${unit} (at ${n}): ${((s.ms - base.ms) / n).toFixed(1)} ms, ${((s.resources - base.resources) / n).toFixed(1)} resources, ${((s.objects - base.objects) / n).toFixed(1)} objects`);
      }
    }
  }
  console.log(`\n${perUnit.join("\n")}`);
  console.log(`largest object ${overTarget ? "EXCEEDS" : "stays under"} ${kib(TARGET_BYTES)}`);
  if (overTarget) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
