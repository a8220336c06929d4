// Where pods run and which ones the scheduler gives up first. Every pod belongs to one tier; a
// tier sets its pods' priority (a PriorityClass the platform creates) and their placement
// (nodeSelector, tolerations, node affinity), so workers can run on spot nodes while the stores
// stay on on-demand ones:
//
//   scheduling:
//     tiers:
//       workers:
//         nodeSelector: { cloud.google.com/gke-spot: "true" }
//         tolerations: [{ key: cloud.google.com/gke-spot, operator: Equal, value: "true", effect: NoSchedule }]
//       stores:
//         nodeAffinity:
//           required: [{ key: cloud.google.com/gke-spot, operator: DoesNotExist }]
import { z } from "zod";
import type { Environment } from "./common";
import { perEnv } from "./common";

/** Pod groups by role; each maps to a priority level (PRIORITY_OF). */
export const TIERS = ["stores", "mail", "services", "workers", "observability", "batch"] as const;
export type Tier = (typeof TIERS)[number];

/**
 * Priority levels, highest first. Stores and mail share the top level: they hold state, start
 * slowly and move only with their volumes, so under pressure the scheduler preempts anything else
 * first. Batch jobs (backups, smoke, migrations) come last and never preempt.
 */
export const LEVELS = ["stateful", "serving", "workers", "observability", "batch"] as const;
export type Level = (typeof LEVELS)[number];

export const PRIORITY_OF: Record<Tier, Level> = {
  stores: "stateful",
  mail: "stateful",
  services: "serving",
  workers: "workers",
  observability: "observability",
  batch: "batch",
};

/** Kubernetes reserves values above one billion for system classes. */
export const MAX_PRIORITY = 1_000_000_000;

// Label keys and values as Kubernetes checks them (qualified name, optional DNS prefix).
const labelKey = z
  .string()
  .regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/, "must be a label key such as node.kubernetes.io/instance-type");
const labelValue = z.string().regex(/^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/, "must be a label value (63 characters: letters, digits, - _ .)");

const toleration = z
  .strictObject({
    key: labelKey.optional(),
    operator: z.enum(["Equal", "Exists"]).default("Equal"),
    value: labelValue.optional(),
    effect: z.enum(["NoSchedule", "PreferNoSchedule", "NoExecute"]).optional(),
    /** How long a pod stays on a node after a NoExecute taint appears (only with effect NoExecute). */
    tolerationSeconds: z.number().int().min(0).optional(),
  })
  .superRefine((t, ctx) => {
    if (t.operator === "Exists" && t.value !== undefined) ctx.addIssue({ code: "custom", path: ["value"], message: "must be left out with operator Exists" });
    if (t.operator === "Equal" && t.key === undefined) ctx.addIssue({ code: "custom", path: ["key"], message: "is required with operator Equal (only Exists may match every taint)" });
    if (t.tolerationSeconds !== undefined && t.effect !== "NoExecute") ctx.addIssue({ code: "custom", path: ["tolerationSeconds"], message: "applies only with effect NoExecute" });
  });

const nodeRequirement = z
  .strictObject({
    key: labelKey,
    operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]),
    values: z.array(labelValue).optional(),
  })
  .superRefine((r, ctx) => {
    const n = r.values?.length ?? 0;
    if ((r.operator === "In" || r.operator === "NotIn") && n === 0) ctx.addIssue({ code: "custom", path: ["values"], message: `must list at least one value with operator ${r.operator}` });
    if ((r.operator === "Exists" || r.operator === "DoesNotExist") && n > 0) ctx.addIssue({ code: "custom", path: ["values"], message: `must be left out with operator ${r.operator}` });
    if ((r.operator === "Gt" || r.operator === "Lt") && (n !== 1 || !/^-?\d+$/.test(r.values?.[0] ?? ""))) {
      ctx.addIssue({ code: "custom", path: ["values"], message: `must be exactly one integer with operator ${r.operator}` });
    }
  });
export type NodeRequirement = z.infer<typeof nodeRequirement>;

export const placementSchema = z.strictObject({
  nodeSelector: z.record(labelKey, labelValue).default({}),
  tolerations: z.array(toleration).default([]),
  nodeAffinity: z
    .strictObject({
      /** Every requirement must hold (one node selector term). */
      required: z.array(nodeRequirement).default([]),
      /** Nodes matching these are preferred, by weight (1-100). */
      preferred: z.array(z.strictObject({ weight: z.number().int().min(1).max(100), match: z.array(nodeRequirement).min(1) })).default([]),
    })
    .default({ required: [], preferred: [] }),
});
export type Placement = z.infer<typeof placementSchema>;

export const schedulingSchema = z
  .strictObject({
    priorityClasses: z.strictObject({
      /**
       * Create one PriorityClass per level (cluster-scoped, named `<platform.namespace>-<level>`)
       * and set it on every pod. Off where the deployer may not create cluster-scoped objects.
       */
      enabled: z.boolean(),
      values: z.strictObject(Object.fromEntries(LEVELS.map((l) => [l, z.number().int().min(0).max(MAX_PRIORITY)])) as Record<Level, z.ZodNumber>),
    }),
    tiers: z.strictObject(Object.fromEntries(TIERS.map((t) => [t, placementSchema.default({ nodeSelector: {}, tolerations: [], nodeAffinity: { required: [], preferred: [] } })])) as Record<Tier, z.ZodDefault<typeof placementSchema>>),
  })
  .superRefine((s, ctx) => {
    // Each level strictly above the next: equal values would let a backup preempt a worker's slot
    // as readily as the reverse.
    for (let i = 1; i < LEVELS.length; i++) {
      const [hi, lo] = [LEVELS[i - 1], LEVELS[i]];
      if (s.priorityClasses.values[lo] >= s.priorityClasses.values[hi]) {
        ctx.addIssue({ code: "custom", path: ["priorityClasses", "values", lo], message: `must be below ${hi} (${s.priorityClasses.values[hi]}): levels go ${LEVELS.join(" > ")}; got ${s.priorityClasses.values[lo]}` });
      }
    }
  });
export type SchedulingConfig = z.infer<typeof schedulingSchema>;

/**
 * Values per environment: a prod pod outranks a staging pod of the same level, which outranks
 * dev's, so stacks sharing a cluster yield in that order.
 */
export function schedulingDefaults(env: Environment): z.input<typeof schedulingSchema> {
  const scale = perEnv(env, { dev: 1, staging: 10, prod: 100 });
  const base: Record<Level, number> = { stateful: 10000, serving: 5000, workers: 2000, observability: 1000, batch: 100 };
  return {
    priorityClasses: { enabled: true, values: Object.fromEntries(LEVELS.map((l) => [l, base[l] * scale])) as Record<Level, number> },
    tiers: {},
  };
}

/** The PriorityClass name of a level for this stack (cluster-scoped, so prefixed by the stack's namespace). */
export function priorityClassName(namespace: string, level: Level): string {
  return `${namespace}-${level}`;
}
