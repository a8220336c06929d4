// Measures what issue #2 names: evaluation time of one stack under mocks (cold and warm) and
// the wall time of the full test command. Usage: npx tsx scripts/measure.ts [--no-suite]
import { execSync } from "child_process";
import { STACKS, evaluate } from "../tests/harness";

async function timeStack(stack: string): Promise<number> {
  const t = process.hrtime.bigint();
  const ev = await evaluate({ stack });
  if (ev.error) throw ev.error;
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function main(): Promise<void> {
  const t0 = process.hrtime.bigint();
  await import("@pulumi/kubernetes"); // module loading is paid once per process, reported apart
  console.log(`load @pulumi/kubernetes: ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0)} ms`);
  for (const stack of STACKS) {
    const runs: number[] = [];
    for (let i = 0; i < 5; i++) runs.push(await timeStack(stack));
    const sorted = [...runs].sort((a, b) => a - b);
    console.log(`evaluate ${stack}: first ${runs[0].toFixed(0)} ms, median of 5 ${sorted[2].toFixed(0)} ms, max ${sorted[4].toFixed(0)} ms`);
  }
  if (!process.argv.includes("--no-suite")) {
    const t = process.hrtime.bigint();
    execSync("npm test", { stdio: "ignore" });
    console.log(`npm test (tsc + eslint + mocha), wall: ${(Number(process.hrtime.bigint() - t) / 1e9).toFixed(1)} s`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
