// The stateless tiers: any number of HTTP services (seed 000's API is the entry `api`, seed 001's
// auth/chat/billing are three more, a `static` entry is an nginx frontend) and Celery workers
// (one Deployment per pool, a singleton beat, optional Flower). Numbers are seed 000's production
// table; a new entry only names what differs from its kind's template (see withAppTemplates).
import { z } from "zod";
import type { Environment } from "./common";
import { appImage, hpa, image, perEnv, port, requireAppImage, res, resources } from "./common";
import { PYTHON_IMAGE } from "./verify";

/** Tiers an app workload can talk to; each becomes graph edges and env wiring. */
export const DEPENDENCIES = ["postgres", "redis", "mongo", "jaeger", "mail"] as const;
export type Dependency = (typeof DEPENDENCIES)[number];

const shortName = z.string().regex(/^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$/, "must be a short DNS label");
const envName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "must be an env var name such as LOG_LEVEL");
/** ConfigMap values; YAML numbers and booleans are accepted and stored as strings. */
const envMap = z.record(envName, z.union([z.string(), z.number(), z.boolean()]).transform(String));
const routePath = z.string().regex(/^\/([a-z0-9._-]+(\/[a-z0-9._-]+)*)?$/, "must be a path prefix such as / or /api/auth");
const cidr = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, "must be an IPv4 CIDR such as 203.0.113.0/24");

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

const common = {
  enabled: z.boolean(),
  image: appImage,
  /** Replicas at creation; the HPA owns the count afterwards. */
  replicas: z.number().int().min(1),
  hpa: hpa,
  resources: resources,
  terminationGracePeriodSeconds: z.number().int().min(1).max(3600),
  /** preStop pause: endpoints controllers and ingress drop the pod before it gets SIGTERM. */
  preStopSeconds: z.number().int().min(0).max(120),
  /** Path prefix the edge routes to this service; omitted means not routed. */
  path: routePath.optional(),
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
  /** ConfigMap keys (seed 000's FLASK_ENV, DB_POOL_SIZE, ...); overrides the derived keys. */
  env: envMap,
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
    if (s.replicas < s.hpa.minReplicas || s.replicas > s.hpa.maxReplicas) {
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
  }
});

const workerPool = z.strictObject({
  queues: z.array(z.string().regex(/^[A-Za-z0-9_.-]+$/, "must be a queue name")).min(1, "must list at least one queue"),
  concurrency: z.number().int().min(1).max(256),
  hpa: hpa,
  resources: resources,
  /** celery --prefetch-multiplier; 1 suits long tasks (fair dispatch). */
  prefetchMultiplier: z.number().int().min(1).max(64).optional(),
  /** celery --max-tasks-per-child; recycles processes that leak memory. */
  maxTasksPerChild: z.number().int().min(1).optional(),
});
export type WorkerPoolConfig = z.infer<typeof workerPool>;

export const workersSchema = z
  .strictObject({
    enabled: z.boolean(),
    image: appImage,
    /** Run a built-in demo Celery app (components/lib/demo.ts) named `celeryApp` on `image`; dev only by default. */
    demo: z.boolean(),
    /** The Celery application (`celery -A <app>`), e.g. app.celery. */
    celeryApp: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(:[A-Za-z_][A-Za-z0-9_]*)?$/, "must be a Python module path such as app.celery"),
    pools: z.record(shortName, workerPool),
    /** The longest task must finish after SIGTERM (Celery's warm shutdown). */
    terminationGracePeriodSeconds: z.number().int().min(1).max(86400),
    /** What workers talk to; omitted means every enabled tier (see resolveDependsOn). */
    dependsOn: z.array(z.enum(DEPENDENCIES)).optional(),
    /** ConfigMap keys shared by pools, beat and Flower. */
    env: envMap,
    beat: z.strictObject({
      enabled: z.boolean(),
      replicas: z.literal(1, { error: "beat is a singleton scheduler: two replicas would run every task twice" }),
      resources: resources,
    }),
    flower: z.strictObject({
      enabled: z.boolean(),
      image: image,
      resources: resources,
    }),
  })
  .superRefine((w, ctx) => {
    requireAppImage(w, [], ctx);
    if (w.enabled && Object.keys(w.pools).length === 0) ctx.addIssue({ code: "custom", path: ["pools"], message: "must define at least one pool when workers are enabled" });
    const owner = new Map<string, string>();
    for (const [pool, p] of Object.entries(w.pools)) {
      for (const q of p.queues) {
        // Two pools on one queue split its tasks unpredictably between their resource profiles.
        if (owner.has(q)) ctx.addIssue({ code: "custom", path: ["pools", pool, "queues"], message: `queue "${q}" is already consumed by pool "${owner.get(q)}"` });
        owner.set(q, pool);
      }
    }
  });
export type WorkersConfig = z.infer<typeof workersSchema>;

type Tiers = Record<Dependency, { enabled: boolean }>;

/** Explicit dependsOn, or every enabled tier (the single-API default of seed 000). */
export function resolveDependsOn(cfg: Tiers, dependsOn: readonly Dependency[] | undefined): Dependency[] {
  return dependsOn ? [...new Set(dependsOn)] : DEPENDENCIES.filter((d) => cfg[d].enabled);
}

export const SESSION_AFFINITY_SECONDS = 10800;

function logLevel(env: Environment): string {
  return perEnv(env, { dev: "DEBUG", staging: "INFO", prod: "WARNING" });
}

/** Template of an `http` entry: everything but the image. */
export function httpServiceTemplate(env: Environment): Omit<z.input<typeof httpServiceSchema>, "image"> {
  return {
    kind: "http",
    enabled: true,
    demo: false,
    replicas: perEnv(env, { dev: 1, staging: 2, prod: 3 }),
    // Prod: seed 000 scales 2-10, but prod runs at least 3 stateless replicas (design card).
    hpa: {
      minReplicas: perEnv(env, { dev: 1, staging: 2, prod: 3 }),
      maxReplicas: perEnv(env, { dev: 2, staging: 4, prod: 10 }),
      cpuUtilization: 70,
      memoryUtilization: 80,
    },
    resources: perEnv(env, {
      dev: res("100m", "128Mi", "500m", "512Mi"),
      staging: res("250m", "256Mi", "1", "1Gi"),
      prod: res("500m", "512Mi", "2", "2Gi"),
    }),
    terminationGracePeriodSeconds: 30,
    preStopSeconds: 10,
    expose: { type: "None", sessionAffinity: false, sessionAffinityTimeoutSeconds: SESSION_AFFINITY_SECONDS, sourceRanges: [] },
    ports: { http: 5000, metrics: 9090, health: 8080 },
    probes: { liveness: { path: "/health", periodSeconds: 10 }, readiness: { path: "/ready", periodSeconds: 5 }, startupSeconds: 180 },
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
      minReplicas: perEnv(env, { dev: 1, staging: 2, prod: 2 }),
      maxReplicas: perEnv(env, { dev: 2, staging: 3, prod: 5 }),
      cpuUtilization: 60,
      memoryUtilization: 70,
    },
    resources: perEnv(env, {
      dev: res("50m", "64Mi", "250m", "256Mi"),
      staging: res("100m", "128Mi", "500m", "512Mi"),
      prod: res("100m", "128Mi", "500m", "512Mi"),
    }),
    terminationGracePeriodSeconds: 30,
    preStopSeconds: 5,
    path: "/",
    expose: { type: "None", sessionAffinity: false, sessionAffinityTimeoutSeconds: SESSION_AFFINITY_SECONDS, sourceRanges: [] },
    port: 8080,
    assetMaxAgeSeconds: 31536000,
  };
}

/** A default without an image: outside dev the user's own image is required (appImage). */
export type WithoutImage<T> = Omit<T, "image"> & { image?: string };

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

/** Template of a worker pool: everything but its queues. */
export function workerPoolTemplate(env: Environment): Omit<z.input<typeof workerPool>, "queues"> {
  return {
    concurrency: perEnv(env, { dev: 2, staging: 4, prod: 4 }),
    hpa: {
      minReplicas: perEnv(env, { dev: 1, staging: 2, prod: 2 }),
      maxReplicas: perEnv(env, { dev: 2, staging: 4, prod: 8 }),
      cpuUtilization: 75,
    },
    resources: perEnv(env, {
      dev: res("100m", "128Mi", "500m", "512Mi"),
      staging: res("250m", "256Mi", "1", "1Gi"),
      prod: res("500m", "512Mi", "2", "2Gi"),
    }),
  };
}

/** Public, pinned, and ships Celery and the Redis client (mher/flower's Dockerfile: `pip install redis flower`). */
export const DEMO_CELERY_IMAGE = "mher/flower:2.0.1";

export function workersDefaults(env: Environment): WithoutImage<z.input<typeof workersSchema>> {
  return {
    enabled: true,
    ...(env === "dev" ? { image: DEMO_CELERY_IMAGE } : {}),
    demo: env === "dev",
    celeryApp: "app.celery",
    pools: { default: { ...workerPoolTemplate(env), queues: ["default"] } },
    terminationGracePeriodSeconds: 300,
    env: { LOG_LEVEL: logLevel(env) },
    beat: {
      enabled: true,
      replicas: 1,
      resources: perEnv(env, {
        dev: res("50m", "64Mi", "250m", "256Mi"),
        staging: res("100m", "128Mi", "500m", "512Mi"),
        prod: res("250m", "256Mi", "1", "1Gi"),
      }),
    },
    flower: {
      enabled: env !== "prod",
      image: DEMO_CELERY_IMAGE,
      resources: res("50m", "128Mi", "250m", "256Mi"),
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

/** Queue names the workers consume (none when workers are off); Celery keeps each as a Redis list of that name. */
export function celeryQueues(cfg: { workers: { enabled: boolean; pools: Record<string, { queues: string[] }> } }): string[] {
  if (!cfg.workers.enabled) return [];
  return [...new Set(Object.values(cfg.workers.pools).flatMap((p) => p.queues))].sort();
}
