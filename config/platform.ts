// Cluster targeting, namespaces, quotas and generated-secret settings.
import { z } from "zod";
import type { Environment } from "./common";
import { cidr, cpu, dnsLabel, memory, perEnv, port } from "./common";
import { clusterCidrs } from "./egress";

export const clusterSchema = z.strictObject({
  /** kubeconfig context; required outside dev so a prod stack can never land on a laptop cluster. */
  context: z.string().min(1).optional(),
  /** Path to a kubeconfig file; defaults to $KUBECONFIG or ~/.kube/config. */
  kubeconfig: z.string().min(1).optional(),
  /**
   * The Kubernetes API server as pods reach it, after the `kubernetes` Service's address is
   * translated: its endpoint addresses (`kubectl get endpoints kubernetes -n default`) and ports.
   * Only pods that talk to the API get egress to it (Patroni, which keeps its leader lock there).
   */
  apiServer: z
    .strictObject({
      cidrs: z.array(cidr).min(1, "must list the API server's endpoint addresses (kubectl get endpoints kubernetes -n default)"),
      ports: z.array(port).min(1).default([443, 6443]),
    })
    .optional(),
});

export const platformSchema = z.strictObject({
  /** app.kubernetes.io/part-of and the prefix of cluster-visible names. */
  name: dnsLabel,
  namespace: dnsLabel,
  mailNamespace: dnsLabel,
  /** Where the ingress controller and Prometheus run (sources of allowed traffic). */
  ingressNamespace: dnsLabel,
  monitoringNamespace: dnsLabel,
  /**
   * The cluster's pod and Service ranges (IPv4). "internet" egress never reaches them, and no
   * egress CIDR may overlap them. Private ranges are excluded anyway; list ranges outside them.
   */
  clusterCidrs: clusterCidrs,
  quota: z.strictObject({
    /** Extra room on top of (HPA max + surge) x per-pod resources, for jobs and sidecars added by hand. */
    headroomPercent: z.number().int().min(0).max(500),
    /**
     * Ceiling for each namespace's computed quota: a config whose quota would exceed it is refused,
     * naming the biggest contributors (seed 002's fixed 20 CPU / 40Gi). Every key is optional.
     */
    max: z
      .strictObject({
        requestsCpu: cpu.optional(),
        requestsMemory: memory.optional(),
        limitsCpu: cpu.optional(),
        limitsMemory: memory.optional(),
        pods: z.number().int().min(1).optional(),
      })
      .optional(),
  }),
  limitRange: z.strictObject({
    defaultRequest: z.strictObject({ cpu, memory }),
    default: z.strictObject({ cpu, memory }),
    min: z.strictObject({ cpu, memory }),
    max: z.strictObject({ cpu, memory }),
  }),
});

export const secretsSchema = z.strictObject({
  /** Keeper for every generated credential: bump it to rotate them all (see README, "Rotating secrets"). */
  rotation: z.number().int().min(1),
  /** Per-credential keepers, e.g. { redis: 2 } rotates only the Redis password. */
  rotate: z.partialRecord(z.enum(["app", "postgres", "redis", "mongo", "chroma", "flower", "mail", "ops"]), z.number().int().min(1)),
  /** Application database user names (not secret). */
  postgresUser: dnsLabel,
  postgresDatabase: dnsLabel,
  mongoUser: dnsLabel,
  mongoDatabase: dnsLabel,
  flowerUser: dnsLabel,
});

export function clusterDefaults(): z.input<typeof clusterSchema> {
  return {};
}

export function platformDefaults(env: Environment): z.input<typeof platformSchema> {
  return {
    name: "email-platform",
    namespace: `email-platform-${env}`,
    mailNamespace: `email-platform-mail-${env}`,
    ingressNamespace: "ingress-nginx",
    monitoringNamespace: "monitoring",
    clusterCidrs: [],
    quota: { headroomPercent: perEnv(env, { dev: 50, staging: 25, prod: 20 }) },
    // Seed 003's LimitRange: defaults for containers that forget to ask, bounds for all.
    limitRange: {
      defaultRequest: { cpu: "100m", memory: "128Mi" },
      default: { cpu: "500m", memory: "512Mi" },
      min: { cpu: "10m", memory: "16Mi" },
      max: { cpu: "4", memory: "8Gi" },
    },
  };
}

export function secretsDefaults(): z.input<typeof secretsSchema> {
  return {
    rotation: 1,
    rotate: {},
    postgresUser: "app",
    postgresDatabase: "app",
    mongoUser: "app",
    mongoDatabase: "app",
    flowerUser: "flower",
  };
}
