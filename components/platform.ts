// The platform layer every tier stands on: namespaces with Pod Security labels, quotas sized from
// the inventory, LimitRanges, default-deny NetworkPolicies with DNS allowed, and one
// ServiceAccount per tier without an API token.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { PlatformConfig } from "../config/schema";
import type { NamespaceRole, PodGroup } from "../config/inventory";
import { quotaFor } from "../config/quota";
import { LEVELS, priorityClassName } from "../config/scheduling";
import { platformLabels } from "./lib/labels";

export interface PlatformArgs {
  config: PlatformConfig;
  inventory: PodGroup[];
}

/** Pod Security level per namespace: the mail daemons need root at start (see README, "Mail security"). */
export const POD_SECURITY: Record<NamespaceRole, "restricted" | "baseline"> = { app: "restricted", mail: "baseline" };

export class Platform extends pulumi.ComponentResource {
  /** Namespace names as outputs of the Namespace objects, so dependents wait for them. */
  readonly namespaces: Record<NamespaceRole, pulumi.Output<string>>;
  readonly serviceAccounts = new Map<string, pulumi.Output<string>>();

  constructor(name: string, args: PlatformArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:core:Platform", name, {}, opts);
    const cfg = args.config;
    const names: Record<NamespaceRole, string> = { app: cfg.platform.namespace, mail: cfg.platform.mailNamespace };
    const roles: NamespaceRole[] = cfg.mail.enabled ? ["app", "mail"] : ["app"];
    const common = platformLabels(cfg);

    // One PriorityClass per level (config/scheduling.ts). A pod naming a class that does not exist
    // yet is refused at admission, so the namespaces, and with them every pod, wait for the classes.
    const prio = cfg.scheduling.priorityClasses;
    const classes = prio.enabled
      ? LEVELS.map(
          (level) =>
            new k8s.scheduling.v1.PriorityClass(
              `priority-${level}`,
              {
                metadata: { name: priorityClassName(cfg.platform.namespace, level), labels: common },
                value: prio.values[level],
                globalDefault: false,
                // Batch work waits for room instead of evicting running pods to make it.
                preemptionPolicy: level === "batch" ? "Never" : "PreemptLowerPriority",
                description: `${cfg.platform.name} (${cfg.environment}): ${level} pods`,
              },
              { parent: this },
            ),
        )
      : [];

    const out: Partial<Record<NamespaceRole, pulumi.Output<string>>> = {};
    for (const role of roles) {
      const level = POD_SECURITY[role];
      const ns = new k8s.core.v1.Namespace(
        `ns-${role}`,
        {
          metadata: {
            name: names[role],
            labels: {
              ...common,
              "pod-security.kubernetes.io/enforce": level,
              "pod-security.kubernetes.io/enforce-version": "latest",
              "pod-security.kubernetes.io/audit": level,
              "pod-security.kubernetes.io/warn": level,
            },
          },
        },
        { parent: this, dependsOn: classes },
      );
      const namespace = ns.metadata.name;
      out[role] = namespace;
      const child = { parent: this, dependsOn: [ns] };
      const groups = args.inventory.filter((g) => g.namespace === role);
      const quota = quotaFor(groups, cfg.platform.quota.headroomPercent);

      new k8s.core.v1.ResourceQuota(`quota-${role}`, { metadata: { name: "compute", namespace, labels: common }, spec: { hard: quota } }, child);
      new k8s.core.v1.LimitRange(
        `limits-${role}`,
        {
          metadata: { name: "container-defaults", namespace, labels: common },
          spec: {
            limits: [
              {
                type: "Container",
                defaultRequest: cfg.platform.limitRange.defaultRequest,
                default: cfg.platform.limitRange.default,
                min: cfg.platform.limitRange.min,
                max: cfg.platform.limitRange.max,
              },
            ],
          },
        },
        child,
      );
      new k8s.networking.v1.NetworkPolicy(
        `deny-${role}`,
        { metadata: { name: "default-deny", namespace, labels: common }, spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] } },
        child,
      );
      new k8s.networking.v1.NetworkPolicy(
        `dns-${role}`,
        {
          metadata: { name: "allow-dns", namespace, labels: common },
          spec: {
            podSelector: {},
            policyTypes: ["Egress"],
            egress: [
              {
                to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } }, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }],
                ports: [
                  { port: 53, protocol: "UDP" },
                  { port: 53, protocol: "TCP" },
                ],
              },
            ],
          },
        },
        child,
      );
      for (const sa of new Set(groups.map((g) => g.serviceAccount))) {
        const account = new k8s.core.v1.ServiceAccount(
          `sa-${sa}`,
          { metadata: { name: sa, namespace, labels: { ...common, "app.kubernetes.io/component": sa } }, automountServiceAccountToken: false },
          child,
        );
        this.serviceAccounts.set(sa, account.metadata.name);
      }
    }
    this.namespaces = out as Record<NamespaceRole, pulumi.Output<string>>;
    this.registerOutputs({ namespaces: this.namespaces });
  }

  serviceAccount(name: string): pulumi.Output<string> {
    const sa = this.serviceAccounts.get(name);
    if (!sa) throw new Error(`no service account "${name}" in the inventory (known: ${[...this.serviceAccounts.keys()].join(", ")})`);
    return sa;
  }
}
