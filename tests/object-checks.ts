// The checks every evaluated stack (real stacks, examples, variants) must pass: schema, namespace,
// Pod Security, references, labels, resources. A module, not a test file, so importing it never
// registers tests twice (mocha --parallel loads each file in its own worker).
import { expect } from "chai";
import { POD_SECURITY } from "../components/platform";
import type { Evaluation } from "./harness";
import { k8sObjects, ok } from "./harness";
import { isNamespaced, podSecurityViolations, podSpecs, referenceProblems, schemaProblems, secretTaintProblems } from "./checks";

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

    it("names its namespace explicitly when namespaced, and only known namespaces", async () => {
      const ev = ok(await load());
      const namespaces = new Set(k8sObjects(ev).filter(({ obj }) => obj.kind === "Namespace").map(({ obj }) => obj.metadata.name));
      for (const { obj } of k8sObjects(ev)) {
        if (!isNamespaced(obj)) continue;
        expect(obj.metadata?.namespace, `${obj.kind} ${obj.metadata?.name}`).to.be.a("string");
        expect(namespaces.has(obj.metadata.namespace), `${obj.kind} ${obj.metadata.name} in ${obj.metadata.namespace}`).to.equal(true);
      }
    });

    it("passes its namespace's Pod Security level", async () => {
      const ev = ok(await load());
      const levels = new Map(k8sObjects(ev).filter(({ obj }) => obj.kind === "Namespace").map(({ obj }) => [obj.metadata.name, obj.metadata.labels["pod-security.kubernetes.io/enforce"]]));
      const problems: string[] = [];
      for (const { obj } of k8sObjects(ev)) {
        for (const { spec } of podSpecs(obj)) {
          const level = levels.get(obj.metadata.namespace);
          expect(level, `${obj.kind} ${obj.metadata.name}`).to.be.oneOf(Object.values(POD_SECURITY));
          for (const v of podSecurityViolations(spec, level)) problems.push(`${obj.kind} ${obj.metadata.name}: ${v}`);
        }
      }
      expect(problems).to.deep.equal([]);
    });

    it("resolves every reference (selectors, named ports, Secret/ConfigMap keys, service accounts, PVCs, routes)", async () => {
      expect(referenceProblems(ok(await load()))).to.deep.equal([]);
    });

    it("carries the recommended app.kubernetes.io labels on workloads and their pods", async () => {
      const ev = ok(await load());
      for (const { obj } of k8sObjects(ev)) {
        for (const { labels } of podSpecs(obj)) {
          for (const key of ["name", "instance", "component", "part-of", "managed-by"]) {
            expect(labels, `${obj.kind} ${obj.metadata.name} pod label ${key}`).to.have.property(`app.kubernetes.io/${key}`);
            expect(obj.metadata.labels ?? {}, `${obj.kind} ${obj.metadata.name} label ${key}`).to.have.property(`app.kubernetes.io/${key}`);
          }
        }
      }
    });

    it("keeps Pulumi secrets out of every input that is not a credential (previews show field diffs)", async () => {
      expect(secretTaintProblems(ok(await load()))).to.deep.equal([]);
    });

    it("sets resource requests and limits on every container", async () => {
      const ev = ok(await load());
      for (const { obj } of k8sObjects(ev)) {
        for (const { spec } of podSpecs(obj)) {
          for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
            expect(c.resources?.requests, `${obj.metadata.name}/${c.name}`).to.include.keys("cpu", "memory");
            expect(c.resources?.limits, `${obj.metadata.name}/${c.name}`).to.include.keys("cpu", "memory");
          }
        }
      }
    });
  });
}
