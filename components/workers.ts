// Celery workers (seeds 000 and 002): one Deployment per pool with its queues and concurrency,
// liveness asked of Celery itself, HPA and PDB; beat as a guaranteed singleton (1 replica,
// Recreate, never autoscaled); Flower optional, behind generated basic-auth credentials.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { Dependency } from "../config/dependencies";
import { resolveDependsOn } from "../config/dependencies";
import type { WorkerPoolConfig } from "../config/workers";
import { poolReplicas } from "../config/workers";
import { imageOf } from "../config/common";
import type { PlatformConfig } from "../config/schema";
import type { AppEnvSources } from "./lib/appwiring";
import { connectDependencies, dependencyConfig, secretEnvFor, sortedData } from "./lib/appwiring";
import { declareEgress } from "./lib/egress";
import { labels } from "./lib/labels";
import { checksum, execProbe, httpProbe, restrictedContainer, secretEnv, startupProbe } from "./lib/pod";
import { DEMO_ENV, FLOWER_APP, demoCelery, withDemo } from "./lib/demo";
import { PORTS, redisClientPorts } from "./lib/ports";
import type { Workload } from "./lib/workload";
import { createWorkload } from "./lib/workload";
import type { Route } from "./edge";
import type { AppArgs } from "./services";
import { envSources, secretsChecksum } from "./services";

type Container = k8s.types.input.core.v1.Container;
type EnvVar = k8s.types.input.core.v1.EnvVar;

export type WorkersArgs = AppArgs;

/** Celery node name of a pool's pod; `$(POD_NAME)` is expanded by the kubelet in args. */
export function nodeName(pool: string, podNameRef = "$(POD_NAME)"): string {
  return `${pool}@${podNameRef}`;
}

/** `celery worker` arguments for a pool. */
export function workerArgs(app: string, pool: string, p: WorkerPoolConfig, logLevel: string): string[] {
  return [
    "-A", app, "worker",
    "--queues", p.queues.join(","),
    "--concurrency", String(p.concurrency),
    "--hostname", nodeName(pool),
    "--loglevel", logLevel,
    ...(p.prefetchMultiplier !== undefined ? ["--prefetch-multiplier", String(p.prefetchMultiplier)] : []),
    ...(p.maxTasksPerChild !== undefined ? ["--max-tasks-per-child", String(p.maxTasksPerChild)] : []),
  ];
}

/** Liveness asks Celery whether this very node answers (a hung worker keeps its process alive). */
export function pingCommand(app: string, pool: string): string[] {
  return ["sh", "-c", `exec celery -A ${app} inspect ping --destination "${nodeName(pool, "$POD_NAME")}" --timeout 10`];
}

type AppContainerParts = Partial<Container> & { resources: Container["resources"] };

/** A container of the worker image (pools, beat): ConfigMap, Secrets of its dependencies, telemetry. */
export function celeryContainer(cfg: PlatformConfig, sources: AppEnvSources, deps: readonly Dependency[], workload: string, rest: AppContainerParts): Container {
  return {
    name: workload,
    image: cfg.workers.image,
    imagePullPolicy: "IfNotPresent",
    command: ["celery"],
    envFrom: [{ configMapRef: { name: "worker-config" } }],
    env: [{ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }, ...secretEnvFor(sources, deps), ...(sources.telemetryEnv?.(workload) ?? [])],
    securityContext: restrictedContainer(),
    volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
    ...rest,
  };
}

export class Workers extends pulumi.ComponentResource {
  readonly pools: Record<string, Workload> = {};
  readonly beat?: Workload;
  readonly flower?: Workload;
  readonly configMap: k8s.core.v1.ConfigMap;
  /** `/flower` for the edge when Flower is enabled. */
  readonly routes: Route[] = [];

  constructor(name: string, args: WorkersArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:app:Workers", name, {}, opts);
    const { config: cfg, graph } = args;
    const w = cfg.workers;
    const namespace = args.platform.namespaces.app;
    const deps = resolveDependsOn(cfg, w.dependsOn);
    const logLevel = (w.env.LOG_LEVEL ?? "INFO").toLowerCase();

    const configData = sortedData({ ...dependencyConfig(cfg, deps), ...w.env });
    this.configMap = new k8s.core.v1.ConfigMap(
      "worker-config",
      { metadata: { name: "worker-config", namespace, labels: labels(cfg, { name: "worker", component: "worker", image: w.image }) }, data: configData },
      { parent: this },
    );
    // Demo mode (dev): a demo Celery app named like workers.celeryApp, mounted into the pools and beat.
    const firstQueue = Object.values(w.pools)[0]?.queues[0] ?? "celery";
    const demo = w.demo ? demoCelery(w.celeryApp, firstQueue) : undefined;
    if (demo) {
      new k8s.core.v1.ConfigMap(
        demo.configMapName,
        { metadata: { name: demo.configMapName, namespace, labels: labels(cfg, { name: "worker", component: "worker", image: w.image }) }, data: demo.data },
        { parent: this },
      );
    }
    const annotations = { "checksum/config": checksum(configData), "checksum/secrets": secretsChecksum(cfg), ...(demo ? { "checksum/demo": checksum(demo.data) } : {}) };
    const demoVolumes = demo ? [demo.volume] : [];
    const sources = envSources(args);
    const appContainer = (workload: string, rest: AppContainerParts) => {
      const c = celeryContainer(cfg, sources, deps, workload, rest);
      return demo ? withDemo(c, DEMO_ENV) : c;
    };

    for (const [pool, p] of Object.entries(w.pools)) {
      const workload = `worker-${pool}`;
      const liveness = execProbe(pingCommand(w.celeryApp, pool), { periodSeconds: 60, timeoutSeconds: 30, failureThreshold: 3 });
      this.pools[pool] = createWorkload(
        cfg,
        {
          name: workload,
          component: "worker",
          tier: "workers",
          placement: p.placement,
          image: imageOf(w, "workers"),
          namespace,
          serviceAccount: args.platform.serviceAccount("worker"),
          containers: [
            appContainer(workload, {
              args: workerArgs(w.celeryApp, pool, p, logLevel),
              resources: p.resources,
              // Broker connection and imports can be slow; liveness starts once the node answers.
              startupProbe: { ...startupProbe(liveness, 300, 15), timeoutSeconds: 30 },
              livenessProbe: liveness,
            }),
          ],
          volumes: demoVolumes,
          // SIGTERM starts Celery's warm shutdown: running tasks finish within the grace period.
          terminationGracePeriodSeconds: w.terminationGracePeriodSeconds,
          annotations,
          scaling: { kind: "rolling", replicas: poolReplicas(p), hpa: p.hpa },
        },
        this,
      );
      connectDependencies(cfg, graph, workload, deps);
      declareEgress(graph, workload, p.egress);
    }

    if (w.beat.enabled) {
      this.beat = createWorkload(
        cfg,
        {
          name: "beat",
          component: "beat",
          tier: "workers",
          image: imageOf(w, "workers"),
          namespace,
          serviceAccount: args.platform.serviceAccount("beat"),
          containers: [
            appContainer("beat", {
              // The schedule state lives in the writable /tmp (read-only root filesystem).
              args: ["-A", w.celeryApp, "beat", "--schedule", "/tmp/celerybeat-schedule", "--pidfile=", "--loglevel", logLevel],
              resources: w.beat.resources,
            }),
          ],
          volumes: demoVolumes,
          terminationGracePeriodSeconds: Math.min(60, w.terminationGracePeriodSeconds),
          annotations,
          scaling: { kind: "singleton" },
        },
        this,
      );
      // Beat only publishes due tasks to the broker (and traces, if configured).
      connectDependencies(cfg, graph, "beat", deps.filter((d): d is Dependency => d === "redis" || d === "jaeger"));
    }

    if (w.flower.enabled) this.flower = this.buildFlower(cfg, args, namespace);
    this.registerOutputs({ pools: Object.keys(this.pools), routes: this.routes });
  }

  private buildFlower(cfg: PlatformConfig, args: WorkersArgs, namespace: pulumi.Output<string>): Workload {
    const f = cfg.workers.flower;
    const port = PORTS.flower.http;
    const auth = args.secrets.flower;
    if (!auth) throw new Error("flower is enabled but GeneratedSecrets created no flower credentials");
    const brokerKeys = ["CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS"].filter((k) => args.connections?.keys.includes(k));
    const broker = args.connections ? brokerKeys.map((k) => secretEnv(k, args.connections!.name, k)) : [];
    const app = new k8s.core.v1.ConfigMap(
      "flower-app",
      { metadata: { name: "flower-app", namespace, labels: labels(cfg, { name: "flower", component: "flower", image: f.image }) }, data: { "flower_app.py": FLOWER_APP } },
      { parent: this },
    );
    const env: EnvVar[] = [
      ...broker,
      { name: "PYTHONPATH", value: "/opt/flower" },
      { name: "PYTHONDONTWRITEBYTECODE", value: "1" },
      // Flower reads FLOWER_* env vars as its options.
      secretEnv("FLOWER_BASIC_AUTH", auth.name, "FLOWER_BASIC_AUTH"),
      { name: "FLOWER_PORT", value: String(port) },
      { name: "FLOWER_URL_PREFIX", value: "flower" },
      { name: "FLOWER_PERSISTENT", value: "False" },
    ];
    const probe = (periodSeconds: number) => httpProbe("/flower/healthcheck", "http", { periodSeconds });
    const workload = createWorkload(
      cfg,
      {
        name: "flower",
        component: "flower",
        // A view on the workers: first to go under pressure, like the other observability pods.
        tier: "observability",
        image: f.image,
        namespace,
        serviceAccount: args.platform.serviceAccount("flower"),
        containers: [
          {
            name: "flower",
            image: f.image,
            imagePullPolicy: "IfNotPresent",
            command: ["celery", "-A", "flower_app", "flower"],
            ports: [{ name: "http", containerPort: port, protocol: "TCP" }],
            env,
            resources: f.resources,
            startupProbe: startupProbe(probe(10), 60),
            livenessProbe: probe(10),
            readinessProbe: probe(5),
            securityContext: restrictedContainer(),
            volumeMounts: [
              { name: "tmp", mountPath: "/tmp" },
              { name: "data", mountPath: "/data" },
              { name: "app", mountPath: "/opt/flower", readOnly: true },
            ],
          },
        ],
        volumes: [
          { name: "data", emptyDir: { sizeLimit: "64Mi" } },
          { name: "app", configMap: { name: app.metadata.name } },
        ],
        terminationGracePeriodSeconds: 30,
        annotations: { "checksum/secrets": secretsChecksum(cfg), "checksum/app": checksum(FLOWER_APP) },
        scaling: { kind: "singleton" },
      },
      this,
    );
    new k8s.core.v1.Service(
      "flower",
      {
        metadata: { name: "flower", namespace, labels: labels(cfg, { name: "flower", component: "flower", image: f.image }) },
        spec: {
          type: "ClusterIP",
          selector: workload.selector,
          // Flower serves /metrics on its HTTP port; the `metrics` port lets a ServiceMonitor find it by name.
          ports: [
            { name: "http", port, targetPort: "http", protocol: "TCP" },
            { name: "metrics", port: FLOWER_METRICS_SERVICE_PORT, targetPort: "http", protocol: "TCP" },
          ],
        },
      },
      { parent: this },
    );
    args.graph.connect("flower", "redis", redisClientPorts(cfg.redis), "flower reads Celery events from the broker");
    this.routes.push({ path: "/flower", service: "flower", port });
    return workload;
  }
}

/** Service port of Flower's `metrics` name (a Service cannot list port 5555 twice). */
export const FLOWER_METRICS_SERVICE_PORT = 9555;
