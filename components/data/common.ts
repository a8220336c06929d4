// Arguments every store component takes, what it exposes, and the host name it is reached at.
import type * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { PlatformConfig } from "../../config/schema";
import type { DependencyGraph } from "../lib/graph";
import { secretEnv } from "../lib/pod";
import { PORTS, serviceHost } from "../lib/ports";
import type { SecretRef } from "../secrets";
import type { Offsite } from "./backup";

export interface StoreComponentArgs {
  config: PlatformConfig;
  namespace: pulumi.Output<string>;
  /** The ServiceAccount the platform created for a pod group's serviceAccount (config/inventory.ts). */
  serviceAccount: (name: string) => pulumi.Input<string>;
  /** The store's generated credentials (components/secrets.ts). */
  credentials: SecretRef;
  graph: DependencyGraph;
  /** sha256 of the store's generated credentials: a rotation rolls the store pod, which reads them at start. */
  credentialsChecksum: pulumi.Input<string>;
  /** Off-cluster copies of the backups (backups.objectStore), when configured. */
  offsite?: Offsite;
}

/** What every store component (Postgres, Redis, MongoDB, Chroma) gives the tiers that use it. */
export abstract class StoreComponent extends pulumi.ComponentResource {
  /** What clients name as host: the client Service (same namespace, short name; backup jobs use it), or a managed database's host. */
  service!: pulumi.Output<string>;
  /** The host in the apps' connection settings: the Service's DNS name, or a managed database's host. */
  host!: pulumi.Output<string>;
  abstract readonly port: number;

  /** Clients reach the store through its client Service (createStore's), in `namespace`. */
  protected servedBy(service: k8s.core.v1.Service, namespace: pulumi.Input<string>): void {
    this.service = service.metadata.name;
    this.host = storeHost(this.service, namespace);
  }
}

/** In-cluster DNS name of a store's client Service (Service name = store name). */
export function storeHost(service: pulumi.Input<string>, namespace: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.all([service, namespace]).apply(([s, ns]) => serviceHost(s, ns));
}

/** Fails early (at construction, not at apply time) when the credentials lack a key a pod reads. */
export function requireKeys(ref: SecretRef, keys: string[]): void {
  const missing = keys.filter((k) => !ref.keys.includes(k));
  if (missing.length) throw new Error(`credentials Secret lacks key(s) ${missing.join(", ")} (has ${ref.keys.join(", ")})`);
}

/** postgres_exporter next to the server: over 127.0.0.1 as the superuser (every mode that runs pods). */
export function postgresExporter(secret: pulumi.Input<string>) {
  return {
    env: [
      { name: "DATA_SOURCE_URI", value: "127.0.0.1:5432/postgres?sslmode=disable" },
      secretEnv("DATA_SOURCE_USER", secret, "POSTGRES_USER"),
      secretEnv("DATA_SOURCE_PASS", secret, "POSTGRES_PASSWORD"),
    ],
    args: [`--web.listen-address=:${PORTS.postgres.metrics}`],
  };
}
