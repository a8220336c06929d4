// The shared off-cluster object store (config/backups.ts): its credentials as a Secret in the
// namespace of the pods that upload, and the one egress edge those pods get (its CIDRs, its port).
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import { objectStoreAddress } from "../../config/backups";
import type { ObjectStoreConfig } from "../../config/backups";
import type { PlatformConfig } from "../../config/schema";
import type { SecretRef } from "../secrets";
import type { DependencyGraph } from "./graph";
import { platformLabels } from "./labels";

export const OBJECT_STORE_SECRET = "object-store-credentials";
/** Keys of the credentials Secret; each consumer maps them to its own env names (AWS_*, PGBACKREST_*, RCLONE_*). */
export const OBJECT_STORE_KEYS = { accessKeyId: "ACCESS_KEY_ID", secretAccessKey: "SECRET_ACCESS_KEY" } as const;

/** The credentials Secret in one namespace (call once per namespace that uploads; `id` is the Pulumi name). */
export function objectStoreCredentials(
  parent: pulumi.Resource,
  id: string,
  cfg: PlatformConfig,
  store: ObjectStoreConfig,
  namespace: pulumi.Input<string>,
  secret: (key: string) => pulumi.Output<string>,
): SecretRef {
  const s = new k8s.core.v1.Secret(
    id,
    {
      metadata: { name: OBJECT_STORE_SECRET, namespace, labels: { ...platformLabels(cfg), "app.kubernetes.io/component": "backup" } },
      type: "Opaque",
      stringData: {
        [OBJECT_STORE_KEYS.accessKeyId]: secret(store.accessKeyIdSecret),
        [OBJECT_STORE_KEYS.secretAccessKey]: secret(store.secretAccessKeySecret),
      },
    },
    { parent },
  );
  return { name: s.metadata.name, keys: Object.values(OBJECT_STORE_KEYS) };
}

/** Lets a workload reach the object store: its CIDRs on the endpoint's port, nothing else outside. */
export function connectObjectStore(graph: DependencyGraph, store: ObjectStoreConfig, from: string, reason: string): void {
  const { port } = objectStoreAddress(store);
  for (const cidr of store.cidrs) graph.connect(from, { kind: "cidr", name: `object-store-${cidr}`, cidr }, [port], reason);
}
