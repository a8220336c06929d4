// Celery workers: one Deployment per pool, a singleton beat, optional Flower (seeds 000 and 002).
import { z } from "zod";
import type { Environment } from "./common";
import { appImage, appRes, defaultHpaBehavior, hpa, image, perEnv, requireAppImage, resources } from "./common";
import type { WithoutImage } from "./dependencies";
import { DEPENDENCIES, envMap, logLevel, shortName } from "./dependencies";
import { egress } from "./egress";
import { placementSchema } from "./scheduling";

const workerPool = z.strictObject({
  queues: z.array(z.string().regex(/^[A-Za-z0-9_.-]+$/, "must be a queue name")).min(1, "must list at least one queue"),
  concurrency: z.number().int().min(1).max(256),
  /** Replicas at creation (default hpa.minReplicas), or the fixed count when hpa.enabled is false. */
  replicas: z.number().int().min(1).optional(),
  hpa: hpa,
  resources: resources,
  /** celery --prefetch-multiplier; 1 suits long tasks (fair dispatch). */
  prefetchMultiplier: z.number().int().min(1).max(64).optional(),
  /** celery --max-tasks-per-child; recycles processes that leak memory. */
  maxTasksPerChild: z.number().int().min(1).optional(),
  /** Destinations outside the cluster its tasks call (config/egress.ts). */
  egress: egress,
  /**
   * Where this pool's pods run, instead of scheduling.tiers.workers (config/scheduling.ts): a pool
   * whose tasks must not be interrupted stays on on-demand nodes while the others use spot nodes.
   */
  placement: placementSchema.optional(),
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
      if (p.hpa.enabled && p.replicas !== undefined && (p.replicas < p.hpa.minReplicas || p.replicas > p.hpa.maxReplicas)) {
        ctx.addIssue({ code: "custom", path: ["pools", pool, "replicas"], message: `must be within hpa.minReplicas..maxReplicas (${p.hpa.minReplicas}..${p.hpa.maxReplicas})` });
      }
      for (const q of p.queues) {
        // Two pools on one queue split its tasks unpredictably between their resource profiles.
        if (owner.has(q)) ctx.addIssue({ code: "custom", path: ["pools", pool, "queues"], message: `queue "${q}" is already consumed by pool "${owner.get(q)}"` });
        owner.set(q, pool);
      }
    }
  });
export type WorkersConfig = z.infer<typeof workersSchema>;

/** Template of a worker pool: everything but its queues. */
export function workerPoolTemplate(env: Environment): Omit<z.input<typeof workerPool>, "queues"> {
  return {
    concurrency: perEnv(env, { dev: 2, staging: 4, prod: 4 }),
    hpa: {
      enabled: true,
      minReplicas: perEnv(env, { dev: 1, staging: 2, prod: 2 }),
      maxReplicas: perEnv(env, { dev: 2, staging: 4, prod: 8 }),
      cpuUtilization: 75,
      behavior: defaultHpaBehavior(),
    },
    resources: perEnv(env, {
      dev: appRes("100m", "128Mi", "500m", "512Mi"),
      staging: appRes("250m", "256Mi", "1", "1Gi"),
      prod: appRes("500m", "512Mi", "2", "2Gi"),
    }),
    egress: {},
  };
}

/** A pool's replicas at creation (or fixed count without an HPA). */
export function poolReplicas(p: WorkerPoolConfig): number {
  return p.replicas ?? p.hpa.minReplicas;
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
        dev: appRes("50m", "64Mi", "250m", "256Mi"),
        staging: appRes("100m", "128Mi", "500m", "512Mi"),
        prod: appRes("250m", "256Mi", "1", "1Gi"),
      }),
    },
    flower: {
      enabled: env !== "prod",
      image: DEMO_CELERY_IMAGE,
      resources: appRes("50m", "128Mi", "250m", "256Mi"),
    },
  };
}

/** Queue names the workers consume (none when workers are off); Celery keeps each as a Redis list of that name. */
export function celeryQueues(cfg: { workers: { enabled: boolean; pools: Record<string, { queues: string[] }> } }): string[] {
  if (!cfg.workers.enabled) return [];
  return [...new Set(Object.values(cfg.workers.pools).flatMap((p) => p.queues))].sort();
}
