// The checks every evaluated stack (real stacks, examples, variants) must pass: schema, namespace,
// Pod Security, references, labels, resources, and every policy of the policy pack. A module, not
// a test file, so importing it never registers tests twice (mocha --parallel loads each file in
// its own worker). The per-object rules are policy/rules.ts, the same code the pack runs.
import { expect } from "chai";
import { POD_SECURITY } from "../components/platform";
import { environmentOf, imageProblems, labelProblems, podSecurityFindings, resourceProblems } from "../policy/rules";
import type { Evaluation } from "./harness";
import { configOf, k8sObjects, ok } from "./harness";
import { podSpecs, priorityProblems, referenceProblems, schemaProblems, secretTaintProblems } from "./checks";
import { runPolicies } from "./policy-harness";

export function objectChecks(name: string, load: () => Promise<Evaluation>): void {
  describe(`${name}: every registered object`, () => {
    it("validates against the Kubernetes OpenAPI schema", async () => {
      const ev = ok(await load());
      const problems: string[] = [];
      for (const { obj } of k8sObjects(ev)) {
        for (const p of await schemaProblems(obj)) problems.push(`${obj.kind} ${obj.metadata?.name}: ${p}`);
      }
      expect(problems).to.deep.equal([]);
    });

    it("passes its namespace's Pod Security level, and every namespace enforces one", async () => {
      const ev = ok(await load());
      const objects = k8sObjects(ev).map(({ obj }) => obj);
      const levels = new Map(objects.filter((o) => o.kind === "Namespace").map((o) => [o.metadata.name, o.metadata.labels["pod-security.kubernetes.io/enforce"]]));
      for (const o of objects.filter((x) => podSpecs(x).length)) expect(levels.get(o.metadata.namespace), `${o.kind} ${o.metadata.name}`).to.be.oneOf(Object.values(POD_SECURITY));
      expect(podSecurityFindings(objects).map((f) => f.message)).to.deep.equal([]);
    });

    it("resolves every reference (its namespace, selectors, named ports, Secret/ConfigMap keys, service accounts, PVCs, routes)", async () => {
      expect(referenceProblems(ok(await load()))).to.deep.equal([]);
    });

    it("carries the recommended app.kubernetes.io labels on workloads and their pods", async () => {
      const ev = ok(await load());
      expect(k8sObjects(ev).flatMap(({ obj }) => labelProblems(obj))).to.deep.equal([]);
    });

    it("labels every object with its stack's environment (what the policies read it from)", async () => {
      const ev = ok(await load());
      const env = configOf(ev).environment;
      const labelled = k8sObjects(ev).filter(({ obj }) => obj.metadata?.labels?.["app.kubernetes.io/instance"]);
      expect(labelled.length).to.be.greaterThan(0);
      for (const { obj } of labelled) expect(environmentOf(obj), `${obj.kind} ${obj.metadata.name}`).to.equal(env);
    });

    it("pins every image (a tag or digest; 'latest' only in dev)", async () => {
      const ev = ok(await load());
      expect(k8sObjects(ev).flatMap(({ obj }) => imageProblems(obj))).to.deep.equal([]);
    });

    it("keeps Pulumi secrets out of every input that is not a credential (previews show field diffs)", async () => {
      expect(secretTaintProblems(ok(await load()))).to.deep.equal([]);
    });

    it("sets resource requests and limits on every container", async () => {
      const ev = ok(await load());
      const containers = k8sObjects(ev).flatMap(({ obj }) => podSpecs(obj).flatMap(({ spec }) => [...(spec.initContainers ?? []), ...spec.containers]));
      expect(containers.length).to.be.greaterThan(0);
      expect(k8sObjects(ev).flatMap(({ obj }) => resourceProblems(obj))).to.deep.equal([]);
    });

    it("gives every pod its tier's PriorityClass: stores and mail > services > workers > observability > batch", async () => {
      const ev = ok(await load());
      expect(priorityProblems(ev, configOf(ev))).to.deep.equal([]);
    });

    it("passes every policy of the policy pack", async () => {
      expect(await runPolicies(ok(await load()))).to.deep.equal([]);
    });
  });
}
