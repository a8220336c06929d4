// The checkers must catch what they claim to catch: each is fed a broken object.
import { expect } from "chai";
import type { Evaluation } from "./harness";
import { podSecurityViolations, referenceProblems, schemaProblems } from "./checks";

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
});
