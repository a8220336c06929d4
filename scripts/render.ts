// Offline render: `npm run render -- <stack> [dir]` writes the Kubernetes objects the stack would
// create, as YAML (Secret values masked), using the same mock harness as the tests. No cluster,
// no Pulumi CLI. Review the files or feed them to kubeconform/kube-linter.
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { evaluate, k8sObjects } from "../tests/harness";

const MASK = "<generated: masked>";

export function maskSecret(obj: Record<string, unknown>): Record<string, unknown> {
  if (obj.kind !== "Secret") return obj;
  const mask = (data: unknown) => (data ? Object.fromEntries(Object.keys(data as object).map((k) => [k, MASK])) : undefined);
  return { ...obj, ...(obj.data ? { data: mask(obj.data) } : {}), ...(obj.stringData ? { stringData: mask(obj.stringData) } : {}) };
}

/** Writes one file per object plus _all.yaml and _outputs.yaml; returns the object count. */
export async function render(stack: string, dir: string, file?: string): Promise<number> {
  const ev = await evaluate({ stack, file });
  if (ev.error) throw ev.error;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const objects = k8sObjects(ev).map(({ obj }) => maskSecret(obj));
  for (const obj of objects) {
    const meta = obj.metadata as { name: string; namespace?: string };
    const file = path.join(dir, `${meta.namespace ?? "_cluster"}--${String(obj.kind).toLowerCase()}--${meta.name}.yaml`);
    fs.writeFileSync(file, stringify(obj));
  }
  fs.writeFileSync(path.join(dir, "_all.yaml"), objects.map((o) => stringify(o)).join("---\n"));
  fs.writeFileSync(path.join(dir, "_outputs.yaml"), stringify(Object.fromEntries(Object.entries(ev.outputs).map(([k, v]) => [k, ev.secretOutputs.includes(k) ? MASK : v]))));
  return objects.length;
}

async function main(): Promise<void> {
  const [stack, dir = path.join("rendered", stack ?? "")] = process.argv.slice(2);
  if (!stack) {
    console.error("usage: npm run render -- <stack> [dir]   (stack: dev, staging, prod, or any Pulumi.<stack>.yaml)");
    process.exit(2);
  }
  const count = await render(stack, dir);
  console.log(`${count} objects for stack ${stack} written to ${dir}/ (secret values masked)`);
}

if (require.main === module) {
  main().catch((e: Error) => {
    console.error(e.message);
    process.exit(1);
  });
}
