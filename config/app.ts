// HTTP services: any number (seed 000's API is the entry `api`, seed 001's auth/chat/billing are
// three more, a `static` entry is an nginx frontend). Numbers are seed 000's production table; a
// new entry only names what differs from its kind's template (see withAppTemplates).
import { z } from "zod";
import type { Environment } from "./common";
import { appImage, appRes, cidr, defaultHpaBehavior, hpa, image, perEnv, port, requireAppImage, resources } from "./common";
import type { WithoutImage } from "./dependencies";
import { DEPENDENCIES, STORE_DEPENDENCIES, envMap, logLevel, shortName } from "./dependencies";
import { egress } from "./egress";
import { PYTHON_IMAGE } from "./verify";
import { workerPoolTemplate } from "./workers";

const routePath = z.string().regex(/^\/([a-z0-9._-]+(\/[a-z0-9._-]+)*)?$/, "must be a path prefix such as / or /api/auth");

const probe = z.strictObject({
  path: z.string().regex(/^\/\S*$/, "must be an HTTP path"),
  periodSeconds: z.number().int().min(1).max(300),
});

/** How a service is reachable from outside the cluster besides the edge's Ingress. */
const expose = z.strictObject({
  /** None: ClusterIP only. NodePort for local clusters (no load balancer), LoadBalancer elsewhere. */
  type: z.enum(["None", "NodePort", "LoadBalancer"]),
  /** Sticky sessions by client IP (seed 000: ClientIP, 10800 s). */
  sessionAffinity: z.boolean(),
  sessionAffinityTimeoutSeconds: z.number().int().min(1).max(86400),
  /** loadBalancerSourceRanges; empty admits every client. */
  sourceRanges: z.array(cidr),
});

/**
 * How the edge's ingress-nginx proxies one route (seed 004). Each is an ingress-nginx annotation
 * on the route's own Ingress; upstream keepalive is controller-wide (edge.upstreamKeepalive).
 */
export const routeSettingsSchema = z.strictObject({
  /** `load-balance`: round_robin (the controller's default) or ewma (picks the pod with the lowest latency-weighted load). */
  loadBalance: z.enum(["round_robin", "ewma"]).optional(),
  /** `proxy-next-upstream`: when a try fails this way, nginx retries the request on another pod. */
  retry: z
    .strictObject({
      on: z.array(z.enum(["error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504", "http_429", "non_idempotent"])).min(1, "must list at least one condition"),
      /** `proxy-next-upstream-tries`: attempts in all, the first included. */
      tries: z.number().int().min(1).max(10),
      /** `proxy-next-upstream-timeout`: time budget for all tries. */
      timeoutSeconds: z.number().int().min(1).max(3600).optional(),
    })
    .optional(),
  /** `proxy-connect-timeout` (nginx caps it at 75 s), `proxy-send-timeout`, `proxy-read-timeout`. */
  timeouts: z
    .strictObject({
      connectSeconds: z.number().int().min(1).max(75).optional(),
      sendSeconds: z.number().int().min(1).max(3600).optional(),
      readSeconds: z.number().int().min(1).max(3600).optional(),
    })
    .optional(),
});
export type RouteSettings = z.infer<typeof routeSettingsSchema>;

/**
 * A schema migration run as a Job before the service's Deployment rolls (components/migration.ts).
 * It reruns only when its image or command changes; a failure fails `pulumi up` before any pod of
 * the new version starts.
 */
export const migrationSchema = z.strictObject({
  /** Off skips it (a rollback that must not run the previous release's migration, docs/app.md). */
  enabled: z.boolean().default(true),
  /** Defaults to the service's image (the release carries its migrations). */
  image: image.optional(),
  /** The full command, e.g. [alembic, upgrade, head]. */
  command: z.array(z.string().min(1)).min(1, "must name the migration command"),
  /** The stores it connects to (their env and edges); defaults to the service's stores. */
  dependsOn: z.array(z.enum(STORE_DEPENDENCIES)).optional(),
  /** Defaults to the service's resources. */
  resources: resources.optional(),
  /** activeDeadlineSeconds: a migration still running after this is failed (and so is `pulumi up`). */
  timeoutSeconds: z.number().int().min(30).max(86400).default(900),
  /** Retries after a failure; 0 fails at once (a half-applied migration needs a human). */
  backoffLimit: z.number().int().min(0).max(10).default(0),
});
export type MigrationConfig = z.infer<typeof migrationSchema>;

const common = {
  enabled: z.boolean(),
  image: appImage,
  /** Replicas at creation, or the fixed count when hpa.enabled is false. */
  replicas: z.number().int().min(1),
  hpa: hpa,
  resources: resources,
  terminationGracePeriodSeconds: z.number().int().min(1).max(3600),
  /** preStop pause: endpoints controllers and ingress drop the pod before it gets SIGTERM. */
  preStopSeconds: z.number().int().min(0).max(120),
  /** Path prefix the edge routes to this service; omitted means not routed. */
  path: routePath.optional(),
  /** How the edge proxies `path`; omitted keeps the controller's defaults. */
  ingress: routeSettingsSchema.optional(),
  expose: expose,
};

export const httpServiceSchema = z.strictObject({
  kind: z.literal("http"),
  ...common,
  /**
   * Run the built-in demo server (components/lib/demo.ts) on `image` instead of the image's own
   * command: it answers the probes and serves the ports below. On for dev's `api` only.
   */
  demo: z.boolean(),
  /** metrics/health: null (or omitted) when the app has no such port; probes then use http. */
  ports: z.strictObject({ http: port, metrics: port.nullable().optional(), health: port.nullable().optional() }),
  /** Liveness and readiness hit the health port when there is one, else http. */
  probes: z.strictObject({
    liveness: probe,
    readiness: probe,
    /** How long a boot may take before liveness applies (startup probe budget). */
    startupSeconds: z.number().int().min(10).max(1800),
  }),
  /** What the service talks to; omitted means every enabled tier (see resolveDependsOn). */
  dependsOn: z.array(z.enum(DEPENDENCIES)).optional(),
  /** Destinations outside the cluster it calls (config/egress.ts); nothing else is reachable. */
  egress: egress,
  /** ConfigMap keys (seed 000's FLASK_ENV, DB_POOL_SIZE, ...); overrides the derived keys. */
  env: envMap,
  migration: migrationSchema.optional(),
});

/** Seed 002's frontend: static files served by unprivileged nginx. */
export const staticServiceSchema = z.strictObject({
  kind: z.literal("static"),
  ...common,
  port: port,
  /** Cache-Control max-age for fingerprinted assets (js, css, images, fonts); index.html is never cached. */
  assetMaxAgeSeconds: z.number().int().min(0).max(31536000),
});

export const serviceSchema = z.discriminatedUnion("kind", [httpServiceSchema, staticServiceSchema]);
export type ServiceConfig = z.infer<typeof serviceSchema>;
export type HttpServiceConfig = z.infer<typeof httpServiceSchema>;
export type StaticServiceConfig = z.infer<typeof staticServiceSchema>;

export const servicesSchema = z.record(shortName, serviceSchema).superRefine((services, ctx) => {
  const paths = new Map<string, string>();
  for (const [name, s] of Object.entries(services)) {
    requireAppImage(s, [name], ctx);
    if (s.hpa.enabled && (s.replicas < s.hpa.minReplicas || s.replicas > s.hpa.maxReplicas)) {
      ctx.addIssue({ code: "custom", path: [name, "replicas"], message: `must be within hpa.minReplicas..maxReplicas (${s.hpa.minReplicas}..${s.hpa.maxReplicas})` });
    }
    if (s.preStopSeconds >= s.terminationGracePeriodSeconds) {
      ctx.addIssue({ code: "custom", path: [name, "preStopSeconds"], message: `must be < terminationGracePeriodSeconds (${s.terminationGracePeriodSeconds})` });
    }
    if (s.kind === "http") {
      const used = [s.ports.http, s.ports.metrics, s.ports.health].filter((p) => p != null);
      if (new Set(used).size !== used.length) ctx.addIssue({ code: "custom", path: [name, "ports"], message: "must be distinct port numbers" });
    }
    if (s.enabled && s.path !== undefined) {
      const other = paths.get(s.path);
      if (other) ctx.addIssue({ code: "custom", path: [name, "path"], message: `is already routed to service "${other}"` });
      paths.set(s.path, name);
    }
    if (s.ingress !== undefined && s.path === undefined) ctx.addIssue({ code: "custom", path: [name, "ingress"], message: "is only used for a routed service: set path too" });
  }
});

export const SESSION_AFFINITY_SECONDS = 10800;

/** Template of an `http` entry: everything but the image. */
export function httpServiceTemplate(env: Environment): Omit<z.input<typeof httpServiceSchema>, "image"> {
  return {
    kind: "http",
    enabled: true,
    demo: false,
    replicas: perEnv(env, { dev: 1, staging: 2, prod: 3 }),
    // Prod: seed 000 scales 2-10, but prod runs at least 3 stateless replicas (design card).
    hpa: {
      enabled: true,
      minReplicas: perEnv(env, { dev: 1, staging: 2, prod: 3 }),
      maxReplicas: perEnv(env, { dev: 2, staging: 4, prod: 10 }),
      cpuUtilization: 70,
      memoryUtilization: 80,
      behavior: defaultHpaBehavior(),
    },
    resources: perEnv(env, {
      dev: appRes("100m", "128Mi", "500m", "512Mi"),
      staging: appRes("250m", "256Mi", "1", "1Gi"),
      prod: appRes("500m", "512Mi", "2", "2Gi"),
    }),
    terminationGracePeriodSeconds: 30,
    preStopSeconds: 10,
    expose: { type: "None", sessionAffinity: false, sessionAffinityTimeoutSeconds: SESSION_AFFINITY_SECONDS, sourceRanges: [] },
    ports: { http: 5000, metrics: 9090, health: 8080 },
    probes: { liveness: { path: "/health", periodSeconds: 10 }, readiness: { path: "/ready", periodSeconds: 5 }, startupSeconds: 180 },
    egress: {},
    env: { LOG_LEVEL: logLevel(env) },
  };
}

/** Template of a `static` entry (seed 002's frontend: 128Mi-512Mi, HPA 2-5 on CPU 60% / memory 70%). */
export function staticServiceTemplate(env: Environment): z.input<typeof staticServiceSchema> {
  return {
    kind: "static",
    enabled: true,
    image: "nginxinc/nginx-unprivileged:1.27.3-alpine",
    replicas: perEnv(env, { dev: 1, staging: 2, prod: 2 }),
    hpa: {
      enabled: true,
      minReplicas: perEnv(env, { dev: 1, staging: 2, prod: 2 }),
      maxReplicas: perEnv(env, { dev: 2, staging: 3, prod: 5 }),
      cpuUtilization: 60,
      memoryUtilization: 70,
      behavior: defaultHpaBehavior(),
    },
    resources: perEnv(env, {
      dev: appRes("50m", "64Mi", "250m", "256Mi"),
      staging: appRes("100m", "128Mi", "500m", "512Mi"),
      prod: appRes("100m", "128Mi", "500m", "512Mi"),
    }),
    terminationGracePeriodSeconds: 30,
    preStopSeconds: 5,
    path: "/",
    expose: { type: "None", sessionAffinity: false, sessionAffinityTimeoutSeconds: SESSION_AFFINITY_SECONDS, sourceRanges: [] },
    port: 8080,
    assetMaxAgeSeconds: 31536000,
  };
}


/** Dev: 1 replica, minimal resources. Staging: 2. Prod: seed 000 (3+ running, HPA up to 10). */
export function servicesDefaults(env: Environment): Record<string, WithoutImage<z.input<typeof httpServiceSchema>>> {
  const t = httpServiceTemplate(env);
  return {
    api: {
      ...t,
      // Dev converges with public images only: the demo server on the official Python image.
      ...(env === "dev" ? { image: PYTHON_IMAGE, demo: true } : {}),
      path: "/api",
      // Seed 000 also published the API on a plain-HTTP LoadBalancer (email-service-lb). Secure by
      // default: staging/prod are reached through the edge's TLS Ingress only, and `expose.type:
      // LoadBalancer` brings the seed's LB back (ClientIP affinity set). Dev gets a NodePort, as a
      // local cluster has neither a load balancer nor, necessarily, an ingress controller.
      expose: { type: perEnv(env, { dev: "NodePort", staging: "None", prod: "None" }), sessionAffinity: true, sessionAffinityTimeoutSeconds: SESSION_AFFINITY_SECONDS, sourceRanges: [] },
      // Seed 000's email-service-config.
      env: {
        FLASK_ENV: perEnv(env, { dev: "development", staging: "production", prod: "production" }),
        DB_POOL_SIZE: "20",
        GUNICORN_WORKERS: "4",
        IMAP_POOL_SIZE: "10",
        RATE_LIMIT_REQUESTS_PER_MINUTE: "60",
        LOG_LEVEL: logLevel(env),
        ENABLE_IMAP_SYNC: "true",
        ENABLE_METRICS: "true",
      },
    },
  };
}


type Merge = (base: unknown, over: unknown) => unknown;

/**
 * Fills every service entry and worker pool from its kind's template, so a stack file adds a
 * service with `{ image, path }` or a pool with `{ queues }` alone. Runs on the merged raw config
 * (before validation); the loader calls it. Entries that are not objects are left to the schema.
 */
export function withAppTemplates(env: Environment, merged: Record<string, unknown>, merge: Merge): Record<string, unknown> {
  const out = { ...merged };
  const services = merged.services;
  if (isRecord(services)) {
    out.services = Object.fromEntries(
      Object.entries(services).map(([name, entry]) => {
        if (!isRecord(entry)) return [name, entry];
        const kind = entry.kind ?? "http";
        const template = kind === "static" ? staticServiceTemplate(env) : kind === "http" ? httpServiceTemplate(env) : {};
        return [name, merge(template, entry)];
      }),
    );
  }
  const workers = merged.workers;
  if (isRecord(workers) && isRecord(workers.pools)) {
    const pools = Object.fromEntries(Object.entries(workers.pools).map(([name, p]) => [name, isRecord(p) ? merge(workerPoolTemplate(env), p) : p]));
    out.workers = { ...workers, pools };
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

