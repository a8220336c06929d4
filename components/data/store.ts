// What every store has in common: a headless Service (the StatefulSet's serviceName), a client
// Service named after the store, and a StatefulSet with one data volume per pod, the image's own
// uid, Pod Security "restricted", an optional exporter sidecar and the data-safety options. With
// more than one replica the members are spread (never two on a node unless the store's
// antiAffinity is "preferred"; over zones) and a PDB lets a drain take one at a time.
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import { antiAffinityOf, enabledExporter } from "../../config/data";
import type { StoreConfig, StoreName } from "../../config/data";
import type { PlatformConfig } from "../../config/schema";
import { pdbSpec } from "../lib/availability";
import { labels, selectorLabels } from "../lib/labels";
import { restrictedContainer, restrictedPod, scratchVolume, spread, tcpProbe } from "../lib/pod";
import { scheduled } from "../lib/scheduling";
import { storeMetricsPort } from "../lib/ports";

type Container = k8s.types.input.core.v1.Container;
type Volume = k8s.types.input.core.v1.Volume;

/** Name of the data volumeClaimTemplate; PVCs are `data-<store>-0`. */
export const DATA_VOLUME = "data";

/** Annotation that records the storage the config asks for (the template itself is ignoreChanges). */
export const REQUESTED_STORAGE = "platform/requested-storage";

/**
 * Resource options for stateful objects. In prod: `protect` (pulumi destroy and replacements fail
 * until an operator unprotects on purpose) and `retainOnDelete` (removing it from the program leaves
 * the object in the cluster). StatefulSets additionally ignore `spec.volumeClaimTemplates`: the
 * field is immutable, so a size or class edit would otherwise replace the set (see docs/data.md).
 */
export function statefulOptions(cfg: PlatformConfig, kind: "statefulset" | "volume" | "secret"): pulumi.CustomResourceOptions {
  const prod = cfg.environment === "prod";
  return {
    protect: prod,
    retainOnDelete: prod,
    ...(kind === "statefulset" ? { ignoreChanges: ["spec.volumeClaimTemplates"] } : {}),
  };
}

export interface StoreArgs {
  cfg: PlatformConfig;
  name: StoreName;
  /** app.kubernetes.io/component: "database" or "cache". */
  component: string;
  store: StoreConfig;
  namespace: pulumi.Input<string>;
  serviceAccount: pulumi.Input<string>;
  /** The store's client port; its name is used for the Service and the container. */
  port: { name: string; number: number };
  /** Further ports of the pod (a sidecar's), published on the headless Service. */
  headlessPorts?: { name: string; number: number }[];
  /** Ports of the client Service (default: the client port); the metrics port is added when the exporter runs. */
  clientPorts?: { name: string; number: number }[];
  /** Run before the store starts (complete containers). */
  initContainers?: Container[];
  /** The main container without name/image/ports/resources/securityContext (filled in here). */
  container: Omit<Container, "name" | "image" | "ports" | "resources" | "securityContext">;
  /** Further named ports of the main container (a management API). */
  extraPorts?: { name: string; number: number }[];
  /**
   * Who keeps the client Service's endpoints: Kubernetes, from its selector (every ready member),
   * or the store itself (Patroni writes the leader's address): then the Service has no selector,
   * and the exporter's metrics port moves to the headless Service, which reaches every member.
   */
  clientEndpoints?: "selector" | "store";
  dataMountPath: string;
  /** Extra pod volumes (scratch emptyDirs, ConfigMaps). */
  volumes: Volume[];
  /** The exporter sidecar without name/image/ports/resources/securityContext, when enabled. */
  exporter?: Omit<Container, "name" | "image" | "ports" | "resources" | "securityContext">;
  terminationGracePeriodSeconds: number;
  /** Further sidecars (complete containers). */
  sidecars?: Container[];
  /** sha256 of the credentials the pod reads at start (annotation `checksum/credentials`). */
  credentialsChecksum: pulumi.Input<string>;
  /** Further pod-template annotations (config checksums). */
  annotations?: Record<string, pulumi.Input<string>>;
  /** Seconds a restarted member stays ready before a rolling update stops the next one. */
  minReadySeconds?: number;
}

export interface StoreObjects {
  statefulSet: k8s.apps.v1.StatefulSet;
  service: k8s.core.v1.Service;
  headless: k8s.core.v1.Service;
  pdb?: k8s.policy.v1.PodDisruptionBudget;
  /** Selector labels of the members (for further Services). */
  selector: Record<string, string>;
}

/**
 * Where a replicated store's pods may run. Nodes: "required" never puts two members on one node (a
 * node loss costs one member, never a majority; needs a schedulable node per member), "preferred"
 * spreads them when it can. Zones: spread evenly; in prod a member waits rather than crowd a zone
 * (DoNotSchedule), elsewhere it goes where it fits. One pod needs no rule.
 */
export function storeAffinity(
  selector: Record<string, string>,
  replicas: number,
  nodes: "required" | "preferred",
  zones: "required" | "preferred" = "preferred",
): Pick<k8s.types.input.core.v1.PodSpec, "affinity" | "topologySpreadConstraints"> {
  if (replicas <= 1) return {};
  const soft = spread(selector);
  const zoneSpread = [{ ...soft.topologySpreadConstraints[0], whenUnsatisfiable: zones === "required" ? "DoNotSchedule" : "ScheduleAnyway" }];
  if (nodes === "preferred") return { affinity: soft.affinity, topologySpreadConstraints: zoneSpread };
  return {
    affinity: {
      podAntiAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: selector }, topologyKey: "kubernetes.io/hostname" }],
      },
    },
    topologySpreadConstraints: zoneSpread,
  };
}

/** Creates the Services and the StatefulSet of one store, as children of `parent`. */
export function createStore(parent: pulumi.Resource, a: StoreArgs): StoreObjects {
  const { cfg, name, store } = a;
  const selector = selectorLabels(cfg, { name, component: a.component });
  const podLabels = labels(cfg, { name, component: a.component, image: store.image });
  const objLabels = labels(cfg, { name, component: a.component });
  // The sidecar runs when the component brings one and the store's config turns it on.
  const exporterConfig = a.exporter ? enabledExporter(store) : undefined;
  const exporter = exporterConfig !== undefined;
  const metricsPort = exporter ? storeMetricsPort(name) : 0;
  if (metricsPort === undefined) throw new Error(`${name}: an exporter is enabled but the store has no metrics port (components/lib/ports.ts)`);
  const metrics = { name: "metrics", port: metricsPort, targetPort: "metrics", protocol: "TCP" };
  const svcPort = (p: { name: string; number: number }) => ({ name: p.name, port: p.number, targetPort: p.name, protocol: "TCP" });
  const clientPorts = (a.clientPorts ?? [a.port]).map(svcPort);
  const storeEndpoints = a.clientEndpoints === "store";

  // Headless: stable per-pod DNS (postgres-0.postgres-headless...), also while not ready, so the
  // pod can be reached for recovery.
  const headless = new k8s.core.v1.Service(
    `${name}-headless`,
    {
      metadata: { name: `${name}-headless`, namespace: a.namespace, labels: objLabels },
      spec: { clusterIP: "None", publishNotReadyAddresses: true, selector, ports: [...[a.port, ...(a.headlessPorts ?? [])].map(svcPort), ...(exporter && storeEndpoints ? [metrics] : [])] },
    },
    { parent },
  );
  // Client Service, named after the store: the host in every connection string. Without a
  // selector its endpoints are the store's to write, so its port is a number, not a pod port name.
  const service = new k8s.core.v1.Service(
    name,
    {
      metadata: { name, namespace: a.namespace, labels: objLabels },
      spec: storeEndpoints
        ? { type: "ClusterIP", ports: [{ ...svcPort(a.port), targetPort: a.port.number }] }
        : { type: "ClusterIP", selector, ports: exporter ? [...clientPorts, metrics] : clientPorts },
    },
    { parent },
  );

  const containers: Container[] = [
    {
      ...a.container,
      name,
      image: store.image,
      ports: [a.port, ...(a.extraPorts ?? [])].map((p) => ({ name: p.name, containerPort: p.number, protocol: "TCP" })),
      resources: store.resources,
      securityContext: restrictedContainer({ readOnlyRootFilesystem: true }),
      volumeMounts: [{ name: DATA_VOLUME, mountPath: a.dataMountPath }, ...((a.container.volumeMounts as k8s.types.input.core.v1.VolumeMount[]) ?? [])],
    },
  ];
  containers.push(...(a.sidecars ?? []));
  if (exporterConfig && a.exporter) {
    containers.push({
      livenessProbe: tcpProbe("metrics", { periodSeconds: 20 }),
      ...a.exporter,
      name: "exporter",
      image: exporterConfig.image,
      ports: [{ name: "metrics", containerPort: metricsPort, protocol: "TCP" }],
      resources: exporterConfig.resources,
      securityContext: restrictedContainer({ readOnlyRootFilesystem: true }),
    });
  }

  const statefulSet = new k8s.apps.v1.StatefulSet(
    name,
    {
      metadata: {
        name,
        namespace: a.namespace,
        labels: objLabels,
        annotations: { [REQUESTED_STORAGE]: `${store.storage.size} ${store.storage.storageClass ?? "(default class)"}` },
      },
      spec: {
        serviceName: headless.metadata.name,
        replicas: store.replicas,
        selector: { matchLabels: selector },
        podManagementPolicy: "OrderedReady",
        updateStrategy: { type: "RollingUpdate" },
        ...(a.minReadySeconds ? { minReadySeconds: a.minReadySeconds } : {}),
        // Neither deleting the set nor scaling it down ever deletes a data volume.
        persistentVolumeClaimRetentionPolicy: { whenDeleted: "Retain", whenScaled: "Retain" },
        template: {
          metadata: { labels: podLabels, annotations: { "checksum/credentials": a.credentialsChecksum, ...a.annotations } },
          spec: scheduled(cfg, "stores", {
            serviceAccountName: a.serviceAccount,
            automountServiceAccountToken: false,
            // Service links would inject POSTGRES_PORT=tcp://... style variables the images misread.
            enableServiceLinks: false,
            securityContext: restrictedPod({ uid: store.runAs.uid, gid: store.runAs.gid, fsGroup: store.runAs.gid }),
            terminationGracePeriodSeconds: a.terminationGracePeriodSeconds,
            ...storeAffinity(selector, store.replicas, antiAffinityOf(store), cfg.environment === "prod" ? "required" : "preferred"),
            ...(a.initContainers?.length ? { initContainers: a.initContainers } : {}),
            containers,
            volumes: a.volumes,
          }),
        },
        volumeClaimTemplates: [
          {
            metadata: { name: DATA_VOLUME, labels: selector },
            spec: {
              accessModes: ["ReadWriteOnce"],
              ...(store.storage.storageClass ? { storageClassName: store.storage.storageClass } : {}),
              resources: { requests: { storage: store.storage.size } },
            },
          },
        ],
      },
    },
    { parent, dependsOn: [headless], ...statefulOptions(cfg, "statefulset") },
  );
  // One voluntary disruption at a time: a drain moves one member, the others keep serving.
  const budget = pdbSpec(selector, store.replicas);
  const pdb = budget ? new k8s.policy.v1.PodDisruptionBudget(`${name}-pdb`, { metadata: { name, namespace: a.namespace, labels: objLabels }, spec: budget }, { parent }) : undefined;
  return { statefulSet, service, headless, pdb, selector };
}

/** Writable scratch directories for a read-only root filesystem. */
export function scratch(name: string, mountPath: string, sizeLimit = "64Mi"): { volume: Volume; mount: k8s.types.input.core.v1.VolumeMount } {
  return { volume: scratchVolume(name, sizeLimit), mount: { name, mountPath } };
}
