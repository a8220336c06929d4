// The in-cluster smoke test: a Job created after every enabled tier that checks, from a pod in the
// app namespace and over the same Services and NetworkPolicies the apps use, that the platform
// works: each HTTP service's /ready, Postgres, Redis, MongoDB, ChromaDB, Postfix, Dovecot and Jaeger's OTLP
// receiver. Every check prints its own line. The containers run side by side: one per store (its
// own client logs in for real) and one Python container for everything else, which runs its
// checks concurrently, so 200 services are still one container. Any failure fails the pod; with
// backoffLimit 0 the Job fails, and Pulumi (which waits for Jobs) fails `pulumi up` with it.
import * as crypto from "crypto";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { STORE_DEPENDENCIES } from "../config/dependencies";
import type { PlatformConfig } from "../config/schema";
import { postgresPeers } from "./lib/appwiring";
import type { DependencyGraph, Peer } from "./lib/graph";
import { labels } from "./lib/labels";
import { restrictedContainer, restrictedPod, scratchVolume, secretEnv } from "./lib/pod";
import { PORTS, serviceHost } from "./lib/ports";
import type { GeneratedSecrets } from "./secrets";
import { SMOKE_PATH, SMOKE_SCRIPTS } from "./smoke-scripts";
import { scheduled } from "./lib/scheduling";

type EnvVar = k8s.types.input.core.v1.EnvVar;
type StoreDependency = (typeof STORE_DEPENDENCIES)[number];

export const SMOKE = "smoke";
const SCRIPTS_CONFIGMAP = "smoke-scripts";

/** What the shared Python container speaks to a target (components/smoke-scripts.ts, smoke.py). */
export type EndpointKind = "http" | "otlp" | "smtp" | "imap";

/** One check, and the graph edge (smoke -> target:port) it needs. */
export interface SmokeCheck {
  name: string;
  /** The graph workload (= Service name) it talks to. */
  target: string;
  /** Graph peers of the target when it is not a workload of ours (a managed database's addresses). */
  peers?: Peer[];
  port: number;
  /** Run by the shared Python container: the protocol and the URL or host:port. */
  endpoint?: { kind: EndpointKind; address: string };
  /** Run in a container of its own, with the store's client (image, script, env). */
  container?: {
    image: string;
    command: string[];
    /** Literal env values (hosts, ports); credentials are added as secretKeyRefs from `secretEnv`. */
    env: Record<string, string>;
    /** Env var -> [credential group, Secret key]: filled from the generated Secrets. */
    secretEnv?: Record<string, [StoreDependency, string]>;
  };
}

/** The container that runs every endpoint check. */
export const ENDPOINTS_CONTAINER = "check-endpoints";

/** The checks of a config: one per enabled tier (and one per enabled HTTP service). Pure. */
export function smokeChecks(cfg: PlatformConfig): SmokeCheck[] {
  const ns = cfg.platform.namespace;
  const mailNs = cfg.platform.mailNamespace;
  const sh = (script: string) => ["sh", `${SMOKE_PATH}/${script}`];
  const checks: SmokeCheck[] = [];
  for (const [name, svc] of Object.entries(cfg.services)) {
    if (!svc.enabled || svc.kind !== "http") continue;
    // Where the readiness probe asks (the health port when there is one), through the Service.
    const port = svc.ports.health ?? svc.ports.http;
    checks.push({ name: `${name}-ready`, target: name, port, endpoint: { kind: "http", address: `http://${serviceHost(name, ns)}:${port}${svc.probes.readiness.path}` } });
  }
  if (cfg.postgres.enabled) {
    // The leader (or the managed database), over TLS when it is a managed one.
    const ext = cfg.postgres.external;
    const { peers, port } = postgresPeers(cfg);
    checks.push({
      name: "postgres",
      target: "postgres",
      ...(ext ? { peers } : {}),
      port,
      container: {
        image: cfg.postgres.image,
        command: sh("postgres.sh"),
        env: { PGHOST: ext?.host ?? serviceHost("postgres", ns), PGPORT: String(port), PGCONNECT_TIMEOUT: "5", ...(ext ? { PGSSLMODE: ext.sslmode } : {}) },
        secretEnv: { PGDATABASE: ["postgres", "POSTGRES_DB"], PGUSER: ["postgres", "APP_DB_USER"], PGPASSWORD: ["postgres", "APP_DB_PASSWORD"] },
      },
    });
  }
  if (cfg.redis.enabled) {
    checks.push({
      name: "redis",
      target: "redis",
      port: PORTS.redis.redis,
      container: {
        image: cfg.redis.image,
        command: sh("redis.sh"),
        env: { REDIS_HOST: serviceHost("redis", ns), REDIS_PORT: String(PORTS.redis.redis) },
        secretEnv: { REDISCLI_AUTH: ["redis", "REDIS_PASSWORD"] },
      },
    });
  }
  if (cfg.mongo.enabled) {
    checks.push({
      name: "mongo",
      target: "mongo",
      port: PORTS.mongo.mongo,
      container: {
        image: cfg.mongo.image,
        command: sh("mongo.sh"),
        env: { MONGO_HOST: serviceHost("mongo", ns), MONGO_PORT: String(PORTS.mongo.mongo) },
        secretEnv: { MONGO_DB: ["mongo", "MONGO_INITDB_DATABASE"], MONGO_USER: ["mongo", "MONGO_APP_USERNAME"], MONGO_PASSWORD: ["mongo", "MONGO_APP_PASSWORD"] },
      },
    });
  }
  if (cfg.chroma.enabled) {
    // Plain HTTP: the smoke image's Python speaks it; the token comes from the server's own Secret.
    checks.push({
      name: "chroma",
      target: "chroma",
      port: PORTS.chroma.http,
      container: {
        image: cfg.verify.smoke.image,
        command: sh("chroma.sh"),
        env: { CHROMA_HOST: serviceHost("chroma", ns), CHROMA_PORT: String(PORTS.chroma.http) },
        secretEnv: { CHROMA_AUTH_TOKEN: ["chroma", "CHROMA_SERVER_AUTHN_CREDENTIALS"] },
      },
    });
  }
  if (cfg.mail.enabled) {
    // The ports the apps use: submission (STARTTLS) and IMAP.
    const smtp = PORTS.postfix.submission;
    const imap = PORTS.dovecot.imap;
    checks.push({ name: "smtp", target: "postfix", port: smtp, endpoint: { kind: "smtp", address: `${serviceHost("postfix", mailNs)}:${smtp}` } });
    checks.push({ name: "imap", target: "dovecot", port: imap, endpoint: { kind: "imap", address: `${serviceHost("dovecot", mailNs)}:${imap}` } });
  }
  if (cfg.jaeger.enabled) {
    const otlp = PORTS.jaeger.otlpHttp;
    checks.push({ name: "otlp", target: "jaeger", port: otlp, endpoint: { kind: "otlp", address: `http://${serviceHost("jaeger", ns)}:${otlp}/v1/traces` } });
  }
  return checks;
}

/** The shared Python container's command: `smoke.py <check> <kind> <target> ...` for every endpoint check. */
export function endpointsCommand(checks: SmokeCheck[]): string[] {
  return ["python3", `${SMOKE_PATH}/smoke.py`, ...checks.flatMap((c) => (c.endpoint ? [c.name, c.endpoint.kind, c.endpoint.address] : []))];
}

/** The smoke pod's edges: smoke -> each checked Service port, nothing else. Call before NetworkPolicies. */
export function declareSmokeEdges(cfg: PlatformConfig, graph: DependencyGraph): void {
  if (!cfg.verify.smoke.enabled) return;
  for (const c of smokeChecks(cfg)) for (const peer of c.peers ?? [c.target]) graph.connect(SMOKE, peer, [c.port], `smoke test: ${c.name}`);
}

/** The scripts the enabled checks run: a disabled store's script is left out with its check. */
export function smokeScripts(cfg: PlatformConfig): Record<string, string> {
  const off = STORE_DEPENDENCIES.filter((store) => !cfg[store].enabled).map((store) => `${store}.sh`);
  return Object.fromEntries(Object.entries(SMOKE_SCRIPTS).filter(([file]) => !off.includes(file)));
}

/**
 * `smoke-<hash8>`: Jobs are immutable and run once, so a new name (a new Job) is what reruns the
 * test. The hash covers the checks, the scripts, and the configuration of every checked tier
 * (images, settings, credential rotation); a change elsewhere (edge, monitoring, workers) keeps it.
 */
export function smokeJobName(cfg: PlatformConfig): string {
  const checks = smokeChecks(cfg);
  const services = Object.fromEntries(checks.filter((c) => cfg.services[c.target]).map((c) => [c.target, cfg.services[c.target]]));
  const tiers = [...STORE_DEPENDENCIES, "mail" as const, "jaeger" as const].filter((t) => cfg[t].enabled).map((t) => [t, cfg[t]]);
  const input = { checks, scripts: smokeScripts(cfg), services, tiers, secrets: cfg.secrets, smoke: cfg.verify.smoke, namespaces: [cfg.platform.namespace, cfg.platform.mailNamespace] };
  return `${SMOKE}-${crypto.createHash("sha256").update(JSON.stringify(input)).digest("hex").slice(0, 8)}`;
}

export interface SmokeTestArgs {
  config: PlatformConfig;
  /** platform.namespaces.app */
  namespace: pulumi.Input<string>;
  serviceAccountName: pulumi.Input<string>;
  secrets: GeneratedSecrets;
}

export class SmokeTest extends pulumi.ComponentResource {
  readonly job: k8s.batch.v1.Job;
  readonly checks: string[];

  /** Pass every tier component in `opts.dependsOn`: the Job must start after all of them are ready. */
  constructor(name: string, args: SmokeTestArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:verify:SmokeTest", name, {}, opts);
    const cfg = args.config;
    const s = cfg.verify.smoke;
    const id = { name: SMOKE, component: "smoke-test", image: s.image };
    const meta = (n: string) => ({ name: n, namespace: args.namespace, labels: labels(cfg, id) });
    const scripts = new k8s.core.v1.ConfigMap(SCRIPTS_CONFIGMAP, { metadata: meta(SCRIPTS_CONFIGMAP), data: smokeScripts(cfg) }, { parent: this });

    const checks = smokeChecks(cfg);
    this.checks = checks.map((c) => c.name);
    const secretName = (group: StoreDependency) => {
      const ref = args.secrets[group];
      if (!ref) throw new Error(`smoke test: ${group} is enabled but has no generated credentials`);
      return ref.name;
    };
    const mounts = [
      { name: "scripts", mountPath: SMOKE_PATH, readOnly: true },
      // mongosh and psql look for a home directory; the root filesystem is read-only.
      { name: "tmp", mountPath: "/tmp" },
    ];
    const container = (name: string, image: string, command: string[], env: EnvVar[]) => ({
      name,
      image,
      imagePullPolicy: "IfNotPresent",
      command,
      env,
      resources: s.resources,
      securityContext: restrictedContainer(),
      // `kubectl describe pod` shows a failing check's line as the termination message.
      terminationMessagePolicy: "FallbackToLogsOnError",
      volumeMounts: mounts,
    });
    const common = [
      { name: "SMOKE_RETRY_SECONDS", value: String(s.retrySeconds) },
      { name: "HOME", value: "/tmp" },
      { name: "PYTHONDONTWRITEBYTECODE", value: "1" },
    ];
    // One container per store check, then the Python container for the rest: they start together.
    const containers = [
      ...checks.flatMap((c) =>
        c.container
          ? [
              container(`check-${c.name}`, c.container.image, c.container.command, [
                { name: "CHECK", value: c.name },
                ...common,
                ...Object.entries(c.container.env).map(([k, v]) => ({ name: k, value: v })),
                ...Object.entries(c.container.secretEnv ?? {}).map(([k, [group, key]]) => secretEnv(k, secretName(group), key)),
              ]),
            ]
          : [],
      ),
      container(ENDPOINTS_CONTAINER, s.image, endpointsCommand(checks), [...common, { name: "SMOKE_CONCURRENCY", value: String(s.concurrency) }]),
    ];

    this.job = new k8s.batch.v1.Job(
      name,
      {
        metadata: {
          ...meta(smokeJobName(cfg)),
          // A failed run is replaced (rerun) by the next `pulumi up` instead of being waited on again.
          annotations: { "pulumi.com/replaceUnready": "true" },
        },
        spec: {
          backoffLimit: 0,
          activeDeadlineSeconds: s.timeoutSeconds,
          template: {
            metadata: { labels: labels(cfg, id) },
            spec: scheduled(cfg, "batch", {
              restartPolicy: "Never",
              serviceAccountName: args.serviceAccountName,
              automountServiceAccountToken: false,
              securityContext: restrictedPod(),
              containers,
              volumes: [{ name: "scripts", configMap: { name: scripts.metadata.name } }, scratchVolume()],
            }),
          },
        },
      },
      // Pulumi waits for the Job to complete (and fails on failure): at least as long as its deadline.
      { parent: this, dependsOn: opts?.dependsOn, customTimeouts: { create: `${s.timeoutSeconds + 120}s`, update: `${s.timeoutSeconds + 120}s` } },
    );
    this.registerOutputs({ job: this.job.metadata.name, checks: this.checks });
  }
}
