// Post-deploy verification (issue 7): the in-cluster smoke test Job and the rollout report that
// `pulumi up` runs on the operator's machine (@pulumi/command). See docs/verify.md.
import { z } from "zod";
import type { Environment } from "./common";
import { appRes, image, resources } from "./common";
import { STORE_DEPENDENCIES } from "./dependencies";

/** Official Python runtime: runs the dev demo API and the smoke test's HTTP/SMTP/IMAP/OTLP checks. */
export const PYTHON_IMAGE = "python:3.12.7-alpine3.20";

export const verifySchema = z.strictObject({
  smoke: z.strictObject({
    /** A Job after every tier that checks the platform from inside the app namespace; a failure fails `pulumi up`. */
    enabled: z.boolean(),
    /** Runs the HTTP, SMTP, IMAP and OTLP checks (Python stdlib); the stores' checks use the stores' own images. */
    image: image,
    /** How long one check retries (NetworkPolicies and DNS settle a few seconds after the pods are ready). */
    retrySeconds: z.number().int().min(0).max(600),
    /** Checks the Python container runs at once (HTTP services, SMTP, IMAP, OTLP); each still prints its own line. */
    concurrency: z.number().int().min(1).max(64),
    /** activeDeadlineSeconds of the Job: image pulls and every check together. */
    timeoutSeconds: z.number().int().min(60).max(3600),
    resources: resources,
  }),
  rollout: z.strictObject({
    /** `kubectl rollout status` for every Deployment/StatefulSet, then the endpoints; runs on `pulumi up` only. */
    enabled: z.boolean(),
    /** --timeout of each `kubectl rollout status`. */
    timeoutSeconds: z.number().int().min(10).max(3600),
  }),
});
export type VerifyConfig = z.infer<typeof verifySchema>;

export function verifyDefaults(_env: Environment): z.input<typeof verifySchema> {
  return {
    smoke: {
      enabled: true,
      image: PYTHON_IMAGE,
      retrySeconds: 120,
      concurrency: 16,
      // A fresh cluster pulls the store images first (mongo is large).
      timeoutSeconds: 900,
      // mongosh is a Node.js runtime: 256Mi.
      resources: appRes("50m", "64Mi", "500m", "256Mi"),
    },
    rollout: { enabled: true, timeoutSeconds: 300 },
  };
}

/**
 * Containers of the smoke pod (components/smoke.ts): one per enabled store (its own client,
 * authenticating for real) and one Python container for every other check. They run side by
 * side, so the pod requests all of them at once (the quota counts each).
 */
export function smokeContainerCount(cfg: Record<(typeof STORE_DEPENDENCIES)[number], { enabled: boolean }>): number {
  return 1 + STORE_DEPENDENCIES.filter((s) => cfg[s].enabled).length;
}
