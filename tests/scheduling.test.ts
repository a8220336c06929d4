// Scheduling: the PriorityClasses the platform creates, every pod's class by its tier (stores and
// mail above the API, the API above workers, observability below them, batch jobs lowest), and the
// per-tier placement from config (workers on spot nodes, stores off them). The tier of each pod is
// written below as data, from what each pod is, not read from the program.
import { expect } from "chai";
import { ConfigError, parseConfig } from "../config/loader";
import type { Level } from "../config/scheduling";
import { LEVELS, priorityClassName } from "../config/scheduling";
import type { PlatformConfig } from "../config/schema";
import { podTemplates, tierOf } from "./checks";
import type { Evaluation } from "./harness";
import { PROJECT, STACKS, configOf, evaluate, evaluateStack, findObject, objectsOfKind, ok, podSpec, recordOf, stackValues } from "./harness";
import { objectChecks } from "./object-checks";

function problemsOf(edit: Record<string, unknown>): string[] {
  const raw = Object.fromEntries(Object.entries(stackValues("Pulumi.dev.yaml")).map(([k, v]) => [k.slice(PROJECT.length + 1), v]));
  try {
    parseConfig({ ...raw, scheduling: edit }, { stack: "dev" });
  } catch (e) {
    expect(e).to.be.instanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error("configuration was accepted");
}

// Every stack, example and variant also passes objectChecks' "its tier's PriorityClass" (tests/checks.ts, tierOf).
for (const stack of STACKS) {
  describe(`scheduling (${stack})`, () => {
    let ev: Evaluation;
    let cfg: PlatformConfig;
    before(async () => {
      ev = ok(await evaluateStack(stack));
      cfg = configOf(ev);
    });

    it("creates one PriorityClass per level, named after the stack's namespace, highest for stateful pods, batch never preempting", () => {
      const classes = objectsOfKind(ev, "PriorityClass");
      expect(classes.map((c) => c.metadata.name)).to.have.members(LEVELS.map((l) => priorityClassName(cfg.platform.namespace, l)));
      const value = (l: Level) => findObject(ev, "PriorityClass", priorityClassName(cfg.platform.namespace, l)).value;
      for (let i = 1; i < LEVELS.length; i++) expect(value(LEVELS[i]), LEVELS[i]).to.be.below(value(LEVELS[i - 1]));
      for (const c of classes) {
        expect(c.globalDefault, c.metadata.name).to.equal(false);
        expect(c.preemptionPolicy, c.metadata.name).to.equal(c.metadata.name.endsWith("-batch") ? "Never" : "PreemptLowerPriority");
      }
    });

    it("creates the namespaces after the PriorityClasses (admission refuses a pod whose class does not exist yet)", () => {
      const classUrns = ev.resources.filter((r) => r.type === "kubernetes:scheduling.k8s.io/v1:PriorityClass").map((r) => r.urn);
      expect(classUrns).to.have.length(LEVELS.length);
      for (const ns of objectsOfKind(ev, "Namespace")) expect(recordOf(ev, "Namespace", ns.metadata.name).options.dependsOn, ns.metadata.name).to.include.members(classUrns);
    });
  });
}

describe("scheduling: stacks sharing a cluster", () => {
  it("a prod pod outranks a staging pod of the same level, which outranks dev's; the classes' names never collide", () => {
    const cfgs = STACKS.map((s) => configOf(s));
    for (const level of LEVELS) {
      const [dev, staging, prod] = cfgs.map((c) => c.scheduling.priorityClasses.values[level]);
      expect(prod, level).to.be.above(staging);
      expect(staging, level).to.be.above(dev);
    }
    const names = cfgs.flatMap((c) => LEVELS.map((l) => priorityClassName(c.platform.namespace, l)));
    expect(new Set(names).size).to.equal(names.length);
  });
});

// Seed 000: workers on spot/preemptible nodes, the stores never there.
const SPOT = { key: "cloud.google.com/gke-spot", value: "true" };
const ON_DEMAND = { "example.com/pool": "on-demand" };
const PLACED = {
  // A pool whose tasks must not be interrupted stays off the spot nodes.
  "workers.pools.send": { queues: ["send"], placement: { nodeSelector: ON_DEMAND } },
  "scheduling.tiers": {
    workers: {
      nodeSelector: { [SPOT.key]: SPOT.value },
      tolerations: [{ key: SPOT.key, operator: "Equal", value: SPOT.value, effect: "NoSchedule" }],
    },
    stores: {
      nodeAffinity: {
        required: [{ key: SPOT.key, operator: "DoesNotExist" }],
        preferred: [{ weight: 50, match: [{ key: "node.kubernetes.io/instance-type", operator: "In", values: ["n2-highmem-4"] }] }],
      },
    },
    mail: { nodeSelector: { "example.com/pool": "mail" }, tolerations: [{ key: "dedicated", operator: "Exists", effect: "NoExecute", tolerationSeconds: 300 }] },
    batch: { nodeSelector: { "example.com/pool": "batch" } },
  },
};

describe("scheduling: per-tier placement from config (prod)", () => {
  let ev: Evaluation;
  const placed = () => evaluate({ stack: "prod", set: PLACED });
  before(async () => {
    ev = ok(await placed());
  });

  it("puts every worker pool and beat on the workers' nodes, tolerating their taint", () => {
    const workers = podTemplates(ev).filter((p) => tierOf(p.name, configOf(ev)) === "workers" && p.name !== "worker-send");
    expect(workers.map((p) => p.name)).to.include.members(["worker-default", "beat"]);
    for (const p of workers) {
      expect(p.spec.nodeSelector, p.name).to.deep.equal({ [SPOT.key]: SPOT.value });
      expect(p.spec.tolerations, p.name).to.deep.equal([{ key: SPOT.key, operator: "Equal", value: SPOT.value, effect: "NoSchedule" }]);
    }
  });

  it("puts a pool with its own placement there instead, at the workers' priority", () => {
    const send = podSpec(findObject(ev, "Deployment", "worker-send"));
    expect(send.nodeSelector).to.deep.equal(ON_DEMAND);
    expect(send.tolerations).to.equal(undefined);
    expect(send.priorityClassName).to.equal(priorityClassName(configOf(ev).platform.namespace, "workers"));
  });

  it("leaves the other tiers' pods off them: the services have no placement, the stores require nodes without the spot label", () => {
    const api = podSpec(findObject(ev, "Deployment", "api"));
    expect(api.nodeSelector).to.equal(undefined);
    expect(api.tolerations).to.equal(undefined);
    expect(api.affinity.nodeAffinity).to.equal(undefined);
    for (const store of ["postgres", "redis", "mongo"]) {
      const spec = podSpec(findObject(ev, "StatefulSet", store));
      expect(spec.affinity.nodeAffinity, store).to.deep.equal({
        requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: SPOT.key, operator: "DoesNotExist" }] }] },
        preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 50, preference: { matchExpressions: [{ key: "node.kubernetes.io/instance-type", operator: "In", values: ["n2-highmem-4"] }] } }],
      });
      // The members' own spreading stays: never two on one node, even over zones.
      expect(spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution, store).to.have.length(1);
      expect(spec.topologySpreadConstraints[0].topologyKey, store).to.equal("topology.kubernetes.io/zone");
    }
  });

  it("runs the mailbox backup beside Dovecot on the mail nodes, at batch priority; other batch jobs on the batch nodes", () => {
    const cfg = configOf(ev);
    const mailbox = podSpec(findObject(ev, "CronJob", "mailbox-backup"));
    expect(mailbox.nodeSelector).to.deep.equal({ "example.com/pool": "mail" });
    expect(mailbox.tolerations).to.deep.equal([{ key: "dedicated", operator: "Exists", effect: "NoExecute", tolerationSeconds: 300 }]);
    expect(mailbox.priorityClassName).to.equal(priorityClassName(cfg.platform.namespace, "batch"));
    expect(mailbox.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchLabels["app.kubernetes.io/name"]).to.equal("dovecot");
    for (const job of ["redis-backup", "mongo-backup", "postgres-backup"]) expect(podSpec(findObject(ev, "CronJob", job)).nodeSelector, job).to.deep.equal({ "example.com/pool": "batch" });
    const smoke = objectsOfKind(ev, "Job").filter((j) => j.metadata.name.startsWith("smoke"));
    expect(smoke).to.have.length(1);
    expect(podSpec(smoke[0]).nodeSelector).to.deep.equal({ "example.com/pool": "batch" });
    for (const m of ["postfix", "dovecot"]) expect(podSpec(findObject(ev, "StatefulSet", m)).nodeSelector, m).to.deep.equal({ "example.com/pool": "mail" });
  });

  objectChecks("prod with per-tier placement", placed);
});

describe("scheduling: without PriorityClasses (no rights to cluster-scoped objects)", () => {
  const off = () => evaluate({ stack: "prod", set: { "scheduling.priorityClasses.enabled": false } });

  it("creates none and names none", async () => {
    const ev = ok(await off());
    expect(objectsOfKind(ev, "PriorityClass")).to.deep.equal([]);
    const named = podTemplates(ev).filter((p) => p.spec.priorityClassName !== undefined);
    expect(named.map((p) => p.name)).to.deep.equal([]);
  });

  objectChecks("prod without PriorityClasses", off);
});

describe("scheduling: validation", () => {
  it("refuses priority levels out of order, naming the level, the order and the value", () => {
    const problems = problemsOf({ priorityClasses: { values: { serving: 20000 } } });
    expect(problems.join("\n")).to.match(/^scheduling\.priorityClasses\.values\.serving: must be below stateful \(10000\): levels go stateful > serving > workers > observability > batch; got 20000/m);
  });

  it("refuses values Kubernetes reserves for system classes", () => {
    expect(problemsOf({ priorityClasses: { values: { stateful: 2_000_000_000 } } }).join("\n")).to.match(/^scheduling\.priorityClasses\.values\.stateful: /m);
  });

  it("refuses malformed tolerations, with the key path", () => {
    const problems = problemsOf({
      tiers: {
        workers: {
          tolerations: [
            { key: "a", operator: "Exists", value: "x" },
            { operator: "Equal", value: "x" },
            { key: "b", effect: "NoSchedule", tolerationSeconds: 30 },
          ],
        },
      },
    }).join("\n");
    expect(problems).to.match(/^scheduling\.tiers\.workers\.tolerations\.0\.value: must be left out with operator Exists/m);
    expect(problems).to.match(/^scheduling\.tiers\.workers\.tolerations\.1\.key: is required with operator Equal/m);
    expect(problems).to.match(/^scheduling\.tiers\.workers\.tolerations\.2\.tolerationSeconds: applies only with effect NoExecute/m);
  });

  it("refuses node requirements Kubernetes would refuse, and malformed label keys", () => {
    const problems = problemsOf({
      tiers: {
        stores: {
          nodeSelector: { "bad key!": "x" },
          nodeAffinity: {
            required: [
              { key: "zone", operator: "In" },
              { key: "cpus", operator: "Gt", values: ["many"] },
              { key: "spot", operator: "Exists", values: ["true"] },
            ],
          },
        },
      },
    }).join("\n");
    expect(problems).to.match(/^scheduling\.tiers\.stores\.nodeSelector\.bad key!: /m);
    expect(problems).to.match(/^scheduling\.tiers\.stores\.nodeAffinity\.required\.0\.values: must list at least one value with operator In/m);
    expect(problems).to.match(/^scheduling\.tiers\.stores\.nodeAffinity\.required\.1\.values: must be exactly one integer with operator Gt/m);
    expect(problems).to.match(/^scheduling\.tiers\.stores\.nodeAffinity\.required\.2\.values: must be left out with operator Exists/m);
  });

  it("refuses an unknown tier", () => {
    expect(problemsOf({ tiers: { frontend: {} } }).join("\n")).to.match(/^scheduling\.tiers\.frontend: /m);
  });
});
