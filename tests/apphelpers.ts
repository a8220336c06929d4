// Small pod-spec queries and assertions shared by tests/api.test.ts and tests/workers.test.ts.
import type { K8sObject } from "./harness";
import { podSpec } from "./harness";

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

/** Ports an app needs on Redis: the server, plus the Sentinels (26379) when the stack runs them. */
export function redisPortsFor(cfg: { redis: { sentinel: { enabled: boolean } } }): number[] {
  return cfg.redis.sentinel.enabled ? [6379, 26379] : [6379];
}
