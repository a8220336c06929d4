// The checkers must catch what they claim to catch: each is fed a broken object.
import { expect } from "chai";
import type { Evaluation } from "./harness";
import { evaluate, ok, recordOf } from "./harness";
import { podSecurityViolations, referenceProblems, schemaProblems, secretTaintProblems } from "./checks";

const restrictedPod = {
  securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
  containers: [{ name: "app", image: "x:1", securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } } }],
};

function fakeEvaluation(objects: object[]): Evaluation {
  return {
    stack: "test",
    config: {},
    secretKeys: [],
    outputs: {},
    secretOutputs: [],
    resources: objects.map((o, i) => ({
      type: "kubernetes:test",
      name: `r${i}`,
      urn: `urn:${i}`,
      custom: true,
      inputs: o,
      secretPaths: [],
      state: {},
      parent: "",
      provider: "",
      options: { protect: false, retainOnDelete: false, deleteBeforeReplace: false, dependsOn: [], ignoreChanges: [], replaceOnChanges: [] },
    })),
  };
}

describe("checkers", () => {
  it("schema validation rejects a wrongly typed field and an unknown kind", async () => {
    expect(await schemaProblems({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x" }, spec: { replicas: "3" } })).to.not.deep.equal([]);
    expect(await schemaProblems({ apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "x" } })).to.deep.equal(["no schema for example.com/v1 Widget"]);
  });

  it("Pod Security restricted accepts a compliant pod and flags each missing control", () => {
    expect(podSecurityViolations(restrictedPod, "restricted")).to.deep.equal([]);
    const loose = structuredClone(restrictedPod) as typeof restrictedPod & { hostNetwork?: boolean };
    loose.containers[0].securityContext = { allowPrivilegeEscalation: true, capabilities: { drop: [] } };
    loose.securityContext = { runAsNonRoot: false, seccompProfile: { type: "Unconfined" } };
    const v = podSecurityViolations(loose, "restricted").join("\n");
    for (const words of ["allowPrivilegeEscalation", "runAsNonRoot", "seccomp", "drop ALL"]) expect(v).to.include(words);
    expect(podSecurityViolations({ ...restrictedPod, hostNetwork: true }, "baseline")).to.deep.equal(["host namespaces (hostNetwork)"]);
    expect(podSecurityViolations({ ...restrictedPod, securityContext: { sysctls: [{ name: "kernel.msgmax", value: "1" }] } }, "baseline")).to.deep.equal(["sysctl kernel.msgmax"]);
    const sysAdmin = { containers: [{ name: "m", securityContext: { capabilities: { add: ["SYS_ADMIN"] } } }] };
    expect(podSecurityViolations(sysAdmin, "baseline").join()).to.include("SYS_ADMIN");
    const netBind = { containers: [{ name: "m", securityContext: { capabilities: { add: ["NET_BIND_SERVICE", "SETUID"] } } }] };
    expect(podSecurityViolations(netBind, "baseline")).to.deep.equal([]);
  });

  it("reference checks catch a missing Secret key, a selector mismatch and a dangling named port", () => {
    const ns = "n";
    const labels = { app: "a" };
    const problems = referenceProblems(
      fakeEvaluation([
        { apiVersion: "v1", kind: "Secret", metadata: { name: "s", namespace: ns }, stringData: { A: "1" } },
        {
          apiVersion: "apps/v1",
          kind: "Deployment",
          metadata: { name: "d", namespace: ns },
          spec: {
            selector: { matchLabels: { app: "other" } },
            template: {
              metadata: { labels },
              spec: {
                containers: [
                  {
                    name: "c",
                    ports: [{ name: "http", containerPort: 80 }],
                    env: [{ name: "B", valueFrom: { secretKeyRef: { name: "s", key: "B" } } }],
                    readinessProbe: { httpGet: { path: "/", port: "health" } },
                  },
                ],
              },
            },
          },
        },
        { apiVersion: "v1", kind: "Service", metadata: { name: "svc", namespace: ns }, spec: { selector: labels, ports: [{ port: 80, targetPort: "web" }] } },
      ]),
    ).join("\n");
    expect(problems).to.include("selector does not match");
    expect(problems).to.include("missing key B of Secret s");
    expect(problems).to.include("probe names missing port health");
    expect(problems).to.include("targetPort web is not a named container port");
  });

  it("the secret-taint check names a workload whose spec carries a secret, and lets a Secret's data through", () => {
    const ev = fakeEvaluation([
      { apiVersion: "v1", kind: "Secret", metadata: { name: "s" }, stringData: { A: "1" } },
      { apiVersion: "apps/v1", kind: "StatefulSet", metadata: { name: "db" }, spec: {} },
    ]);
    ev.resources[0].type = "kubernetes:core/v1:Secret";
    ev.resources[0].secretPaths = ["stringData.A"];
    ev.resources[1].secretPaths = ["spec.template.metadata.annotations.checksum/credentials"];
    expect(secretTaintProblems(ev)).to.deep.equal(["kubernetes:test r1: input spec is secret (at spec.template.metadata.annotations.checksum/credentials)"]);
  });
});

describe("pulumi preview of a store change (the harness' view)", () => {
  it("shows the changed fields of the StatefulSet: its spec is not secret, so the diff is readable", async () => {
    const before = ok(await evaluate({ stack: "prod", preview: true }));
    const after = ok(await evaluate({ stack: "prod", preview: true, set: { "redis.settings.maxmemory": "256mb", "redis.resources.limits.cpu": "1500m" } }));
    const a = recordOf(before, "StatefulSet", "redis");
    const b = recordOf(after, "StatefulSet", "redis");
    for (const rec of [a, b]) expect(rec.secretPaths, "secret paths of the redis StatefulSet").to.deep.equal([]);
    const changed = leafDiff(a.inputs.spec, b.inputs.spec, "spec");
    // A new redis.conf and a new CPU limit: both show as field changes.
    expect(changed).to.deep.equal(["spec.template.metadata.annotations.checksum/config", "spec.template.spec.containers.0.resources.limits.cpu"]);
  });
});

/** Dotted paths of the leaves that differ between two values. */
function leafDiff(a: any, b: any, at: string): string[] {
  if (a && b && typeof a === "object" && typeof b === "object") {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) => leafDiff(a[k], b[k], `${at}.${k}`));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [at];
}
