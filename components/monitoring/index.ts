// Monitoring through the Prometheus Operator: a ServiceMonitor per pod group that exposes a
// `metrics` Service port, one PrometheusRule with the seeds' alerts, and a Grafana dashboard
// ConfigMap. Created only when monitoring.enabled (the CRDs exist); otherwise nothing at all.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { NamespaceRole, PodGroup } from "../../config/inventory";
import type { PlatformConfig } from "../../config/schema";
import type { DependencyGraph } from "../lib/graph";
import { platformLabels, selectorLabels } from "../lib/labels";
import { dashboardJson } from "./dashboard";
import { alertGroups } from "./rules";

export interface MonitoringArgs {
  config: PlatformConfig;
  namespaces: Record<NamespaceRole, pulumi.Input<string>>;
  inventory: PodGroup[];
}

/** Prometheus's namespace, as a graph peer (the source of every scrape). */
export function monitoringPeer(cfg: PlatformConfig) {
  return { kind: "namespace" as const, name: "monitoring", namespace: cfg.platform.monitoringNamespace };
}

/** Groups Prometheus scrapes: those with a metrics port. */
export function scrapedGroups(groups: PodGroup[]): (PodGroup & { metricsPort: number })[] {
  return groups.filter((g): g is PodGroup & { metricsPort: number } => g.metricsPort !== undefined);
}

/** The monitoring namespace may reach every metrics port, and nothing else (only when monitoring is on). */
export function declareMonitoringEdges(cfg: PlatformConfig, graph: DependencyGraph, groups: PodGroup[]): void {
  if (!cfg.monitoring.enabled) return;
  for (const g of scrapedGroups(groups)) graph.connect(monitoringPeer(cfg), g.name, [g.metricsPort], "prometheus scrape");
}

export class Monitoring extends pulumi.ComponentResource {
  constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:monitoring:Monitoring", name, {}, opts);
    const cfg = args.config;
    const m = cfg.monitoring;
    const child = { parent: this };
    const common = { ...platformLabels(cfg), ...m.selectorLabels };
    const appNs = args.namespaces.app;

    for (const g of scrapedGroups(args.inventory)) {
      const ns = args.namespaces[g.namespace];
      new k8s.apiextensions.CustomResource(
        `${name}-sm-${g.name}`,
        {
          apiVersion: "monitoring.coreos.com/v1",
          kind: "ServiceMonitor",
          metadata: { name: g.name, namespace: ns, labels: common },
          spec: {
            selector: { matchLabels: selectorLabels(cfg, { name: g.name, component: g.name }) },
            namespaceSelector: { matchNames: [ns] },
            // A scrape may not outlast its interval (Prometheus refuses the config).
            endpoints: [{ port: "metrics", path: "/metrics", interval: m.scrapeInterval, scrapeTimeout: `${Math.min(10, parseInt(m.scrapeInterval, 10))}s` }],
          },
        },
        child,
      );
    }

    new k8s.apiextensions.CustomResource(
      `${name}-rules`,
      {
        apiVersion: "monitoring.coreos.com/v1",
        kind: "PrometheusRule",
        metadata: { name: `${cfg.platform.name}-alerts`, namespace: appNs, labels: common },
        spec: { groups: alertGroups(cfg) },
      },
      child,
    );

    // In the app namespace: the Grafana sidecar must search all namespaces (searchNamespace: ALL).
    new k8s.core.v1.ConfigMap(
      `${name}-dashboard`,
      {
        metadata: { name: `${cfg.platform.name}-dashboard`, namespace: appNs, labels: { ...common, grafana_dashboard: "1" } },
        data: { [`${cfg.platform.name}.json`]: dashboardJson(cfg) },
      },
      child,
    );
    this.registerOutputs({});
  }
}
