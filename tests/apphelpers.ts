// Shared by tests/api.test.ts and tests/workers.test.ts: the validated config an evaluation ran
// with (expectations come from it, not from the output), schema validation of registered objects,
// and small pod-spec queries.
import { parseConfig } from "../config/loader";
import type { PlatformConfig } from "../config/schema";
import { rootSchema } from "../config/schema";
import { PROJECT, stackValues } from "./harness";
import type { Evaluation, K8sObject } from "./harness";

/** The typed config of an evaluation (same merge and validation as the program). */
export function configOf(ev: Evaluation): PlatformConfig {
  const raw: Record<string, unknown> = {};
  // Keys outside the schema were secret config (the program refuses them in plain text).
  const secretKeys = new Set<string>();
  for (const [k, v] of Object.entries(ev.config)) {
    if (!k.startsWith(`${PROJECT}:`)) continue;
    const name = k.slice(PROJECT.length + 1);
    if (!(name in rootSchema.shape)) {
      secretKeys.add(name);
      continue;
    }
    try {
      raw[name] = JSON.parse(v);
    } catch {
      raw[name] = v;
    }
  }
  return parseConfig(raw, { stack: ev.stack, secretKeys });
}

/** The typed config of a stack file, without evaluating the program (for building tests per pool). */
export function stackConfig(stack: string): PlatformConfig {
  const raw = Object.fromEntries(Object.entries(stackValues(`Pulumi.${stack}.yaml`)).map(([k, v]) => [k.slice(PROJECT.length + 1), v]));
  return parseConfig(raw, { stack });
}

 
const MODELS: Record<string, () => Promise<any>> = {
  Deployment: async () => (await import("kubernetes-models/apps/v1/Deployment")).Deployment,
  Service: async () => (await import("kubernetes-models/v1/Service")).Service,
  ConfigMap: async () => (await import("kubernetes-models/v1/ConfigMap")).ConfigMap,
  HorizontalPodAutoscaler: async () => (await import("kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler")).HorizontalPodAutoscaler,
  PodDisruptionBudget: async () => (await import("kubernetes-models/policy/v1/PodDisruptionBudget")).PodDisruptionBudget,
};

/** Validates an object against the Kubernetes OpenAPI schema (throws with the failing path). */
export async function validateK8s(obj: K8sObject): Promise<void> {
  const load = MODELS[obj.kind];
  if (!load) throw new Error(`no model for ${obj.kind}`);
  const Model = await load();
  new Model(obj).validate();
}

export function podSpec(deployment: K8sObject): K8sObject {
  return deployment.spec.template.spec;
}

export function container(deployment: K8sObject, name?: string): K8sObject {
  const cs = podSpec(deployment).containers;
  return name ? cs.find((c: K8sObject) => c.name === name) : cs[0];
}

export function envNamed(c: K8sObject, name: string): K8sObject | undefined {
  return (c.env ?? []).find((e: K8sObject) => e.name === name);
}

/** Every (name -> matchLabels) pair of selector ⊆ labels. */
export function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The restricted profile as a container must show it. */
export function assertRestricted(expect: Chai.ExpectStatic, deployment: K8sObject): void {
  const spec = podSpec(deployment);
  expect(spec.securityContext.runAsNonRoot).to.equal(true);
  expect(spec.securityContext.seccompProfile.type).to.equal("RuntimeDefault");
  expect(spec.automountServiceAccountToken).to.equal(false);
  for (const c of spec.containers) {
    expect(c.securityContext.allowPrivilegeEscalation, c.name).to.equal(false);
    expect(c.securityContext.readOnlyRootFilesystem, c.name).to.equal(true);
    expect(c.securityContext.capabilities.drop, c.name).to.deep.equal(["ALL"]);
    expect(c.securityContext.runAsNonRoot, c.name).to.equal(true);
    const tmp = c.volumeMounts.find((m: K8sObject) => m.mountPath === "/tmp");
    expect(tmp, `${c.name} /tmp`).to.exist;
    expect(spec.volumes.find((v: K8sObject) => v.name === tmp.name).emptyDir, `${c.name} /tmp emptyDir`).to.exist;
  }
}

/** Same canonical form the program hashes (keys sorted). */
export function sortedJson(data: Record<string, string>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(data).sort(([a], [b]) => a.localeCompare(b))));
}
