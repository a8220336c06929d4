// The stateless tiers: HTTP services (seed 000's API is the entry `api`) and Celery workers.
// Issue #3 and #8 extend these; the numbers are seed 000's production table.
import { z } from "zod";
import type { Environment } from "./common";
import { hpa, image, perEnv, res, resources } from "./common";

export const serviceSchema = z.strictObject({
  enabled: z.boolean(),
  image: image,
  replicas: z.number().int().min(1),
  hpa: hpa,
  resources: resources,
  terminationGracePeriodSeconds: z.number().int().min(1).max(3600),
});
export type ServiceConfig = z.infer<typeof serviceSchema>;

export const servicesSchema = z.record(z.string().regex(/^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$/, "must be a short DNS label"), serviceSchema);

const workerPool = z.strictObject({
  queues: z.array(z.string().regex(/^[A-Za-z0-9_.-]+$/, "must be a queue name")).min(1, "must list at least one queue"),
  concurrency: z.number().int().min(1).max(256),
  hpa: hpa,
  resources: resources,
});

export const workersSchema = z.strictObject({
  enabled: z.boolean(),
  image: image,
  pools: z.record(z.string().regex(/^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$/, "must be a short DNS label"), workerPool),
  terminationGracePeriodSeconds: z.number().int().min(1).max(86400),
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
});

/** Dev: 1 replica, minimal resources. Staging: 2. Prod: seed 000 (3+ running, HPA 2-10). */
export function servicesDefaults(env: Environment): Record<string, z.input<typeof serviceSchema>> {
  return {
    api: {
      enabled: true,
      image: "ghcr.io/example/email-api:1.0.0",
      replicas: perEnv(env, { dev: 1, staging: 2, prod: 3 }),
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
    },
  };
}

export function workersDefaults(env: Environment): z.input<typeof workersSchema> {
  return {
    enabled: true,
    image: "ghcr.io/example/email-worker:1.0.0",
    pools: {
      default: {
        queues: ["default"],
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
      },
    },
    terminationGracePeriodSeconds: 300,
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
      image: "mher/flower:2.0.1",
      resources: res("50m", "128Mi", "250m", "256Mi"),
    },
  };
}
