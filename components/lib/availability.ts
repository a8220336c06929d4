// HPA v2 and PodDisruptionBudget specs with the seeds' behaviour (seeds 000 and 004).
import type * as k8s from "@pulumi/kubernetes";
import type { Hpa } from "../../config/common";

/**
 * The HPA of a workload, with the behaviour its config gives (defaultHpaBehavior in
 * config/common.ts: seeds 000/004's fast scale-up and slow scale-down unless a service says otherwise).
 */
export function hpaSpec(
  target: { kind: "Deployment" | "StatefulSet"; name: string },
  h: Hpa,
): k8s.types.input.autoscaling.v2.HorizontalPodAutoscalerSpec {
  const metrics: k8s.types.input.autoscaling.v2.MetricSpec[] = [
    { type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: h.cpuUtilization } } },
  ];
  if (h.memoryUtilization !== undefined) {
    metrics.push({ type: "Resource", resource: { name: "memory", target: { type: "Utilization", averageUtilization: h.memoryUtilization } } });
  }
  return {
    scaleTargetRef: { apiVersion: "apps/v1", kind: target.kind, name: target.name },
    minReplicas: h.minReplicas,
    maxReplicas: h.maxReplicas,
    metrics,
    behavior: {
      scaleUp: { ...h.behavior.scaleUp, policies: h.behavior.scaleUp.policies.map((p) => ({ ...p })) },
      scaleDown: { ...h.behavior.scaleDown, policies: h.behavior.scaleDown.policies.map((p) => ({ ...p })) },
    },
  };
}

/**
 * A PDB only makes sense when more than one replica can run. `maxUnavailable: 1` lets a drain
 * always make progress (a minAvailable equal to the replica count would block every eviction),
 * and unhealthy pods may always be evicted so a crash loop never wedges a node drain.
 */
export function pdbSpec(selector: Record<string, string>, maxPods: number): k8s.types.input.policy.v1.PodDisruptionBudgetSpec | undefined {
  if (maxPods <= 1) return undefined;
  return { maxUnavailable: 1, selector: { matchLabels: selector }, unhealthyPodEvictionPolicy: "AlwaysAllow" };
}
