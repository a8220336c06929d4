// Small pod-spec queries and assertions shared by tests/api.test.ts and tests/workers.test.ts, and
// the stand-in Python packages the rendered Celery apps are imported against.
import * as fs from "fs";
import * as path from "path";
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

/**
 * Stand-ins for `celery` (its Celery records what an app configures, however it sets it: constructor,
 * conf.update, attributes) and for redis-py 4 as far as the demo app uses it (it maps NOREPLICAS in
 * redis.connection.BaseParser), written into `dir` for PYTHONPATH.
 */
export function writeCeleryStandIns(dir: string): void {
  fs.mkdirSync(path.join(dir, "celery"));
  fs.writeFileSync(
    path.join(dir, "celery", "__init__.py"),
    "import json\n\nclass _Conf(dict):\n    def update(self, **kw):\n        dict.update(self, kw)\n    def __setattr__(self, k, v):\n        self[k] = v\n\n\nclass Celery:\n    def __init__(self, main, **kw):\n        self.conf = _Conf(kw)\n\n    def task(self, **kw):\n        return lambda f: f\n",
  );
  fs.mkdirSync(path.join(dir, "redis"));
  fs.writeFileSync(path.join(dir, "redis", "__init__.py"), "");
  fs.writeFileSync(path.join(dir, "redis", "exceptions.py"), "class ConnectionError(Exception):\n    pass\n");
  fs.writeFileSync(path.join(dir, "redis", "connection.py"), "class BaseParser:\n    EXCEPTION_CLASSES = {}\n");
}
