// The HTTP services tier: one HttpService per `services` entry (seed 000's API is `api`; seed 001's
// auth/chat/billing are more entries; a `static` entry is an nginx frontend). Each gets a
// ConfigMap, a Deployment that rolls with zero downtime, HPA, PDB, a ClusterIP Service, an
// optional LoadBalancer/NodePort Service, and the graph edges its `dependsOn` implies.
import * as crypto from "crypto";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { HttpServiceConfig, ServiceConfig, StaticServiceConfig } from "../config/app";
import { resolveDependsOn } from "../config/dependencies";
import { imageOf } from "../config/common";
import type { PlatformConfig } from "../config/schema";
import type { AppEnvSources } from "./lib/appwiring";
import { connectDependencies, dependencyConfig, secretEnvFor, sortedData } from "./lib/appwiring";
import { declareEgress } from "./lib/egress";
import type { DependencyGraph } from "./lib/graph";
import { labels } from "./lib/labels";
import { STATIC_HEALTH_PATH, staticSiteConf } from "./lib/nginx";
import { checksum, httpProbe, restrictedContainer, startupProbe } from "./lib/pod";
import { demoServer, withDemo } from "./lib/demo";
import type { Workload } from "./lib/workload";
import type { Route } from "./edge";
import { createWorkload } from "./lib/workload";
import { createMigration } from "./migration";
import type { Platform } from "./platform";
import type { GeneratedSecrets, SecretRef } from "./secrets";

type Container = k8s.types.input.core.v1.Container;
type EnvVar = k8s.types.input.core.v1.EnvVar;

/** What the app components (services, workers) take; the integrator passes connections and telemetry. */
export interface AppArgs {
  config: PlatformConfig;
  platform: Platform;
  secrets: GeneratedSecrets;
  graph: DependencyGraph;
  /** The data tier's `app-connections` Secret; each key becomes an env var (secretKeyRef). */
  connections?: SecretRef;
  /** OpenTelemetry env (observability tier), appended to every app container. */
  telemetryEnv?: (workload: string) => EnvVar[];
  /** The mail tier's `mail-submission` Secret (SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD, SMTP_FROM, ...). */
  mailSubmission?: SecretRef;
  /** What a migration Job waits for: the stores and the NetworkPolicies, which are built after the app tiers. */
  migrationsAfter?: Promise<pulumi.Resource[]>;
}

/** Changes when a credential is rotated (secrets.rotation / rotate), so pods pick up the new values. */
export function secretsChecksum(cfg: PlatformConfig): string {
  return crypto.createHash("sha256").update(JSON.stringify({ rotation: cfg.secrets.rotation, rotate: cfg.secrets.rotate })).digest("hex");
}

export function envSources(args: AppArgs): AppEnvSources {
  return { app: args.secrets.app, external: args.secrets.external, connections: args.connections, mail: args.mailSubmission, telemetryEnv: args.telemetryEnv };
}

export class HttpServices extends pulumi.ComponentResource {
  readonly services: Record<string, HttpService> = {};
  /** Path prefixes for the edge tier, one per enabled service that sets `path`. */
  readonly routes: Route[] = [];

  constructor(name: string, args: AppArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:app:HttpServices", name, {}, opts);
    for (const [svcName, svc] of Object.entries(args.config.services)) {
      if (!svc.enabled) continue;
      const s = new HttpService(svcName, { ...args, name: svcName, service: svc }, { parent: this });
      this.services[svcName] = s;
      if (svc.path !== undefined) this.routes.push({ path: svc.path, service: svcName, port: s.httpPort, ...(svc.ingress ? { settings: svc.ingress } : {}) });
    }
    this.registerOutputs({ routes: this.routes });
  }
}

export interface HttpServiceArgs extends AppArgs {
  name: string;
  service: ServiceConfig;
}

export class HttpService extends pulumi.ComponentResource {
  readonly workload: Workload;
  readonly service: k8s.core.v1.Service;
  readonly external?: k8s.core.v1.Service;
  readonly configMap: k8s.core.v1.ConfigMap;
  readonly httpPort: number;
  /** The schema migration Job the Deployment waits for, when configured. */
  readonly migration?: k8s.batch.v1.Job;

  constructor(name: string, args: HttpServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:app:HttpService", name, {}, opts);
    const { config: cfg, service: svc, graph } = args;
    const namespace = args.platform.namespaces.app;
    const component = svc.kind === "static" ? "frontend" : "api";
    const meta = (n: string) => ({ name: n, namespace, labels: labels(cfg, { name, component, image: svc.image }) });

    const built = svc.kind === "static" ? staticPod(name, svc) : httpPod(cfg, name, svc, envSources(args));
    this.httpPort = built.httpPort;
    this.configMap = new k8s.core.v1.ConfigMap(built.configMapName, { metadata: meta(built.configMapName), data: built.configData }, { parent: this });
    // Demo mode (dev): the image runs the demo server from a ConfigMap instead of its own command.
    const demo = svc.kind === "http" && svc.demo ? demoServer(name, svc) : undefined;
    if (demo) {
      new k8s.core.v1.ConfigMap(demo.configMapName, { metadata: meta(demo.configMapName), data: demo.data }, { parent: this });
      built.container = withDemo(built.container, demo.env, demo.command);
      built.volumes = [...built.volumes, demo.volume];
    }

    // The migration runs first; the Deployment changes only once it has succeeded.
    const m = svc.kind === "http" && svc.migration?.enabled ? svc.migration : undefined;
    if (svc.kind === "http" && m) {
      this.migration = createMigration({
        config: cfg,
        service: name,
        svc,
        migration: m,
        namespace,
        serviceAccount: args.platform.serviceAccount(name),
        configMap: this.configMap,
        configMapName: built.configMapName,
        sources: envSources(args),
        graph,
        after: args.migrationsAfter,
        parent: this,
      });
    }

    this.workload = createWorkload(
      cfg,
      {
        name,
        component,
        tier: "services",
        image: imageOf(svc, `services.${name}`),
        namespace,
        serviceAccount: args.platform.serviceAccount(name),
        containers: [built.container],
        volumes: built.volumes,
        terminationGracePeriodSeconds: svc.terminationGracePeriodSeconds,
        uid: built.uid,
        // A ConfigMap change or a credential rotation rolls the pods (env is read at start).
        annotations: { "checksum/config": checksum(built.configData), "checksum/secrets": secretsChecksum(cfg), ...(demo ? { "checksum/demo": checksum(demo.data) } : {}) },
        scaling: { kind: "rolling", replicas: svc.replicas, hpa: svc.hpa },
        ...(this.migration ? { dependsOn: [this.migration] } : {}),
      },
      this,
    );
    const selector = this.workload.selector;

    const ports: k8s.types.input.core.v1.ServicePort[] = [{ name: "http", port: built.httpPort, targetPort: "http", protocol: "TCP" }];
    if (built.metricsPort !== undefined) ports.push({ name: "metrics", port: built.metricsPort, targetPort: "metrics", protocol: "TCP" });
    // The health port too: the smoke test (components/smoke.ts) asks /ready through the Service,
    // as the probes do. Only edges the graph declares reach it (the edge routes http alone).
    if (built.healthPort !== undefined) ports.push({ name: "health", port: built.healthPort, targetPort: "health", protocol: "TCP" });
    this.service = new k8s.core.v1.Service(name, { metadata: meta(name), spec: { type: "ClusterIP", selector, ports } }, { parent: this });

    const ex = svc.expose;
    if (ex.type !== "None") {
      const lbName = `${name}-lb`;
      this.external = new k8s.core.v1.Service(
        lbName,
        {
          metadata: meta(lbName),
          spec: {
            type: ex.type,
            selector,
            ports: [{ name: "http", port: built.httpPort, targetPort: "http", protocol: "TCP" }],
            ...(ex.sessionAffinity ? { sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: ex.sessionAffinityTimeoutSeconds } } } : {}),
            // Local keeps the client's address: ClientIP affinity and source ranges see the real client.
            ...(ex.type === "LoadBalancer" ? { externalTrafficPolicy: "Local" } : {}),
            ...(ex.type === "LoadBalancer" && ex.sourceRanges.length > 0 ? { loadBalancerSourceRanges: ex.sourceRanges } : {}),
          },
        },
        { parent: this },
      );
      for (const cidr of ex.sourceRanges.length > 0 ? ex.sourceRanges : ["0.0.0.0/0"]) {
        graph.connect({ kind: "cidr", name: `${lbName} clients`, cidr }, name, [built.httpPort], `${lbName} (${ex.type}) admits external clients`);
      }
    }
    if (svc.kind === "http") {
      connectDependencies(cfg, graph, name, resolveDependsOn(cfg, svc.dependsOn));
      declareEgress(graph, name, svc.egress);
    }
    this.registerOutputs({ service: this.service.metadata.name });
  }
}

export interface BuiltPod {
  container: Container;
  volumes: k8s.types.input.core.v1.Volume[];
  configMapName: string;
  configData: Record<string, string>;
  httpPort: number;
  metricsPort?: number;
  healthPort?: number;
  uid?: number;
}

/** Seed 000's API shape: http/metrics/health ports, /health and /ready probes, env from ConfigMap and Secrets. */
export function httpPod(cfg: PlatformConfig, name: string, svc: HttpServiceConfig, sources: AppEnvSources): BuiltPod {
  const deps = resolveDependsOn(cfg, svc.dependsOn);
  const configMapName = `${name}-config`;
  // Derived keys first; the entry's env may override them (e.g. an external SMTP relay).
  const configData: Record<string, string> = sortedData({
    PORT: String(svc.ports.http),
    ...(svc.ports.metrics != null ? { METRICS_PORT: String(svc.ports.metrics) } : {}),
    ...(svc.ports.health != null ? { HEALTH_PORT: String(svc.ports.health) } : {}),
    ...dependencyConfig(cfg, deps),
    ...svc.env,
  });
  const probePort = svc.ports.health != null ? "health" : "http";
  const ports: k8s.types.input.core.v1.ContainerPort[] = [{ name: "http", containerPort: svc.ports.http, protocol: "TCP" }];
  if (svc.ports.metrics != null) ports.push({ name: "metrics", containerPort: svc.ports.metrics, protocol: "TCP" });
  if (svc.ports.health != null) ports.push({ name: "health", containerPort: svc.ports.health, protocol: "TCP" });
  const liveness = httpProbe(svc.probes.liveness.path, probePort, { periodSeconds: svc.probes.liveness.periodSeconds });
  return {
    configMapName,
    configData,
    httpPort: svc.ports.http,
    metricsPort: svc.ports.metrics ?? undefined,
    healthPort: svc.ports.health ?? undefined,
    volumes: [],
    container: {
      name,
      image: svc.image,
      imagePullPolicy: "IfNotPresent",
      ports,
      envFrom: [{ configMapRef: { name: configMapName } }],
      env: [...secretEnvFor(sources, deps), ...(sources.telemetryEnv?.(name) ?? [])],
      resources: svc.resources,
      // Liveness waits for the startup probe, so a slow boot is never killed.
      startupProbe: startupProbe(liveness, svc.probes.startupSeconds),
      livenessProbe: liveness,
      readinessProbe: httpProbe(svc.probes.readiness.path, probePort, { periodSeconds: svc.probes.readiness.periodSeconds }),
      // Endpoints and the ingress drop the pod while it still serves; then SIGTERM.
      lifecycle: { preStop: { sleep: { seconds: svc.preStopSeconds } } },
      securityContext: restrictedContainer(),
      volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
    },
  };
}

/** Seed 002's frontend: unprivileged nginx (uid 101), config from a ConfigMap, everything else read-only. */
export function staticPod(name: string, svc: StaticServiceConfig): BuiltPod {
  const configMapName = `${name}-nginx`;
  const configData = { "default.conf": staticSiteConf(svc.port, svc.assetMaxAgeSeconds) };
  const probe = (periodSeconds: number) => httpProbe(STATIC_HEALTH_PATH, "http", { periodSeconds });
  return {
    configMapName,
    configData,
    httpPort: svc.port,
    uid: 101,
    volumes: [{ name: "nginx-conf", configMap: { name: configMapName } }],
    container: {
      name,
      image: svc.image,
      imagePullPolicy: "IfNotPresent",
      ports: [{ name: "http", containerPort: svc.port, protocol: "TCP" }],
      env: [{ name: "NGINX_ENTRYPOINT_QUIET_LOGS", value: "1" }],
      resources: svc.resources,
      startupProbe: startupProbe(probe(10), 30, 2),
      livenessProbe: probe(10),
      readinessProbe: probe(5),
      lifecycle: { preStop: { sleep: { seconds: svc.preStopSeconds } } },
      securityContext: restrictedContainer(),
      // nginx-unprivileged keeps its pid and temp files in /tmp.
      volumeMounts: [
        { name: "tmp", mountPath: "/tmp" },
        { name: "nginx-conf", mountPath: "/etc/nginx/conf.d", readOnly: true },
      ],
    },
  };
}
