// Monitoring through the Prometheus Operator: a ServiceMonitor per pod group that exposes a
// `metrics` Service port, one PrometheusRule with the seeds' alerts, and a Grafana dashboard
// ConfigMap. Created only when monitoring.enabled (the CRDs exist); otherwise nothing at all.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { NamespaceRole, PodGroup } from "../../config/inventory";
import type { PlatformConfig } from "../../config/schema";
import type { DependencyGraph } from "../lib/graph";
import { labels, platformLabels, selectorLabels } from "../lib/labels";
import { PORTS } from "../lib/ports";
import { BLACKBOX, MAIL_PROBES, blackboxConfigText, blackboxDeploymentSpec, mailProbeSpec } from "./blackbox";
import { dashboardJson } from "./dashboard";
import { alertGroups } from "./rules";

export interface MonitoringArgs {
  config: PlatformConfig;
  namespaces: Record<NamespaceRole, pulumi.Input<string>>;
  inventory: PodGroup[];
  /** The ServiceAccount of an inventory group (the blackbox exporter's). */
  serviceAccount: (name: string) => pulumi.Input<string>;
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
  if (!cfg.mail.enabled) return;
  // The blackbox exporter probes each replica's own address, so policies see the container ports.
  for (const daemon of ["postfix", "dovecot"] as const) {
    const probes = MAIL_PROBES.filter((p) => p.daemon === daemon);
    graph.connect(BLACKBOX, daemon, probes.map((p) => p.targetPort), `blackbox probes: ${probes.map((p) => p.protocol).join(", ")}`);
  }
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

    if (cfg.mail.enabled) this.mailProbes(name, cfg, args, common);

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

  /** The blackbox exporter in the mail namespace and one Probe per mail port (components/monitoring/blackbox.ts). */
  private mailProbes(name: string, cfg: PlatformConfig, args: MonitoringArgs, common: Record<string, string>): void {
    const ns = args.namespaces.mail;
    const child = { parent: this };
    const id = { name: BLACKBOX, component: "monitoring", image: cfg.monitoring.blackbox.image };
    const meta = (n: string) => ({ name: n, namespace: ns, labels: labels(cfg, id) });
    const config = new k8s.core.v1.ConfigMap(`${name}-blackbox-config`, { metadata: meta(`${BLACKBOX}-config`), data: { "config.yml": blackboxConfigText(cfg) } }, child);
    new k8s.apps.v1.Deployment(
      `${name}-blackbox`,
      { metadata: meta(BLACKBOX), spec: blackboxDeploymentSpec(cfg, { serviceAccount: args.serviceAccount(BLACKBOX), configMap: config.metadata.name }) },
      child,
    );
    new k8s.core.v1.Service(
      `${name}-blackbox-service`,
      {
        metadata: meta(BLACKBOX),
        spec: { type: "ClusterIP", selector: selectorLabels(cfg, id), ports: [{ name: "metrics", port: PORTS.blackbox.metrics, targetPort: "metrics", protocol: "TCP" }] },
      },
      child,
    );
    for (const p of MAIL_PROBES) {
      new k8s.apiextensions.CustomResource(
        `${name}-probe-${p.protocol}`,
        { apiVersion: "monitoring.coreos.com/v1", kind: "Probe", metadata: { name: `mail-${p.protocol}`, namespace: ns, labels: common }, spec: mailProbeSpec(cfg, p) },
        child,
      );
    }
  }
}
