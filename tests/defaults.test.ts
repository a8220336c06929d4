// The default stacks keep seed 000's single API: the services list and optional tiers changed
// nothing for dev/staging/prod. Expected names come from seed 000's shape (one email API with its
// ConfigMap, Service, HPA and PDB, plus the worker, beat, Flower outside prod, and Jaeger).
import { expect } from "chai";
import { STACKS, evaluateStack, k8sObjects, objectsOfKind, ok } from "./harness";

/** Objects of the API, by environment: dev adds the NodePort Service, staging/prod the ServiceMonitor (monitoring on). */
function expectedApiObjects(stack: string): string[] {
  const common = [
    "Deployment api",
    "Service api",
    "HorizontalPodAutoscaler api",
    "PodDisruptionBudget api",
    "ConfigMap api-config",
    "ServiceAccount api",
    "NetworkPolicy allow-api",
  ];
  return [...common, ...(stack === "dev" ? ["Service api-lb"] : ["ServiceMonitor api"])].sort();
}

// blackbox-exporter: the mail tier's per-port probes, where monitoring is on (staging, prod).
const EXPECTED_DEPLOYMENTS: Record<string, string[]> = {
  dev: ["api", "worker-default", "beat", "flower", "jaeger"],
  staging: ["api", "worker-default", "beat", "flower", "jaeger", "blackbox-exporter"],
  prod: ["api", "worker-default", "beat", "jaeger", "blackbox-exporter"],
};

describe("default stacks: still exactly one HTTP service, api, with the same objects", () => {
  for (const stack of STACKS) {
    it(`${stack}: the api's objects and the stack's Deployments are seed 000's`, async () => {
      const ev = ok(await evaluateStack(stack));
      const apiObjects = k8sObjects(ev)
        .map(({ obj }) => `${obj.kind} ${obj.metadata.name}`)
        .filter((x) => /^\w+ (allow-)?api(-config|-lb)?$/.test(x));
      expect(apiObjects.sort()).to.deep.equal(expectedApiObjects(stack));
      expect(objectsOfKind(ev, "Deployment").map((d) => d.metadata.name).sort()).to.deep.equal([...EXPECTED_DEPLOYMENTS[stack]].sort());
      const publicRoutes = objectsOfKind(ev, "Ingress")
        .filter((i) => i.metadata.name.endsWith("-public"))
        .flatMap((i) => i.spec.rules[0].http.paths.map((p: { path: string; backend: { service: { name: string } } }) => `${p.path} -> ${p.backend.service.name}`));
      expect(publicRoutes.sort()).to.deep.equal(["/ -> api", "/api -> api"]);
    });
  }
});
