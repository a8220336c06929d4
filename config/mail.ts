// Postfix and Dovecot (seed 000's mail tier, seed 003's limits). Issue #5 extends this.
import { z } from "zod";
import type { Environment } from "./common";
import { perEnv, res, resources, storage } from "./common";

const mailWorkload = z.strictObject({
  replicas: z.number().int().min(1).max(10),
  resources: resources,
  storage: storage,
});

export const mailSchema = z.strictObject({
  enabled: z.boolean(),
  postfix: mailWorkload,
  dovecot: mailWorkload,
});

export function mailDefaults(env: Environment): z.input<typeof mailSchema> {
  return {
    enabled: true,
    postfix: {
      replicas: perEnv(env, { dev: 1, staging: 1, prod: 2 }),
      resources: perEnv(env, {
        dev: res("50m", "64Mi", "250m", "256Mi"),
        staging: res("100m", "128Mi", "500m", "512Mi"),
        prod: res("250m", "256Mi", "1", "1Gi"),
      }),
      storage: { size: perEnv(env, { dev: "1Gi", staging: "2Gi", prod: "5Gi" }) },
    },
    dovecot: {
      replicas: 1,
      resources: perEnv(env, {
        dev: res("50m", "64Mi", "250m", "256Mi"),
        staging: res("100m", "256Mi", "500m", "1Gi"),
        prod: res("250m", "512Mi", "1", "2Gi"),
      }),
      storage: { size: perEnv(env, { dev: "1Gi", staging: "5Gi", prod: "10Gi" }) },
    },
  };
}
