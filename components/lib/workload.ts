// A stateless Deployment with the platform's rules: restricted pod, own ServiceAccount without a
// token, spread over nodes and zones, config checksums that roll pods, and either a zero-downtime
// rolling update (with HPA and PDB) or, for singletons, Recreate with exactly one replica.
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import { surgePods } from "../../config/inventory";
import type { Hpa } from "../../config/common";
import { maxReplicas } from "../../config/common";
import type { PlatformConfig } from "../../config/schema";
import { hpaSpec, pdbSpec } from "./availability";
import { labels, selectorLabels } from "./labels";
import type { Placement, Tier } from "../../config/scheduling";
import { restrictedPod, scratchVolume, spread } from "./pod";
import { scheduled } from "./scheduling";

type Container = k8s.types.input.core.v1.Container;
type Volume = k8s.types.input.core.v1.Volume;

export interface WorkloadSpec {
  name: string;
  component: string;
  /** Its priority and nodes (config/scheduling.ts). */
  tier: Tier;
  /** Its own nodes instead of the tier's. */
  placement?: Placement;
  image: string;
  namespace: pulumi.Input<string>;
  serviceAccount: pulumi.Input<string>;
  containers: Container[];
  /** Extra volumes; a `tmp` emptyDir is always added for the read-only root filesystem. */
  volumes?: Volume[];
  terminationGracePeriodSeconds: number;
  /** Pod-template annotations (checksums) that roll the pods when they change. */
  annotations?: Record<string, pulumi.Input<string>>;
  /** Pod user/group; default 10001 (no image user assumed). */
  uid?: number;
  /** Rolling (an HPA unless hpa.enabled is false, a PDB) or a singleton (Recreate, 1 replica, neither). */
  scaling: { kind: "rolling"; replicas: number; hpa: Hpa } | { kind: "singleton" };
  /** Resources that must be ready before this Deployment changes (a schema migration Job). */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

export interface Workload {
  deployment: k8s.apps.v1.Deployment;
  hpa?: k8s.autoscaling.v2.HorizontalPodAutoscaler;
  pdb?: k8s.policy.v1.PodDisruptionBudget;
  selector: Record<string, string>;
}

/** Most pods a workload can run (HPA maximum or the fixed count); sizes surge and the PDB. */
export function maxPods(spec: WorkloadSpec["scaling"]): number {
  return spec.kind === "singleton" ? 1 : maxReplicas(spec.replicas, spec.hpa);
}

export function deploymentStrategy(spec: WorkloadSpec["scaling"]): k8s.types.input.apps.v1.DeploymentStrategy {
  // Zero downtime: never below the desired count, surge as the inventory budgets it (quota).
  // A singleton must never overlap itself (two beat schedulers would run every task twice).
  return spec.kind === "singleton" ? { type: "Recreate" } : { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: surgePods(maxPods(spec)) } };
}

export function createWorkload(cfg: PlatformConfig, w: WorkloadSpec, parent: pulumi.Resource): Workload {
  const id = { name: w.name, component: w.component, image: w.image };
  const selector = selectorLabels(cfg, id);
  const meta = { name: w.name, namespace: w.namespace, labels: labels(cfg, id) };
  // With an HPA, the HPA owns the replica count after creation; without one, the config does.
  const autoscaled = w.scaling.kind === "rolling" && w.scaling.hpa.enabled;
  const deployment = new k8s.apps.v1.Deployment(
    w.name,
    {
      metadata: meta,
      spec: {
        replicas: w.scaling.kind === "rolling" ? w.scaling.replicas : 1,
        revisionHistoryLimit: 5,
        selector: { matchLabels: selector },
        strategy: deploymentStrategy(w.scaling),
        template: {
          metadata: { labels: labels(cfg, id), annotations: w.annotations ?? {} },
          spec: scheduled(cfg, w.tier, {
            serviceAccountName: w.serviceAccount,
            automountServiceAccountToken: false,
            securityContext: restrictedPod(w.uid !== undefined ? { uid: w.uid } : {}),
            terminationGracePeriodSeconds: w.terminationGracePeriodSeconds,
            ...spread(selector),
            containers: w.containers,
            volumes: [scratchVolume(), ...(w.volumes ?? [])],
          }, { placement: w.placement }),
        },
      },
    },
    // Re-applying the config value would undo the HPA's scaling.
    { parent, ...(autoscaled ? { ignoreChanges: ["spec.replicas"] } : {}), ...(w.dependsOn ? { dependsOn: w.dependsOn } : {}) },
  );
  if (w.scaling.kind === "singleton") return { deployment, selector };

  const hpa = autoscaled
    ? new k8s.autoscaling.v2.HorizontalPodAutoscaler(w.name, { metadata: meta, spec: hpaSpec({ kind: "Deployment", name: w.name }, w.scaling.hpa) }, { parent, dependsOn: [deployment] })
    : undefined;
  const pdb = pdbSpec(selector, maxPods(w.scaling));
  return {
    deployment,
    hpa,
    selector,
    pdb: pdb ? new k8s.policy.v1.PodDisruptionBudget(w.name, { metadata: meta, spec: pdb }, { parent }) : undefined,
  };
}
