// The manifest diff the pull-request workflow comments: two offline renders compared per object.
// Expectations come from evaluating both configurations and comparing objects directly.
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { isDeepStrictEqual } from "util";
import { stringify } from "yaml";
import type { StackDiff } from "../scripts/manifest-diff";
import { MARKER, diffObjects, diffStacks, toMarkdown, toText } from "../scripts/manifest-diff";
import { maskSecret, render } from "../scripts/render";
import type { Evaluation } from "./harness";
import { PROJECT, configOf, evaluate, generatedValues, k8sObjects, ok, stackValues } from "./harness";

const keyOf = (o: any) => `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ""}${o.metadata.name}`;

function objectsOf(ev: Evaluation): Map<string, any> {
  return new Map(k8sObjects(ev).map(({ obj }) => [keyOf(obj), maskSecret(obj)]));
}

describe("manifest diff (npm run manifest-diff)", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "manifest-diff-"));
  const redisCpu = "1500m";
  let base: Evaluation;
  let head: Evaluation;
  let diffs: StackDiff[];

  before(async () => {
    // The change under review: a new CPU limit for Redis, and monitoring switched off.
    const values = stackValues("Pulumi.prod.yaml");
    const redis = structuredClone((values[`${PROJECT}:redis`] ?? {}) as any);
    redis.resources = structuredClone(configOf("prod").redis.resources);
    redis.resources.limits.cpu = redisCpu;
    const file = path.join(root, "Pulumi.prod-changed.yaml");
    fs.writeFileSync(file, stringify({ config: { ...values, [`${PROJECT}:redis`]: redis, [`${PROJECT}:monitoring`]: { enabled: false } } }));
    await render("prod", path.join(root, "base", "prod"));
    await render("prod", path.join(root, "head", "prod"), file);
    base = ok(await evaluate({ stack: "prod" }));
    head = ok(await evaluate({ stack: "prod", file }));
    diffs = diffStacks(path.join(root, "base"), path.join(root, "head"));
  });

  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it("lists exactly the objects added, removed and changed between the two renders", () => {
    const [d] = diffs;
    expect(d.stack).to.equal("prod");
    const a = objectsOf(base);
    const b = objectsOf(head);
    const expected = {
      added: [...b.keys()].filter((k) => !a.has(k)),
      removed: [...a.keys()].filter((k) => !b.has(k)),
      changed: [...a.keys()].filter((k) => b.has(k) && !isDeepStrictEqual(a.get(k), b.get(k))),
    };
    for (const change of ["added", "removed", "changed"] as const) {
      expect(expected[change].length, `${change} (expected)`).to.be.greaterThan(0);
      expect(d.changes.filter((c) => c.change === change && c.key !== "stack outputs").map((c) => c.key).sort(), change).to.deep.equal(expected[change].sort());
    }
    expect(expected.removed.some((k) => k.startsWith("ServiceMonitor "))).to.equal(true);
  });

  it("shows a change as the changed lines with a little context, not the whole object", () => {
    const [d] = diffs;
    const redis = d.changes.find((c) => c.key === keyOf(k8sObjects(base).find(({ obj }) => obj.kind === "StatefulSet" && obj.metadata.name === "redis")!.obj))!;
    expect(redis.change).to.equal("changed");
    const old = configOf("prod").redis.resources.limits.cpu;
    expect(redis.lines.some((l) => /^-\s+cpu: /.test(l) && l.includes(old))).to.equal(true);
    expect(redis.lines).to.satisfy((ls: string[]) => ls.some((l) => /^\+\s+cpu: /.test(l) && l.includes(redisCpu)));
    expect(redis.lines[0]).to.match(/^@@ -\d+,\d+ \+\d+,\d+ @@$/);
    const full = stringify(k8sObjects(base).find(({ obj }) => obj.kind === "StatefulSet" && obj.metadata.name === "redis")!.obj).split("\n").length;
    expect(redis.lines.length).to.be.lessThan(full / 2);
  });

  it("never prints a generated value, and masks Secret values even from an unmasked render", () => {
    const [d] = diffs;
    const text = toText([d]) + toMarkdown([d]);
    for (const v of [...generatedValues(base), ...generatedValues(head)]) expect(text).to.not.include(v);
    const secret = (data: Record<string, string>) => ({ apiVersion: "v1", kind: "Secret", metadata: { name: "s", namespace: "n" }, stringData: data });
    const [change] = diffObjects(new Map([["Secret n/s", secret({ A: "old-s3cret" })]]), new Map([["Secret n/s", secret({ A: "new-s3cret", B: "added-s3cret" })]]));
    const shown = change.lines.join("\n");
    expect(shown).to.not.match(/s3cret/);
    expect(shown).to.match(/^\+\s+B: /m);
  });

  it("renders one collapsed diff per object under a marker, and names every object when it must cut diffs to fit a comment", () => {
    // Without a size limit every change is a collapsed diff (the default limit is tested below).
    const md = toMarkdown(diffs, Number.MAX_SAFE_INTEGER);
    expect(md.startsWith(`${MARKER}\n`)).to.equal(true);
    const changes = diffs.flatMap((d) => d.changes);
    expect(md.match(/<details>/g)).to.have.length(changes.length);
    const [d] = diffs;
    const n = (c: string) => d.changes.filter((x) => x.change === c).length;
    expect(md).to.include(`### prod: ${n("changed")} changed, ${n("added")} added, ${n("removed")} removed`);
    const small = toMarkdown(diffs, 3000);
    expect(small.length).to.be.lessThan(3000 + changes.length * 200);
    for (const c of changes) expect(small).to.include(c.key);
    expect(small).to.include("left out");
  });

  it("a stack the base branch cannot render shows every object as added", () => {
    const [d] = diffStacks(path.join(root, "nowhere"), path.join(root, "head"), ["prod"]);
    expect(d.missing).to.equal("base");
    expect(d.changes.every((c) => c.change === "added")).to.equal(true);
    expect(d.changes.length).to.equal(k8sObjects(head).length + 1); // and the stack outputs
    expect(toMarkdown([d])).to.include("every object shows as added");
  });

  it("keeps content that holds backticks inside its code block", () => {
    const cm = (v: string) => ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c", namespace: "n" }, data: { "README.md": v } });
    const ticks = [{ stack: "x", changes: diffObjects(new Map([["ConfigMap n/c", cm("a")]]), new Map([["ConfigMap n/c", cm("```sh\nb\n```")]])) }];
    expect(toMarkdown(ticks)).to.include("````diff");
  });
});
