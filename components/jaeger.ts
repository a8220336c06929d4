// Jaeger v2 (an OpenTelemetry Collector distribution): OTLP gRPC 4317 / HTTP 4318 in, UI 16686
// under /jaeger, health on 13133, its own metrics on 8888. Storage: memory (dev), Badger on a
// retained volume, or an external Elasticsearch/OpenSearch (config `jaeger.storage`).
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { PlatformConfig } from "../config/schema";
import type { DependencyGraph } from "./lib/graph";
import { labels, selectorLabels } from "./lib/labels";
import { checksum, httpProbe, restrictedContainer, restrictedPod, scratchVolume, secretEnv, startupProbe } from "./lib/pod";
import { PORTS } from "./lib/ports";
import { scheduled } from "./lib/scheduling";

export const JAEGER = "jaeger";
export const INDEX_CLEANER = "jaeger-index-cleaner";
/** Where the UI is served; the Ingress routes this prefix unchanged. */
export const JAEGER_BASE_PATH = "/jaeger";
const CONFIG_PATH = "/etc/jaeger/config.yaml";
const DATA_PATH = "/badger";
/** The jaegertracing/jaeger image runs as this uid. */
const JAEGER_UID = 10001;

export interface JaegerArgs {
  config: PlatformConfig;
  namespace: pulumi.Input<string>;
  serviceAccountName: pulumi.Input<string>;
  graph: DependencyGraph;
  /** Reads a user-supplied secret config key (the external span store's password). */
  secret: (key: string) => pulumi.Output<string>;
}

/** The collector configuration (pure). JSON is valid YAML, so it is rendered with JSON.stringify. */
export function jaegerConfig(cfg: PlatformConfig): Record<string, unknown> {
  const j = cfg.jaeger;
  const listen = (p: number) => `0.0.0.0:${p}`;
  let backend: Record<string, unknown>;
  switch (j.storage.type) {
    case "memory":
      backend = { memory: { max_traces: j.storage.maxTraces } };
      break;
    case "badger":
      backend = {
        badger: {
          directories: { keys: `${DATA_PATH}/keys`, values: `${DATA_PATH}/values` },
          ephemeral: false,
          ttl: { spans: j.retention },
        },
      };
      break;
    default: {
      const ext = j.storage.external!;
      backend = {
        [j.storage.type]: {
          server_urls: ext.serverUrls,
          indices: { index_prefix: ext.indexPrefix },
          // The password is expanded from the environment (a secretKeyRef), never written into the ConfigMap.
          ...(ext.username ? { auth: { basic: { username: ext.username, password: "${env:ES_PASSWORD}" } } } : {}),
        },
      };
    }
  }
  return {
    service: {
      extensions: ["jaeger_storage", "jaeger_query", "healthcheckv2"],
      pipelines: { traces: { receivers: ["otlp"], processors: ["batch"], exporters: ["jaeger_storage_exporter"] } },
      telemetry: {
        resource: { "service.name": JAEGER },
        metrics: { level: "detailed", readers: [{ pull: { exporter: { prometheus: { host: "0.0.0.0", port: PORTS.jaeger.metrics } } } }] },
        logs: { level: cfg.environment === "dev" ? "debug" : "info" },
      },
    },
    extensions: {
      healthcheckv2: { use_v2: true, http: { endpoint: listen(PORTS.jaeger.health) } },
      jaeger_query: { storage: { traces: "main" }, base_path: JAEGER_BASE_PATH, http: { endpoint: listen(PORTS.jaeger.ui) } },
      jaeger_storage: { backends: { main: backend } },
    },
    receivers: { otlp: { protocols: { grpc: { endpoint: listen(PORTS.jaeger.otlpGrpc) }, http: { endpoint: listen(PORTS.jaeger.otlpHttp) } } } },
    processors: { batch: {} },
    exporters: { jaeger_storage_exporter: { trace_storage: "main" } },
  };
}

export class Jaeger extends pulumi.ComponentResource {
  readonly serviceName: pulumi.Output<string>;

  constructor(name: string, args: JaegerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:tracing:Jaeger", name, {}, opts);
    const cfg = args.config;
    const j = cfg.jaeger;
    const ns = args.namespace;
    const id = { name: JAEGER, component: "tracing", image: j.image };
    const meta = (n: string) => ({ name: n, namespace: ns, labels: labels(cfg, id) });
    const selector = selectorLabels(cfg, id);
    const child = { parent: this };

    const configText = JSON.stringify(jaegerConfig(cfg), null, 2);
    const configMap = new k8s.core.v1.ConfigMap(`${name}-config`, { metadata: meta("jaeger-config"), data: { "config.yaml": configText } }, child);

    // Badger's data outlives the pod and the stack: retained on delete, protected in prod.
    let claimName: pulumi.Output<string> | undefined;
    if (j.storage.type === "badger") {
      const pvc = new k8s.core.v1.PersistentVolumeClaim(
        `${name}-data`,
        {
          metadata: meta("jaeger-data"),
          spec: {
            accessModes: ["ReadWriteOnce"],
            resources: { requests: { storage: j.storage.volume.size } },
            ...(j.storage.volume.storageClass ? { storageClassName: j.storage.volume.storageClass } : {}),
          },
        },
        { ...child, retainOnDelete: true, protect: cfg.environment === "prod" },
      );
      claimName = pvc.metadata.name;
    }

    const external = j.storage.external;
    let storageEnv: k8s.types.input.core.v1.EnvVar[] = [];
    if (external) {
      // In the cluster: only that namespace. Outside: internet egress on that one port, which config asked for.
      const peer = external.namespace
        ? { kind: "namespace" as const, name: `${j.storage.type}`, namespace: external.namespace }
        : { kind: "internet" as const, name: "internet" as const };
      args.graph.connect(JAEGER, peer, [external.port], `span storage (${j.storage.type})`);
      args.graph.connect(INDEX_CLEANER, peer, [external.port], "delete expired span indices");
      if (external.username && external.passwordSecret) {
        const creds = new k8s.core.v1.Secret(
          `${name}-storage-credentials`,
          {
            metadata: { name: "jaeger-storage-credentials", namespace: ns, labels: labels(cfg, id) },
            type: "Opaque",
            stringData: { ES_USERNAME: pulumi.secret(external.username), ES_PASSWORD: pulumi.secret(args.secret(external.passwordSecret)) },
          },
          child,
        );
        storageEnv = ["ES_USERNAME", "ES_PASSWORD"].map((k) => secretEnv(k, creds.metadata.name, k));
      }
      this.indexCleaner(name, cfg, ns, args.serviceAccountName, external.serverUrls[0], external.indexPrefix, storageEnv);
    }

    const health = httpProbe("/status", "health", { periodSeconds: 10 });
    const volumes: k8s.types.input.core.v1.Volume[] = [{ name: "config", configMap: { name: configMap.metadata.name } }, scratchVolume()];
    const mounts: k8s.types.input.core.v1.VolumeMount[] = [
      { name: "config", mountPath: "/etc/jaeger", readOnly: true },
      { name: "tmp", mountPath: "/tmp" },
    ];
    if (claimName) {
      volumes.push({ name: "data", persistentVolumeClaim: { claimName } });
      mounts.push({ name: "data", mountPath: DATA_PATH });
    }

    new k8s.apps.v1.Deployment(
      `${name}-deployment`,
      {
        metadata: meta(JAEGER),
        spec: {
          replicas: 1,
          // Recreate: the old pod releases Badger's lock before the new one opens the volume.
          strategy: { type: "Recreate" },
          selector: { matchLabels: selector },
          template: {
            metadata: { labels: labels(cfg, id), annotations: { "checksum/config": checksum(configText) } },
            spec: scheduled(cfg, "observability", {
              serviceAccountName: args.serviceAccountName,
              automountServiceAccountToken: false,
              securityContext: restrictedPod({ uid: JAEGER_UID }),
              containers: [
                {
                  name: JAEGER,
                  image: j.image,
                  args: [`--config=file:${CONFIG_PATH}`],
                  ...(storageEnv.length ? { env: storageEnv } : {}),
                  ports: [
                    { name: "otlp-grpc", containerPort: PORTS.jaeger.otlpGrpc, protocol: "TCP" },
                    { name: "otlp-http", containerPort: PORTS.jaeger.otlpHttp, protocol: "TCP" },
                    { name: "http", containerPort: PORTS.jaeger.ui, protocol: "TCP" },
                    { name: "health", containerPort: PORTS.jaeger.health, protocol: "TCP" },
                    { name: "metrics", containerPort: PORTS.jaeger.metrics, protocol: "TCP" },
                  ],
                  resources: j.resources,
                  securityContext: restrictedContainer(),
                  startupProbe: startupProbe(health, 60),
                  livenessProbe: health,
                  readinessProbe: { ...health, periodSeconds: 5 },
                  volumeMounts: mounts,
                },
              ],
              volumes,
            }),
          },
        },
      },
      child,
    );

    const service = new k8s.core.v1.Service(
      `${name}-service`,
      {
        metadata: meta(JAEGER),
        spec: {
          type: "ClusterIP",
          selector,
          ports: [
            { name: "otlp-grpc", port: PORTS.jaeger.otlpGrpc, targetPort: "otlp-grpc", protocol: "TCP", appProtocol: "grpc" },
            { name: "otlp-http", port: PORTS.jaeger.otlpHttp, targetPort: "otlp-http", protocol: "TCP" },
            { name: "http", port: PORTS.jaeger.ui, targetPort: "http", protocol: "TCP" },
            { name: "metrics", port: PORTS.jaeger.metrics, targetPort: "metrics", protocol: "TCP" },
          ],
        },
      },
      child,
    );
    this.serviceName = service.metadata.name;
    this.registerOutputs({ serviceName: this.serviceName });
  }

  /** Jaeger never deletes Elasticsearch/OpenSearch indices: this daily job enforces `jaeger.retention`. */
  private indexCleaner(
    name: string,
    cfg: PlatformConfig,
    ns: pulumi.Input<string>,
    serviceAccountName: pulumi.Input<string>,
    url: string,
    prefix: string,
    credentials: k8s.types.input.core.v1.EnvVar[],
  ): void {
    const c = cfg.jaeger.indexCleaner;
    const id = { name: INDEX_CLEANER, component: "tracing", image: c.image };
    new k8s.batch.v1.CronJob(
      `${name}-index-cleaner`,
      {
        metadata: { name: INDEX_CLEANER, namespace: ns, labels: labels(cfg, id) },
        spec: {
          schedule: c.schedule,
          concurrencyPolicy: "Forbid",
          successfulJobsHistoryLimit: 1,
          failedJobsHistoryLimit: 3,
          jobTemplate: {
            spec: {
              backoffLimit: 2,
              activeDeadlineSeconds: 1800,
              template: {
                metadata: { labels: labels(cfg, id) },
                spec: scheduled(cfg, "batch", {
                  restartPolicy: "OnFailure",
                  serviceAccountName,
                  automountServiceAccountToken: false,
                  securityContext: restrictedPod({ uid: JAEGER_UID }),
                  containers: [
                    {
                      name: "index-cleaner",
                      image: c.image,
                      // es-index-cleaner <days to keep> <url>: indices older than that are deleted.
                      args: [String(retentionDays(cfg.jaeger.retention)), url],
                      env: [{ name: "INDEX_PREFIX", value: prefix }, ...credentials],
                      resources: c.resources,
                      securityContext: restrictedContainer(),
                    },
                  ],
                }),
              },
            },
          },
        },
      },
      { parent: this },
    );
  }
}

/** Whole days covering a retention such as "168h" (the cleaner works in days). */
export function retentionDays(retention: string): number {
  return Math.max(1, Math.ceil(Number(retention.replace(/h$/, "")) / 24));
}
