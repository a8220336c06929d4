// The configuration is validated before anything is registered: every problem at once, each with
// its key path, the rule and the value given.
import { expect } from "chai";
import { SHORT_NAME_MAX } from "../config/dependencies";
import { ConfigError, nearest, parseConfig } from "../config/loader";
import { PROJECT, STACKS, evaluate, k8sObjects, ok, stackValues } from "./harness";
import { podSpecs } from "./checks";

/** The real stack file's values, without the project prefix, as the loader sees them. */
function stackRaw(stack: string): Record<string, unknown> {
  return Object.fromEntries(Object.entries(stackValues(`Pulumi.${stack}.yaml`)).map(([k, v]) => [k.slice(PROJECT.length + 1), v]));
}

function problemsOf(stack: string, edit: (raw: Record<string, any>) => void, secretKeys?: string[]): string[] {
  const raw = structuredClone(stackRaw(stack)) as Record<string, any>;
  edit(raw);
  try {
    parseConfig(raw, { stack, secretKeys: new Set(secretKeys) });
  } catch (e) {
    expect(e).to.be.instanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error("configuration was accepted");
}

const at = (raw: Record<string, any>, path: string) => {
  const parts = path.split(".");
  let node = raw;
  for (const p of parts.slice(0, -1)) node = node[p] ??= {};
  return { node, key: parts[parts.length - 1] };
};
const set = (path: string, value: unknown) => (raw: Record<string, any>) => {
  const { node, key } = at(raw, path);
  node[key] = value;
};

/** A complete object store setting, as a stack file would give it (region, path style and secret names defaulted). */
/** Names one character over the limit, and exactly at it. */
const TOO_LONG = "s".repeat(SHORT_NAME_MAX + 1);
const AT_LIMIT = { service: "s".repeat(SHORT_NAME_MAX), pool: "p".repeat(SHORT_NAME_MAX) };

const OBJECT_STORE = { endpoint: "https://minio.example.com:9000", bucket: "backups", prefix: "email-platform/prod", cidrs: ["203.0.113.7/32"], pathStyle: true };

describe("configuration", () => {
  for (const stack of STACKS) {
    it(`${stack}: the real stack file is valid`, () => {
      const cfg = parseConfig(stackRaw(stack), { stack });
      expect(cfg.environment).to.equal(stack);
    });
  }

  it("stack files hold no secrets (no secure values, no credential-looking keys)", () => {
    for (const stack of STACKS) {
      const text = JSON.stringify(stackValues(`Pulumi.${stack}.yaml`));
      expect(text).to.not.match(/"secure"|password"\s*:\s*"|secret"\s*:\s*"|apikey"\s*:\s*"/i);
    }
  });

  // [stack, description, edit, expected key path in the message, expected words]
  const cases: [string, string, (raw: Record<string, any>) => void, string, RegExp][] = [
    ["prod", "HPA min above max", set("services.api.hpa.maxReplicas", 1), "services.api.hpa.maxReplicas", /must be >= minReplicas \(3\), got 1/],
    ["prod", "a typo in a key", set("services.api.replcias", 3), "services.api.replcias", /unknown key; did you mean "replicas"/],
    ["prod", "an unknown top-level key", set("postgress", { enabled: true }), "postgress", /unknown key; did you mean "postgres"/],
    ["prod", "beat replicas 2", set("workers.beat.replicas", 2), "workers.beat.replicas", /singleton/],
    ["prod", "a pool without queues", set("workers.pools.default.queues", []), "workers.pools.default.queues", /at least one queue/],
    ["prod", "an unknown pool option", set("workers.pools.default.prefetch", 4), "workers.pools.default.prefetch", /unknown key/],
    ["prod", "latest tag in prod", set("services.api.image", "ghcr.io/example/email-api:latest"), "services.api.image", /mutable tag 'latest'/],
    ["staging", "latest tag in staging", set("postgres.image", "postgres:latest"), "postgres.image", /mutable tag 'latest'/],
    ["prod", "an image without a tag", set("redis.image", "redis"), "redis.image", /must pin a tag or digest/],
    ["prod", "prod without a kube context", (r) => delete r.cluster, "cluster.context", /is required for the prod environment/],
    ["staging", "staging without a kube context", (r) => delete r.cluster, "cluster.context", /is required for the staging environment/],
    ["prod", "postgres replicas 8", set("postgres.replicas", 8), "postgres.replicas", /<=7|7/],
    ["prod", "redis replicas 2", set("redis.replicas", 2), "redis.replicas", /must be at least 3 while sentinel\.enabled is true/],
    ["prod", "a malformed storage size", set("postgres.storage.size", "10GB"), "postgres.storage.size", /storage size/],
    ["prod", "an unknown storage setting", set("mongo.storage.iops", 3000), "mongo.storage.iops", /unknown key/],
    ["prod", "a CPU request above its limit", set("services.api.resources.requests.cpu", "3"), "services.api.resources.requests.cpu", /must not exceed limits.cpu \(2\)/],
    ["prod", "a malformed memory quantity", set("redis.resources.limits.memory", "2 gigs"), "redis.resources.limits.memory", /memory quantity/],
    ["prod", "an unknown environment", set("environment", "production"), "environment", /dev.*staging.*prod|Invalid option/],
    ["prod", "a negative headroom", set("platform.quota.headroomPercent", -5), "platform.quota.headroomPercent", /-5/],
    ["prod", "a namespace that is not a DNS label", set("platform.namespace", "Email_Platform"), "platform.namespace", /DNS-1123/],
    ["prod", "a string where a number belongs", set("services.api.replicas", "three"), "services.api.replicas", /"three"/],
    ["prod", "a zero rotation keeper", set("secrets.rotation", 0), "secrets.rotation", /got 0/],
    ["prod", "an external secret that is not set", set("secrets.external", { OPENAI_API_KEY: "openaiApiKey" }), "openaiApiKey", /required secret.*secrets\.external\.OPENAI_API_KEY/],
    ["prod", "a bad external env var name", set("secrets.external", { "openai-key": "openaiApiKey" }), "secrets.external.openai-key", /env var name/],
    ["prod", "a zero termination grace period", set("workers.terminationGracePeriodSeconds", 0), "workers.terminationGracePeriodSeconds", /got 0/],
    ["prod", "CPU utilization above 100%", set("services.api.hpa.cpuUtilization", 150), "services.api.hpa.cpuUtilization", /150/],
    ["prod", "a service name over the length limit", set(`services.${TOO_LONG}`, { kind: "static" }), `services.${TOO_LONG}`, new RegExp(`at most ${SHORT_NAME_MAX} characters \\(got ${SHORT_NAME_MAX + 1}\\).*63`)],
    ["prod", "a worker pool name over the length limit", set(`workers.pools.${TOO_LONG}`, { queues: ["q"] }), `workers.pools.${TOO_LONG}`, new RegExp(`at most ${SHORT_NAME_MAX} characters`)],
    ["prod", "a service name with capitals", set("services.Frontend", { kind: "static" }), "services.Frontend", /must be a DNS label: lowercase/],
    ["prod", "an object store over plain HTTP", set("backups.objectStore", { ...OBJECT_STORE, endpoint: "http://minio.example.com:9000" }), "backups.objectStore.endpoint", /https:\/\//],
    ["prod", "an object store without addresses", set("backups.objectStore", { ...OBJECT_STORE, cidrs: [] }), "backups.objectStore.cidrs", /egress is allowed to these only/],
    ["prod", "an object store bucket with capitals", set("backups.objectStore", { ...OBJECT_STORE, bucket: "Backups" }), "backups.objectStore.bucket", /S3 bucket name/],
    ["prod", "an object store without its access key", set("backups.objectStore", OBJECT_STORE), "objectStoreAccessKeyId", /required secret.*backups\.objectStore\.accessKeyIdSecret/],
    // HPA behaviour, hpa.enabled and pool replicas.
    ["prod", "a scale-up policy list that is empty", set("services.api.hpa.behavior.scaleUp.policies", []), "services.api.hpa.behavior.scaleUp.policies", /at least one policy.*selectPolicy: Disabled/],
    ["prod", "a scaling period over 30 minutes", set("services.api.hpa.behavior.scaleDown.policies", [{ type: "Pods", value: 1, periodSeconds: 1801 }]), "services.api.hpa.behavior.scaleDown.policies.0.periodSeconds", /1801/],
    ["prod", "a scaling period of zero", set("workers.pools.default.hpa.behavior.scaleUp.policies", [{ type: "Percent", value: 100, periodSeconds: 0 }]), "workers.pools.default.hpa.behavior.scaleUp.policies.0.periodSeconds", /got 0/],
    ["prod", "a stabilization window over an hour", set("services.api.hpa.behavior.scaleDown.stabilizationWindowSeconds", 3601), "services.api.hpa.behavior.scaleDown.stabilizationWindowSeconds", /3601/],
    ["prod", "an unknown scaling policy type", set("services.api.hpa.behavior.scaleUp.policies", [{ type: "Nodes", value: 1, periodSeconds: 60 }]), "services.api.hpa.behavior.scaleUp.policies.0.type", /Pods|Percent/],
    ["prod", "a pool's replicas outside its HPA range", set("workers.pools.default.replicas", 20), "workers.pools.default.replicas", /within hpa.minReplicas..maxReplicas \(2..8\)/],
    // Ephemeral storage.
    ["prod", "an ephemeral-storage request above its limit", set("services.api.resources.requests.ephemeral-storage", "2Gi"), "services.api.resources.requests.ephemeral-storage", /must not exceed limits.ephemeral-storage \(1Gi\)/],
    ["prod", "a malformed ephemeral-storage quantity", set("mail.postfix.resources.limits.ephemeral-storage", "5 gigs"), "mail.postfix.resources.limits.ephemeral-storage", /storage quantity/],
    // Egress.
    ["prod", "an egress destination with both cidrs and internet", set("services.api.egress", { both: { internet: true, cidrs: ["192.0.2.0/24"], ports: [443] } }), "services.api.egress.both", /exactly one of cidrs .* or internet: true/],
    ["prod", "an egress destination with neither", set("services.api.egress", { none: { ports: [443] } }), "services.api.egress.none", /exactly one of cidrs/],
    ["prod", "an egress CIDR with host bits", set("workers.pools.default.egress", { api: { cidrs: ["192.0.2.7/24"], ports: [443] } }), "workers.pools.default.egress.api.cidrs.0", /network address \(host bits zero\)/],
    ["prod", "an egress CIDR that is not an address", set("services.api.egress", { x: { cidrs: ["300.1.1.0/24"], ports: [443] } }), "services.api.egress.x.cidrs.0", /octets 0-255/],
    ["prod", "an egress destination without ports", set("services.api.egress", { x: { internet: true, ports: [] } }), "services.api.egress.x.ports", /at least one port/],
    ["prod", "an egress CIDR over the cluster's range", (r) => {
      set("platform.clusterCidrs", ["198.18.0.0/15"])(r);
      set("services.api.egress", { vpc: { cidrs: ["198.16.0.0/12"], ports: [5432] } })(r);
    }, "services.api.egress.vpc.cidrs.0", /overlaps the cluster range 198\.18\.0\.0\/15.*dependsOn/],
    ["prod", "a store's egress CIDR over the cluster's range", (r) => {
      set("platform.clusterCidrs", ["198.18.0.0/15"])(r);
      set("mongo.egress", { vpc: { cidrs: ["198.18.4.0/24"], ports: [443] } })(r);
    }, "mongo.egress.vpc.cidrs.0", /overlaps the cluster range 198\.18\.0\.0\/15/],
    ["prod", "egress for a managed Postgres (no pod here calls out)", (r) => {
      set("postgres.external", { host: "db.example.com", database: "app", user: "app", cidrs: ["192.0.2.10/32"] })(r);
      set("postgres.egress", { api: { internet: true, ports: [443] } })(r);
    }, "postgres.egress", /runs none here; got api/],
    ["prod", "a cluster range that is not a CIDR", set("platform.clusterCidrs", ["10.244.0.0"]), "platform.clusterCidrs.0", /IPv4 CIDR/],
    // Per-route ingress settings.
    ["prod", "route settings on a service without a path", (r) => {
      set("services.worker-api", { image: "ghcr.io/example/w:1.0.0", ingress: { loadBalance: "ewma" } })(r);
    }, "services.worker-api.ingress", /only used for a routed service: set path too/],
    ["prod", "an unknown load-balance algorithm", set("services.api.ingress", { loadBalance: "least_conn" }), "services.api.ingress.loadBalance", /round_robin|ewma/],
    ["prod", "a connect timeout nginx would cap", set("services.api.ingress", { timeouts: { connectSeconds: 120 } }), "services.api.ingress.timeouts.connectSeconds", /120/],
    ["prod", "retries without a condition", set("services.api.ingress", { retry: { on: [], tries: 3 } }), "services.api.ingress.retry.on", /at least one condition/],
    ["prod", "a keepalive of zero connections", set("edge.upstreamKeepalive", { connections: 0, timeoutSeconds: 60 }), "edge.upstreamKeepalive.connections", /got 0/],
    // Schema migrations.
    ["prod", "a migration without a command", set("services.api.migration", { command: [] }), "services.api.migration.command", /must name the migration command/],
    ["prod", "a migration needing a store its service does not use", (r) => {
      set("services.api.dependsOn", ["postgres", "redis"])(r);
      set("services.api.migration", { command: ["migrate"], dependsOn: ["mongo"] })(r);
    }, "services.api.migration.dependsOn.0", /must be one of the service's own dependencies \(postgres, redis\)/],
    ["prod", "a migration needing a disabled store", (r) => {
      set("mongo.enabled", false)(r);
      set("services.api.migration", { command: ["migrate"], dependsOn: ["mongo"] })(r);
    }, "services.api.migration.dependsOn.0", /depends on mongo, but mongo is disabled/],
    ["prod", "a migration depending on a tier that is not a store", set("services.api.migration", { command: ["migrate"], dependsOn: ["jaeger"] }), "services.api.migration.dependsOn.0", /postgres|redis|mongo/],
    // The quota ceiling.
    ["prod", "a computed quota above platform.quota.max", set("platform.quota.max", { requestsCpu: "4" }), "platform.quota.max.requestsCpu", /the app namespace's computed quota needs requests\.cpu \S+ .*above the ceiling 4; biggest contributors: services\.api .*\(\d+ pods\), /],
    ["prod", "a quota ceiling that is not a quantity", set("platform.quota.max", { limitsMemory: "lots" }), "platform.quota.max.limitsMemory", /memory quantity/],
  ];

  for (const [stack, what, edit, key, words] of cases) {
    it(`rejects ${what} (${stack}), naming ${key}`, () => {
      const problems = problemsOf(stack, edit);
      const mine = problems.filter((p) => p.startsWith(`${key}:`));
      expect(mine, problems.join("\n")).to.have.length.greaterThan(0);
      expect(mine.join("\n")).to.match(words);
    });
  }

  it("reports every problem at once", () => {
    const problems = problemsOf("prod", (r) => {
      set("services.api.hpa.maxReplicas", 1)(r);
      set("redis.replicas", 2)(r);
      set("services.api.replcias", 3)(r);
    });
    expect(problems.map((p) => p.split(":")[0])).to.include.members(["services.api.hpa.maxReplicas", "redis.replicas", "services.api.replcias"]);
  });

  it("refuses secret config nothing asked for, and plain-text values for secret keys", () => {
    expect(problemsOf("prod", () => undefined, ["strayKey"]).join("\n")).to.match(/strayKey: secret config that nothing uses/);
    const problems = problemsOf("prod", (r) => {
      r.secrets = { external: { OPENAI_API_KEY: "openaiApiKey" } };
      r.openaiApiKey = "sk-typed-in-git";
    }, ["openaiApiKey"]);
    expect(problems.join("\n")).to.match(/openaiApiKey: must be set with --secret/);
  });

  it("accepts an external secret once it is set as a secret", () => {
    const raw = { ...stackRaw("prod"), secrets: { external: { OPENAI_API_KEY: "openaiApiKey" } } };
    expect(() => parseConfig(raw, { stack: "prod", secretKeys: new Set(["openaiApiKey"]) })).to.not.throw();
  });

  it("accepts an object store once its credentials are set as secrets, filling in region and secret names", () => {
    const raw = { ...stackRaw("prod"), backups: { objectStore: OBJECT_STORE } };
    const cfg = parseConfig(raw, { stack: "prod", secretKeys: new Set(["objectStoreAccessKeyId", "objectStoreSecretAccessKey"]) });
    expect(cfg.backups.objectStore).to.deep.include({ region: "us-east-1", pathStyle: true, accessKeyIdSecret: "objectStoreAccessKeyId" });
  });

  it(`a service and a worker pool named at the length limit (${SHORT_NAME_MAX}) fit Kubernetes' 63-character names and label values`, async () => {
    // An http one too, routed with settings of its own (its own Ingress) and a migration Job.
    const http = "h".repeat(SHORT_NAME_MAX);
    const ev = ok(
      await evaluate({
        stack: "prod",
        set: {
          [`services.${AT_LIMIT.service}`]: { kind: "static" },
          [`workers.pools.${AT_LIMIT.pool}`]: { queues: ["q"] },
          [`services.${http}`]: { image: "ghcr.io/example/h:1.0.0", path: "/h", ingress: { loadBalance: "ewma" }, migration: { command: ["migrate"] } },
        },
      }),
    );
    const objects = k8sObjects(ev).map(({ obj }) => obj);
    const derived = objects.filter((o) => [AT_LIMIT.service, AT_LIMIT.pool, http].some((n) => o.metadata.name.includes(n)));
    expect(derived.length, "objects named after the long names").to.be.greaterThan(10);
    expect(derived.map((o) => o.kind)).to.include.members(["Ingress", "Job"]);
    const tooLong: string[] = [];
    for (const o of objects) {
      const where = `${o.kind} ${o.metadata.name}`;
      if (o.metadata.name.length > 63) tooLong.push(`${where}: name of ${o.metadata.name.length}`);
      for (const labels of [o.metadata.labels ?? {}, ...podSpecs(o).map((p) => p.labels)]) {
        for (const [k, v] of Object.entries(labels as Record<string, string>)) if (v.length > 63) tooLong.push(`${where}: label ${k} of ${v.length}`);
      }
    }
    expect(tooLong).to.deep.equal([]);
  });

  it("suggests the nearest key only when it is close", () => {
    expect(nearest("replcias", ["replicas", "resources"])).to.equal("replicas");
    expect(nearest("storageclass", ["size", "storageClass"])).to.equal("storageClass");
    expect(nearest("zzzzzz", ["replicas", "resources"])).to.equal(undefined);
  });

  it("a bad configuration registers no resource at all (the real program, prod)", async () => {
    const ev = await evaluate({ stack: "prod", set: { "services.api.hpa.maxReplicas": 1, "postgres.storage.size": "lots" } });
    expect(ev.error?.message).to.match(/services\.api\.hpa\.maxReplicas: must be >= minReplicas/);
    expect(ev.error?.message).to.match(/postgres\.storage\.size: must be a storage size/);
    expect(ev.resources).to.have.length(0);
  });
});
