// Postgres, Redis and MongoDB. Issue #4 extends these; numbers from seeds 000 and 002.
import { z } from "zod";
import type { Environment } from "./common";
import { image, perEnv, res, resources, storage } from "./common";

function storeSchema() {
  return z.strictObject({
    enabled: z.boolean(),
    image: image,
    /** Stores do not replicate yet: a second replica would be an independent, diverging copy. */
    replicas: z.literal(1, { error: "replication is not built yet: more than one replica would create independent copies of the data" }),
    resources: resources,
    storage: storage,
  });
}
export const postgresSchema = storeSchema();
export const redisSchema = storeSchema();
export const mongoSchema = storeSchema();

export function postgresDefaults(env: Environment): z.input<typeof postgresSchema> {
  return {
    enabled: true,
    image: "postgres:16.4-alpine",
    replicas: 1,
    resources: perEnv(env, {
      dev: res("100m", "256Mi", "500m", "512Mi"),
      staging: res("250m", "512Mi", "1", "2Gi"),
      prod: res("500m", "1Gi", "2", "4Gi"),
    }),
    storage: { size: perEnv(env, { dev: "1Gi", staging: "5Gi", prod: "10Gi" }) },
  };
}

export function redisDefaults(env: Environment): z.input<typeof redisSchema> {
  return {
    enabled: true,
    image: "redis:7.4.1-alpine",
    replicas: 1,
    resources: perEnv(env, {
      dev: res("50m", "128Mi", "250m", "256Mi"),
      staging: res("100m", "256Mi", "500m", "1Gi"),
      prod: res("250m", "512Mi", "1", "2Gi"),
    }),
    storage: { size: perEnv(env, { dev: "1Gi", staging: "2Gi", prod: "5Gi" }) },
  };
}

export function mongoDefaults(env: Environment): z.input<typeof mongoSchema> {
  return {
    enabled: true,
    image: "mongo:7.0.14",
    replicas: 1,
    resources: perEnv(env, {
      dev: res("100m", "256Mi", "500m", "1Gi"),
      staging: res("250m", "512Mi", "1", "2Gi"),
      prod: res("500m", "1Gi", "2", "4Gi"),
    }),
    storage: { size: perEnv(env, { dev: "2Gi", staging: "20Gi", prod: "100Gi" }) },
  };
}
