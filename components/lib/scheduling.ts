// A pod's priority and placement from its tier (config/scheduling.ts): one call at every pod
// template, so no pod is left without a PriorityClass or outside its tier's nodes.
import type * as k8s from "@pulumi/kubernetes";
import type { PlatformConfig } from "../../config/schema";
import type { NodeRequirement, Placement, Tier } from "../../config/scheduling";
import { PRIORITY_OF, priorityClassName } from "../../config/scheduling";

type PodSpec = k8s.types.input.core.v1.PodSpec;

function expressions(reqs: NodeRequirement[]) {
  return reqs.map((r) => ({ key: r.key, operator: r.operator, ...(r.values ? { values: r.values } : {}) }));
}

function nodeAffinity(p: Placement): k8s.types.input.core.v1.NodeAffinity | undefined {
  const { required, preferred } = p.nodeAffinity;
  if (!required.length && !preferred.length) return undefined;
  return {
    ...(required.length ? { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: expressions(required) }] } } : {}),
    ...(preferred.length ? { preferredDuringSchedulingIgnoredDuringExecution: preferred.map((x) => ({ weight: x.weight, preference: { matchExpressions: expressions(x.match) } })) } : {}),
  };
}

/**
 * The scheduling fields of a pod of `tier`, merged into `spec` (its pod anti-affinity is kept).
 * `nodesOf`: a pod that must run beside another tier's pod (a Job mounting a store's
 * ReadWriteOnce volume) takes that tier's nodes and keeps its own priority. `placement`: the
 * workload's own placement (a worker pool's), instead of its tier's.
 */
export function scheduled(cfg: PlatformConfig, tier: Tier, spec: PodSpec, opts: { nodesOf?: Tier; placement?: Placement } = {}): PodSpec {
  const s = cfg.scheduling;
  const p = opts.placement ?? s.tiers[opts.nodesOf ?? tier];
  const affinity = nodeAffinity(p);
  return {
    ...spec,
    ...(s.priorityClasses.enabled ? { priorityClassName: priorityClassName(cfg.platform.namespace, PRIORITY_OF[tier]) } : {}),
    ...(Object.keys(p.nodeSelector).length ? { nodeSelector: p.nodeSelector } : {}),
    ...(p.tolerations.length ? { tolerations: p.tolerations.map((t) => Object.fromEntries(Object.entries(t).filter(([, v]) => v !== undefined))) } : {}),
    ...(affinity ? { affinity: { ...(spec.affinity as object | undefined), nodeAffinity: affinity } } : {}),
  };
}
