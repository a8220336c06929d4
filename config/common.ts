// Building blocks shared by the tier schemas. Every object is strict: an unknown key is an
// error (with a suggestion), never silently ignored.
import { z } from "zod";
import { CPU_PATTERN, MEMORY_PATTERN, bytes, cpuMillis } from "./quantity";

export const ENVIRONMENTS = ["dev", "staging", "prod"] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

/** Picks the value for an environment; keeps per-environment defaults on one line. */
export function perEnv<T>(env: Environment, values: Record<Environment, T>): T {
  return values[env];
}

export const cpu = z.string().regex(CPU_PATTERN, "must be a CPU quantity such as 250m or 2");
export const memory = z.string().regex(MEMORY_PATTERN, "must be a memory quantity such as 512Mi or 2Gi");
export const ephemeralStorage = z
  .string()
  .regex(MEMORY_PATTERN, "must be a storage quantity such as 512Mi or 2Gi")
  .refine((s) => !MEMORY_PATTERN.test(s) || bytes(s) > 0, "must be greater than zero");
export const storageSize = z
  .string()
  .regex(/^\d+(\.\d+)?(Mi|Gi|Ti)$/, "must be a storage size such as 10Gi")
  .refine((s) => !MEMORY_PATTERN.test(s) || bytes(s) > 0, "must be greater than zero");

/**
 * Requests and limits of one container. `ephemeral-storage` (Kubernetes' own key) bounds what the
 * container writes outside its volumes (logs, emptyDirs count at pod level): optional, as the
 * seeds give it for some workloads only; the app templates set a default (APP_EPHEMERAL_STORAGE).
 */
const quantities = z.strictObject({ cpu, memory, "ephemeral-storage": ephemeralStorage.optional() });
export const resources = z
  .strictObject({
    requests: quantities,
    limits: quantities,
  })
  .superRefine((r, ctx) => {
    if (CPU_PATTERN.test(r.requests.cpu) && CPU_PATTERN.test(r.limits.cpu) && cpuMillis(r.requests.cpu) > cpuMillis(r.limits.cpu)) {
      ctx.addIssue({ code: "custom", path: ["requests", "cpu"], message: `must not exceed limits.cpu (${r.limits.cpu})` });
    }
    for (const key of ["memory", "ephemeral-storage"] as const) {
      const [req, lim] = [r.requests[key], r.limits[key]];
      if (req !== undefined && lim !== undefined && MEMORY_PATTERN.test(req) && MEMORY_PATTERN.test(lim) && bytes(req) > bytes(lim)) {
        ctx.addIssue({ code: "custom", path: ["requests", key], message: `must not exceed limits.${key} (${lim})` });
      }
    }
  });
export type Resources = z.infer<typeof resources>;

/**
 * Ephemeral storage of an app container: its logs (the kubelet keeps about 50Mi per container)
 * and the 64Mi /tmp emptyDir fit in the request; the limit evicts a pod that fills the node's
 * disk instead of the node evicting its neighbours.
 */
export const APP_EPHEMERAL_STORAGE = { request: "128Mi", limit: "1Gi" } as const;

export function res(reqCpu: string, reqMem: string, limCpu: string, limMem: string): Resources {
  return { requests: { cpu: reqCpu, memory: reqMem }, limits: { cpu: limCpu, memory: limMem } };
}

/** `res` plus the app containers' default ephemeral storage. */
export function appRes(reqCpu: string, reqMem: string, limCpu: string, limMem: string): Resources {
  const r = res(reqCpu, reqMem, limCpu, limMem);
  return { requests: { ...r.requests, "ephemeral-storage": APP_EPHEMERAL_STORAGE.request }, limits: { ...r.limits, "ephemeral-storage": APP_EPHEMERAL_STORAGE.limit } };
}

/**
 * An image reference with a tag or digest. Whether `latest` is allowed depends on the
 * environment, so that rule lives in the root schema (see schema.ts, imagePolicy).
 */
export const image = z
  .string()
  .regex(
    /^[a-z0-9]+([._/-][a-z0-9]+)*(:\d+)?(\/[a-z0-9._-]+)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$/,
    "must be an image reference such as postgres:16.4-alpine or repo/name@sha256:<digest>",
  )
  .refine((s) => /:[\w][\w.-]*$/.test(s.split("/").pop() ?? "") || s.includes("@sha256:"), "must pin a tag or digest");

/**
 * The image of the user's own application (API, workers). Only dev has a default (a public demo,
 * see components/lib/demo.ts); staging and prod must name the real image, so a missing key is an error.
 */
/**
 * The user's application image: optional in the schema because only dev has a default (a public
 * demo image); `requireAppImage` makes it required wherever the workload is enabled.
 */
export const appImage = image.optional();
export const APP_IMAGE_REQUIRED = "is required: your application's image (only the dev stack defaults to a public demo image)";

/** The image of an enabled workload; validation guarantees it, so a miss is a program bug. */
export function imageOf(w: { image?: string }, what: string): string {
  if (w.image === undefined) throw new Error(`${what}: enabled without an image (config validation should have refused this)`);
  return w.image;
}

export function requireAppImage(w: { enabled: boolean; image?: string }, path: (string | number)[], ctx: z.RefinementCtx): void {
  if (w.enabled && w.image === undefined) ctx.addIssue({ code: "custom", path: [...path, "image"], message: APP_IMAGE_REQUIRED });
}

export const port = z.number().int().min(1).max(65535);

/** An IPv4 or IPv6 CIDR (NetworkPolicy ipBlock). */
export const cidr = z
  .string()
  .regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$|^[0-9a-f:]+\/\d{1,3}$/, "must be a CIDR such as 10.0.0.0/8 or 203.0.113.7/32");
export const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a DNS-1123 label (lowercase letters, digits, '-')")
  .max(63);
export const hostname = z
  .string()
  .regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,}$/, "must be a fully qualified DNS name such as app.example.com");

/** One HPA scaling policy: at most `value` pods (or percent of the current count) per period. */
const scalingPolicy = z.strictObject({
  type: z.enum(["Pods", "Percent"]),
  value: z.number().int().min(1),
  periodSeconds: z.number().int().min(1).max(1800),
});

/** autoscaling/v2 HPAScalingRules, with the API server's bounds. */
const scalingRules = z.strictObject({
  stabilizationWindowSeconds: z.number().int().min(0).max(3600),
  /** Max: the policy allowing the biggest change wins; Min: the smallest; Disabled: never scale this way. */
  selectPolicy: z.enum(["Max", "Min", "Disabled"]),
  policies: z.array(scalingPolicy).min(1, "must list at least one policy (the API server requires one; selectPolicy: Disabled stops scaling in this direction)"),
});
export type ScalingRules = z.infer<typeof scalingRules>;

/**
 * The platform's default behaviour (seeds 000 and 004): scale up fast (100% or +2 pods per 60 s,
 * whichever is more); scale down slowly (at most 50% or 1 pod per 60 s, whichever is less, after
 * a 300 s stabilization window) so load spikes do not flap. A function: every template gets its
 * own copy.
 */
export function defaultHpaBehavior(): { scaleUp: ScalingRules; scaleDown: ScalingRules } {
  return {
    scaleUp: {
      stabilizationWindowSeconds: 0,
      selectPolicy: "Max",
      policies: [
        { type: "Percent", value: 100, periodSeconds: 60 },
        { type: "Pods", value: 2, periodSeconds: 60 },
      ],
    },
    scaleDown: {
      stabilizationWindowSeconds: 300,
      selectPolicy: "Min",
      policies: [
        { type: "Percent", value: 50, periodSeconds: 60 },
        { type: "Pods", value: 1, periodSeconds: 60 },
      ],
    },
  };
}

/**
 * HPA v2 settings of a service or worker pool. `enabled: false` creates no HPA: the workload runs
 * its `replicas` (a fixed count, scaled by hand), and the quota and PDB follow that count.
 */
export const hpa = z
  .strictObject({
    enabled: z.boolean(),
    minReplicas: z.number().int().min(1),
    maxReplicas: z.number().int().min(1),
    cpuUtilization: z.number().int().min(1).max(100),
    memoryUtilization: z.number().int().min(1).max(100).optional(),
    behavior: z.strictObject({ scaleUp: scalingRules, scaleDown: scalingRules }),
  })
  .superRefine((h, ctx) => {
    if (h.maxReplicas < h.minReplicas) {
      ctx.addIssue({ code: "custom", path: ["maxReplicas"], message: `must be >= minReplicas (${h.minReplicas})` });
    }
  });
export type Hpa = z.infer<typeof hpa>;

/** Most pods a scaled workload runs in steady state: the HPA maximum, or the fixed count without an HPA. */
export function maxReplicas(replicas: number, h: Hpa): number {
  return h.enabled ? Math.max(replicas, h.maxReplicas) : replicas;
}

export const storage = z.strictObject({
  size: storageSize,
  /** Storage class; omitted means the cluster's default class. */
  storageClass: z.string().min(1).optional(),
});
export type Storage = z.infer<typeof storage>;
