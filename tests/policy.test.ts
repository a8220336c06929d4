// The policy pack (policy/): every policy passes on the real registered resources of every stack
// (objectChecks runs the whole pack on every stack, example and variant) and reports its violation
// on a broken copy: a hand edit, a new component or a laptop `pulumi up` that the config schema
// never saw. Policies run as the CLI's analyzer runs them (tests/policy-harness.ts).
import type * as pulumi from "@pulumi/pulumi";
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { policies, resourcePolicies, stackPolicies } from "../policy/policies";
import { imagePinProblem, isolationFindings, selects } from "../policy/rules";
import type { Evaluation, Recorded } from "./harness";
import { ROOT, STACKS, configOf, evaluate, evaluateStack, k8sObjects, mocks, ok } from "./harness";
import { podSpecs } from "./checks";
import type { Violation } from "./policy-harness";
import { POLICY_DIR, runPolicies } from "./policy-harness";

/** Pulumi's unknown value: what a preview sees for an output that does not exist yet. */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/**
 * The engine in the preview of a new stack: Kubernetes objects come back as sent (the provider's
 * dry run), but no password, random key or TLS key exists yet, so their outputs stay unknown.
 */
const firstPreview: pulumi.runtime.Mocks = {
  newResource: (args) => (args.type.startsWith("kubernetes:") ? mocks.newResource(args) : { id: `${args.name}-id`, state: { ...args.inputs } }),
  call: mocks.call,
};

/** A deep copy of an evaluation to break; the cached original stays intact for other tests. */
function copyOf(ev: Evaluation): Evaluation {
  return { ...ev, resources: structuredClone(ev.resources) };
}

function rec(ev: Evaluation, kind: string, name: string): Recorded {
  const found = k8sObjects(ev).filter(({ obj }) => obj.kind === kind && obj.metadata.name === name);
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name} in ${ev.stack}, found ${found.length}`);
  return found[0].rec;
}

interface Breakage {
  policy: string;
  stack: string;
  what: string;
  /** Breaks the copy; returns the resources the policy must name. */
  edit: (ev: Evaluation) => Recorded[];
}

const appNamespace = (ev: Evaluation) => rec(ev, "Deployment", "api").inputs.metadata.namespace;

const breakages: Breakage[] = [
  {
    policy: "container-resources",
    stack: "prod",
    what: "a container without limits",
    edit: (ev) => {
      const api = rec(ev, "Deployment", "api");
      delete api.inputs.spec.template.spec.containers[0].resources.limits;
      return [api];
    },
  },
  {
    policy: "recommended-labels",
    stack: "prod",
    what: "a pod template without app.kubernetes.io/part-of",
    edit: (ev) => {
      const pg = rec(ev, "StatefulSet", "postgres");
      delete pg.inputs.spec.template.metadata.labels["app.kubernetes.io/part-of"];
      return [pg];
    },
  },
  {
    policy: "images-pinned",
    stack: "prod",
    what: "'latest' in prod",
    edit: (ev) => {
      const api = rec(ev, "Deployment", "api");
      api.inputs.spec.template.spec.containers[0].image = "registry.example.com/email-api:latest";
      return [api];
    },
  },
  {
    policy: "images-pinned",
    stack: "staging",
    what: "'latest' in staging",
    edit: (ev) => {
      const redis = rec(ev, "StatefulSet", "redis");
      redis.inputs.spec.template.spec.containers[0].image = "redis:latest";
      return [redis];
    },
  },
  {
    policy: "images-pinned",
    stack: "dev",
    what: "an image without a tag, even in dev",
    edit: (ev) => {
      const api = rec(ev, "Deployment", "api");
      api.inputs.spec.template.spec.containers[0].image = "python";
      return [api];
    },
  },
  {
    policy: "stateful-protected",
    stack: "prod",
    what: "an unprotected StatefulSet and backup claim in prod",
    edit: (ev) => {
      const broken = [rec(ev, "StatefulSet", "postgres"), rec(ev, "PersistentVolumeClaim", "postgres-backup")];
      for (const r of broken) r.options.protect = false;
      return broken;
    },
  },
  {
    policy: "pod-security",
    stack: "prod",
    what: "a privileged container in a restricted namespace",
    edit: (ev) => {
      const api = rec(ev, "Deployment", "api");
      api.inputs.spec.template.spec.containers[0].securityContext.privileged = true;
      return [api];
    },
  },
  {
    policy: "pod-security",
    stack: "prod",
    what: "a capability beyond baseline in the mail namespace",
    edit: (ev) => {
      const postfix = rec(ev, "StatefulSet", "postfix");
      postfix.inputs.spec.template.spec.containers[0].securityContext.capabilities.add.push("SYS_ADMIN");
      return [postfix];
    },
  },
  {
    policy: "pod-security",
    stack: "staging",
    what: "a namespace that enforces no level",
    edit: (ev) => {
      const ns = rec(ev, "Namespace", appNamespace(ev));
      delete ns.inputs.metadata.labels["pod-security.kubernetes.io/enforce"];
      return [ns];
    },
  },
  {
    policy: "references-resolve",
    stack: "prod",
    what: "an env var naming a Secret key that does not exist",
    edit: (ev) => {
      const api = rec(ev, "Deployment", "api");
      const ref = api.inputs.spec.template.spec.containers[0].env.find((e: any) => e.valueFrom?.secretKeyRef).valueFrom.secretKeyRef;
      ref.key = `${ref.key}_TYPO`;
      return [api];
    },
  },
  {
    policy: "pdb-allows-drain",
    stack: "prod",
    what: "maxUnavailable 0",
    edit: (ev) => {
      const pdb = rec(ev, "PodDisruptionBudget", "api");
      pdb.inputs.spec.maxUnavailable = 0;
      return [pdb];
    },
  },
  {
    policy: "pdb-allows-drain",
    stack: "prod",
    what: "minAvailable equal to the HPA's minReplicas (seed 003's minAvailable: 2 on two pods)",
    edit: (ev) => {
      const pdb = rec(ev, "PodDisruptionBudget", "api");
      delete pdb.inputs.spec.maxUnavailable;
      pdb.inputs.spec.minAvailable = configOf(ev).services.api.hpa.minReplicas;
      return [pdb];
    },
  },
  {
    policy: "pdb-allows-drain",
    stack: "prod",
    what: "minAvailable 100%",
    edit: (ev) => {
      const pdb = rec(ev, "PodDisruptionBudget", "worker-default");
      delete pdb.inputs.spec.maxUnavailable;
      pdb.inputs.spec.minAvailable = "100%";
      return [pdb];
    },
  },
  {
    policy: "pdb-allows-drain",
    stack: "prod",
    what: "unhealthy pods protected by the budget",
    edit: (ev) => {
      const pdb = rec(ev, "PodDisruptionBudget", "postfix");
      delete pdb.inputs.spec.unhealthyPodEvictionPolicy;
      return [pdb];
    },
  },
  {
    policy: "pods-isolated",
    stack: "prod",
    what: "a namespace without NetworkPolicies",
    edit: (ev) => {
      const ns = appNamespace(ev);
      ev.resources = ev.resources.filter((r) => !(r.inputs.kind === "NetworkPolicy" && r.inputs.metadata?.namespace === ns));
      // Every pod of the namespace is then open both ways.
      return k8sObjects(ev).filter(({ obj }) => obj.metadata?.namespace === ns && podSpecs(obj).length).map(({ rec }) => rec);
    },
  },
  {
    policy: "pods-prioritized",
    stack: "prod",
    what: "a pod without a priorityClassName",
    edit: (ev) => {
      const backup = rec(ev, "CronJob", "redis-backup");
      delete backup.inputs.spec.jobTemplate.spec.template.spec.priorityClassName;
      return [backup];
    },
  },
  {
    policy: "pods-prioritized",
    stack: "dev",
    what: "a PriorityClass the stack does not create",
    edit: (ev) => {
      const api = rec(ev, "Deployment", "api");
      api.inputs.spec.template.spec.priorityClassName = "high-priority";
      return [api];
    },
  },
];

describe("policy pack", () => {
  it("is a self-contained package: @pulumi/policy pinned, the program's @pulumi/pulumi, its own lock, PulumiPolicy.yaml", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(POLICY_DIR, "package.json"), "utf8"));
    const root = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
    expect(pkg.dependencies["@pulumi/policy"]).to.match(/^\d+\.\d+\.\d+$/);
    expect(pkg.dependencies["@pulumi/pulumi"]).to.equal(root.dependencies["@pulumi/pulumi"]);
    expect(pkg.engines.node).to.equal(root.engines.node);
    const lock = JSON.parse(fs.readFileSync(path.join(POLICY_DIR, "package-lock.json"), "utf8"));
    expect(lock.packages["node_modules/@pulumi/policy"].version).to.equal(pkg.dependencies["@pulumi/policy"]);
    expect(fs.readFileSync(path.join(POLICY_DIR, "PulumiPolicy.yaml"), "utf8")).to.match(/^runtime: nodejs$/m);
    // Everything the pack loads is inside policy/: the CLI runs that directory on its own.
    for (const file of fs.readdirSync(POLICY_DIR).filter((f) => f.endsWith(".ts"))) {
      const imports = [...fs.readFileSync(path.join(POLICY_DIR, file), "utf8").matchAll(/from "([^"]+)"/g)].map((m) => m[1]);
      for (const spec of imports) expect(spec, `${file} imports ${spec}`).to.match(/^(\.\/[\w-]+|@pulumi\/(policy|pulumi))$/);
    }
  });

  it("has resource and stack policies, each mandatory, uniquely named and described", () => {
    expect(resourcePolicies.length).to.be.greaterThan(0);
    expect(stackPolicies.length).to.be.greaterThan(0);
    expect(new Set(policies.map((p) => p.name)).size).to.equal(policies.length);
    for (const p of policies) {
      expect(p.enforcementLevel, p.name).to.equal("mandatory");
      expect(p.description, p.name).to.match(/^[A-Z].{20,}\.$/);
    }
  });

  it("every policy has a broken variant below that it reports", () => {
    expect(new Set(breakages.map((b) => b.policy))).to.deep.equal(new Set(policies.map((p) => p.name)));
  });

  for (const stack of STACKS) {
    it(`${stack}: every policy runs and passes in a first preview, where generated secrets and what derives from them are unknown`, async () => {
      const ev = ok(await evaluate({ stack, preview: true, mocks: firstPreview }));
      const unknown = ev.resources.filter((r) => JSON.stringify(r.inputs).includes(UNKNOWN));
      expect(unknown.map((r) => r.inputs.kind)).to.include("Secret");
      expect(await runPolicies(ev)).to.deep.equal([]);
    });
  }

  for (const b of breakages) {
    it(`${b.policy} reports ${b.what} (${b.stack}), naming the object and only there`, async () => {
      const ev = copyOf(ok(await evaluateStack(b.stack)));
      const broken = b.edit(ev);
      expect(broken.length, "objects broken").to.be.greaterThan(0);
      const violations: Violation[] = await runPolicies(ev);
      expect(
        violations.filter((v) => v.policy !== b.policy),
        "other policies",
      ).to.deep.equal([]);
      const mine = violations.filter((v) => v.policy === b.policy);
      expect(new Set(mine.map((v) => v.urn))).to.deep.equal(new Set(broken.map((r) => r.urn)));
      for (const v of mine) {
        const obj = broken.find((r) => r.urn === v.urn)!.inputs;
        expect(v.message).to.include(`${obj.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ""}${obj.metadata.name}:`);
      }
    });
  }

  it("allows 'latest' in dev, and no protect outside prod", async () => {
    const dev = copyOf(ok(await evaluateStack("dev")));
    rec(dev, "Deployment", "api").inputs.spec.template.spec.containers[0].image = "python:latest";
    expect(await runPolicies(dev)).to.deep.equal([]);
    const staging = copyOf(ok(await evaluateStack("staging")));
    const statefulSets = k8sObjects(staging).filter(({ obj }) => obj.kind === "StatefulSet");
    expect(statefulSets.length).to.be.greaterThan(0);
    for (const { rec } of statefulSets) expect(rec.options.protect).to.equal(false);
    expect(await runPolicies(staging)).to.deep.equal([]);
  });

  it("treats an object without an environment label by prod's rules", async () => {
    const staging = copyOf(ok(await evaluateStack("staging")));
    const pvc = k8sObjects(staging).find(({ obj }) => obj.kind === "PersistentVolumeClaim")!.rec;
    delete pvc.inputs.metadata.labels["app.kubernetes.io/instance"];
    const violations = await runPolicies(staging);
    expect(violations.map((v) => [v.policy, v.urn])).to.deep.equal([["stateful-protected", pvc.urn]]);
    expect(violations[0].message).to.include("unlabelled environment");
  });

  it("a PDB's minAvailable one below the fewest pods passes (a drain may evict one)", async () => {
    const ev = copyOf(ok(await evaluateStack("prod")));
    const pdb = rec(ev, "PodDisruptionBudget", "api");
    delete pdb.inputs.spec.maxUnavailable;
    pdb.inputs.spec.minAvailable = configOf(ev).services.api.hpa.minReplicas - 1;
    expect(await runPolicies(ev)).to.deep.equal([]);
  });
});

describe("policy rule helpers", () => {
  it("an image is pinned by a tag or a digest; a registry port is not a tag", () => {
    const digest = `@sha256:${"a".repeat(64)}`;
    expect(imagePinProblem("postgres:16.4-alpine", false)).to.equal(undefined);
    expect(imagePinProblem(`registry.example.com:5000/app${digest}`, false)).to.equal(undefined);
    expect(imagePinProblem("registry.example.com:5000/app", true)).to.equal("pins no tag or digest");
    expect(imagePinProblem("app:latest", false)).to.equal("uses the mutable tag 'latest'");
    expect(imagePinProblem("app:latest", true)).to.equal(undefined);
  });

  it("a NetworkPolicy without policyTypes isolates ingress, and egress only when it has egress rules", () => {
    const pod = { kind: "Pod", metadata: { name: "p", namespace: "n", labels: { app: "a" } }, spec: { containers: [] } };
    const policy = (spec: object) => ({ kind: "NetworkPolicy", metadata: { name: "np", namespace: "n" }, spec: { podSelector: {}, ...spec } });
    expect(isolationFindings([pod, policy({ ingress: [] })]).map((f) => f.message)).to.deep.equal([
      "Pod n/p: no NetworkPolicy selects its pods for Egress, so they send any traffic; namespace n needs a default deny (podSelector: {}, policyTypes: [Ingress, Egress]) and the workload's edges declared in the dependency graph",
    ]);
    expect(isolationFindings([pod, policy({ ingress: [], egress: [] })])).to.deep.equal([]);
    expect(isolationFindings([pod, { ...policy({ policyTypes: ["Ingress", "Egress"] }), metadata: { name: "np", namespace: "other" } }])).to.have.length(1);
  });

  it("label selectors follow Kubernetes: matchLabels and every expression operator, empty selects all, none selects none", () => {
    const labels = { app: "a", tier: "web" };
    expect(selects({}, labels)).to.equal(true);
    expect(selects(undefined, labels)).to.equal(false);
    expect(selects({ matchLabels: { app: "a" } }, labels)).to.equal(true);
    expect(selects({ matchLabels: { app: "b" } }, labels)).to.equal(false);
    expect(selects({ matchExpressions: [{ key: "tier", operator: "In", values: ["web", "api"] }] }, labels)).to.equal(true);
    expect(selects({ matchExpressions: [{ key: "tier", operator: "NotIn", values: ["web"] }] }, labels)).to.equal(false);
    expect(selects({ matchExpressions: [{ key: "zone", operator: "Exists" }] }, labels)).to.equal(false);
    expect(selects({ matchExpressions: [{ key: "zone", operator: "DoesNotExist" }] }, labels)).to.equal(true);
  });
});
