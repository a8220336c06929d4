// The platform's Grafana dashboard (pure JSON model). The Grafana sidecar of kube-prometheus-stack
// picks up ConfigMaps labelled grafana_dashboard=1.
import type { PlatformConfig } from "../../config/schema";
import { publicIngressPattern } from "../edge";
import { celeryQueues } from "../../config/workers";

interface Panel {
  title: string;
  expr: string;
  unit: string;
}

export function dashboardPanels(cfg: PlatformConfig): Panel[] {
  const ns = `namespace="${cfg.platform.namespace}"`;
  const ing = `ingress=~"${publicIngressPattern(cfg)}"`;
  const panels: Panel[] = [];
  if (cfg.edge.enabled) {
    panels.push(
      { title: "Requests per second", expr: `sum by (status) (rate(nginx_ingress_controller_requests{${ing}}[5m]))`, unit: "reqps" },
      { title: "5xx ratio", expr: `sum(rate(nginx_ingress_controller_requests{${ing},status=~"5.."}[5m])) / sum(rate(nginx_ingress_controller_requests{${ing}}[5m]))`, unit: "percentunit" },
      { title: "p95 latency", expr: `histogram_quantile(0.95, sum by (le) (rate(nginx_ingress_controller_request_duration_seconds_bucket{${ing}}[5m])))`, unit: "s" },
    );
  }
  panels.push(
    { title: "Replicas vs HPA max", expr: `kube_horizontalpodautoscaler_status_current_replicas{${ns}}`, unit: "short" },
    { title: "Container restarts (15m)", expr: `increase(kube_pod_container_status_restarts_total{${ns}}[15m])`, unit: "short" },
  );
  if (cfg.postgres.enabled) panels.push({ title: "Postgres connections", expr: `sum(pg_stat_activity_count{${ns}})`, unit: "short" });
  if (cfg.redis.enabled) panels.push({ title: "Redis memory used / max", expr: `redis_memory_used_bytes{${ns}} / redis_memory_max_bytes{${ns}}`, unit: "percentunit" });
  if (cfg.redis.enabled && cfg.workers.enabled) {
    panels.push({ title: "Celery queue length", expr: `redis_key_size{${ns},key=~"${celeryQueues(cfg).join("|")}"}`, unit: "short" });
  }
  if (cfg.mail.enabled) {
    const mailNs = `namespace="${cfg.platform.mailNamespace}"`;
    panels.push(
      { title: "Postfix queues", expr: `sum by (queue) (postfix_showq_message_age_seconds_count{${mailNs}})`, unit: "short" },
      { title: "SMTP rejects per second", expr: `sum by (code) (rate(postfix_smtpd_messages_rejected_total{${mailNs}}[5m]))`, unit: "reqps" },
      { title: "Failed mail logins per second", expr: `sum(rate(dovecot_auth_failures_total{${mailNs}}[5m]))`, unit: "reqps" },
    );
  }
  return panels;
}

export function dashboardJson(cfg: PlatformConfig): string {
  const panels = dashboardPanels(cfg).map((p, i) => ({
    id: i + 1,
    type: "timeseries",
    title: p.title,
    datasource: { type: "prometheus", uid: "${datasource}" },
    gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: Math.floor(i / 2) * 8 },
    fieldConfig: { defaults: { unit: p.unit }, overrides: [] },
    targets: [{ refId: "A", expr: p.expr, datasource: { type: "prometheus", uid: "${datasource}" } }],
  }));
  return JSON.stringify({
    uid: `${cfg.platform.name}-${cfg.environment}`.slice(0, 40),
    title: `${cfg.platform.name} (${cfg.environment})`,
    tags: [cfg.platform.name, cfg.environment],
    timezone: "utc",
    schemaVersion: 39,
    refresh: "30s",
    time: { from: "now-6h", to: "now" },
    templating: { list: [{ name: "datasource", type: "datasource", query: "prometheus", current: {} }] },
    panels,
  });
}
