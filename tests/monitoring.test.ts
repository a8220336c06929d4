import { expect } from "chai";
import { inventory } from "../config/inventory";
import { alertGroups } from "../components/monitoring/rules";
import { dashboardPanels } from "../components/monitoring/dashboard";
import { DOVECOT_METRICS } from "../components/mail/dovecot";
import { evaluate, evaluateStack, objectsOfKind, ok, podSpec, STACKS, configOf } from "./harness";
import type { Evaluation } from "./harness";
import { matchesSelector } from "./reachability";
import { validateObject } from "./checks";
import { metricNames } from "./promql";

/**
 * Metric names the deployed exporters really expose (their documentation / source), and nothing
 * else: an alert on a misspelt or invented metric never fires.
 */
const EXPORTED_METRICS: Record<string, string[]> = {
  prometheus: ["up"],
  // ingress-nginx controller (/metrics on 10254)
  "ingress-nginx": ["nginx_ingress_controller_requests", "nginx_ingress_controller_request_duration_seconds_bucket"],
  "kube-state-metrics": [
    "kube_pod_container_status_restarts_total",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_horizontalpodautoscaler_status_condition",
    "kube_deployment_spec_replicas",
    "kube_deployment_status_replicas_updated",
    "kube_deployment_status_replicas_unavailable",
    "kube_cronjob_status_last_successful_time",
    "kube_endpoint_address",
    "kube_endpoint_info",
    "kube_pod_container_status_ready",
    "kube_cronjob_created",
    "kube_statefulset_status_replicas_ready",
    "kube_statefulset_replicas",
    "kube_pod_container_resource_limits",
  ],
  // The kubelet's cAdvisor (kube-prometheus-stack scrapes it as job="kubelet", metrics path /metrics/cadvisor).
  cadvisor: ["container_cpu_cfs_throttled_periods_total", "container_cpu_cfs_periods_total", "container_memory_working_set_bytes"],
  // v0.15.0: pg_replication (collector), pg_stat_replication and pg_stat_archiver (builtin metric maps).
  postgres_exporter: [
    "pg_stat_activity_count",
    "pg_settings_max_connections",
    "pg_replication_is_replica",
    "pg_stat_replication_pg_wal_lsn_diff",
    "pg_stat_archiver_failed_count",
    "pg_stat_archiver_archived_count",
  ],
  // redis_key_size: the Celery queue lists the exporter is told to check (REDIS_EXPORTER_CHECK_SINGLE_KEYS).
  // redis_instance_info{role}, redis_master_link_up (replicas) and redis_connected_slaves: exporter/info.go in v1.63.0.
  redis_exporter: ["redis_memory_used_bytes", "redis_memory_max_bytes", "redis_key_size", "redis_instance_info", "redis_master_link_up", "redis_connected_slaves"],
  // percona/mongodb_exporter 0.40 --compatible-mode with --collector.diagnosticdata (exporter/v1_compatibility.go);
  // its general collector registers mongodb_up.
  mongodb_exporter: ["mongodb_up", "mongodb_mongod_replset_my_state", "mongodb_mongod_replset_member_replication_lag"],
  // postfix_exporter sidecar: showq histograms per queue, counters from the log (the daemon tier scrapes the real one).
  postfix_exporter: ["postfix_showq_message_age_seconds_count", "postfix_smtpd_messages_rejected_total", "postfix_smtpd_connects_total", "postfix_smtp_messages_processed_total"],
  // Dovecot's stats service: the `metric` blocks of dovecot.conf, as dovecot_<name>_total.
  dovecot: DOVECOT_METRICS.map((m) => `dovecot_${m.name}_total`),
  "cert-manager": ["certmanager_certificate_expiration_timestamp_seconds"],
  // The blackbox exporter's probe results (the mail ports).
  blackbox_exporter: ["probe_success"],
};
const KNOWN = new Set(Object.values(EXPORTED_METRICS).flat());

const ISSUE_ALERTS = [
  "HighErrorRate",
  "HighLatencyP95",
  "PodRestarting",
  "HPAAtMaxReplicas",
  "HPAMetricsUnavailable",
  "RolloutStuck",
  "RedisMemoryHigh",
  "CeleryQueueBacklog",
  "PostgresConnectionsNearMax",
  "MailSMTPDown",
  "MailIMAPDown",
  "MailPOP3Down",
  "MailNoReadyPostfix",
  "MailNoReadyDovecot",
  "RspamdDown",
  "MailDeferredQueueGrowing",
  "MailRejectRateHigh",
  "MailBounceRateHigh",
  "MailAuthFailuresHigh",
  "MailCertificateExpiringSoon",
  "CertificateExpiringSoon",
  "BackupTooOld",
  "RedisNoMaster",
  "RedisFailover",
  "RedisReplicationBroken",
  "MongoNoPrimary",
  "MongoReplicationLag",
  // Replicated Postgres (staging and prod run Patroni); the archive alerts need backups.objectStore.
  "PostgresNoLeader",
  "PostgresMultiplePrimaries",
  "PostgresReplicationLagHigh",
  "PostgresReplicasMissing",
  "PostgresFailover",
  // Seeds 003 and 004: a StatefulSet short of ready replicas, a Service with no endpoint,
  // saturation (CPU throttling, memory near the limit), MongoDB down, an HPA maxed out for long.
  "StatefulSetReplicasNotReady",
  "ServiceNoEndpoints",
  "ContainerCPUThrottled",
  "ContainerMemoryNearLimit",
  "MongoDBDown",
  "HPAMaxedOutSustained",
];

/** Where each alert's metrics come from (EXPORTED_METRICS key): every alert is tied to one source at least. */
const SOURCES: Record<string, string[]> = {
  StatefulSetReplicasNotReady: ["kube-state-metrics"],
  ServiceNoEndpoints: ["kube-state-metrics"],
  ContainerCPUThrottled: ["cadvisor"],
  ContainerMemoryNearLimit: ["cadvisor", "kube-state-metrics"],
  MongoDBDown: ["mongodb_exporter"],
  HPAMaxedOutSustained: ["kube-state-metrics"],
};

describe("monitoring", () => {
  it("parses metric names out of PromQL", () => {
    expect(metricNames('sum by (pod) (pg_stat_activity_count{namespace="a"}) / max by (pod) (pg_settings_max_connections) > 0.8')).to.deep.equal([
      "pg_stat_activity_count",
      "pg_settings_max_connections",
    ]);
    expect(metricNames("time() - kube_cronjob_status_last_successful_time > 3600")).to.deep.equal(["kube_cronjob_status_last_successful_time"]);
    expect(metricNames("deriv(sum(foo_total)[30m:1m]) > 0 and bar")).to.deep.equal(["foo_total", "bar"]);
  });

  for (const stack of STACKS) {
    describe(stack, () => {
      it(stack === "dev" ? "creates no Prometheus Operator objects where the CRDs are absent (monitoring.enabled false)" : "creates ServiceMonitors, a PrometheusRule and a dashboard", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        expect(cfg.monitoring.enabled).to.equal(stack !== "dev");
        const count = objectsOfKind(ev, "ServiceMonitor").length + objectsOfKind(ev, "PrometheusRule").length;
        const dashboards = objectsOfKind(ev, "ConfigMap").filter((c) => c.metadata.labels?.grafana_dashboard === "1");
        if (stack === "dev") {
          expect(count).to.equal(0);
          expect(dashboards).to.have.length(0);
          expect(ev.resources.filter((r) => r.type.includes("monitoring.coreos.com"))).to.have.length(0);
        } else {
          expect(count).to.be.greaterThan(1);
          expect(dashboards).to.have.length(1);
        }
      });

      // Only where monitoring is on (staging, prod); dev's absence of every monitoring object is tested above.
      if (configOf(stack).monitoring.enabled) it("has a ServiceMonitor for each group with a metrics port, selecting a Service that exists and its port named metrics", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        const monitors = objectsOfKind(ev, "ServiceMonitor");
        const scraped = inventory(cfg).filter((g) => g.metricsPort !== undefined);
        expect(monitors.map((m) => m.metadata.name).sort()).to.deep.equal(scraped.map((g) => g.name).sort());
        const services = objectsOfKind(ev, "Service");
        for (const sm of monitors) {
          expect(sm.metadata.labels, sm.metadata.name).to.include(cfg.monitoring.selectorLabels);
          const ns = sm.spec.namespaceSelector.matchNames;
          // Selected Services with a port of the endpoint's name (a headless twin without one is not scraped).
          const targets = services.filter(
            (s) => ns.includes(s.metadata.namespace) && matchesSelector(s.metadata.labels ?? {}, sm.spec.selector) && (s.spec.ports ?? []).some((p: { name: string }) => p.name === "metrics"),
          );
          expect(targets, `ServiceMonitor ${sm.metadata.name} selects no Service`).to.have.length(1);
          const group = scraped.find((g) => g.name === sm.metadata.name)!;
          for (const ep of sm.spec.endpoints) {
            const port = targets[0].spec.ports.find((p: { name: string }) => p.name === ep.port);
            expect(port, `${sm.metadata.name}: Service has no port named ${ep.port}`).to.not.equal(undefined);
            expect(ep.port).to.equal("metrics");
            // The Service port leads to the container port the inventory (and the NetworkPolicy) names.
            const pods = [...objectsOfKind(ev, "Deployment"), ...objectsOfKind(ev, "StatefulSet")].filter((w) => matchesSelector(w.spec.template.metadata.labels, { matchLabels: targets[0].spec.selector }));
            const containerPorts = pods.flatMap((w) => w.spec.template.spec.containers.flatMap((c: any) => c.ports ?? []));
            const target = typeof port.targetPort === "string" ? containerPorts.find((p: any) => p.name === port.targetPort)?.containerPort : port.targetPort;
            expect(target, sm.metadata.name).to.equal(group.metricsPort);
            expect(ep.interval).to.equal(cfg.monitoring.scrapeInterval);
            expect(parseInt(ep.scrapeTimeout, 10)).to.be.at.most(parseInt(ep.interval, 10));
          }
          await validateObject(sm);
        }
        // Conversely, every Service that exposes a metrics port is scraped (a tier that forgot metricsPort shows here).
        for (const svc of services.filter((s) => (s.spec.ports ?? []).some((p: { name: string }) => p.name === "metrics"))) {
          const by = monitors.filter((sm) => sm.spec.namespaceSelector.matchNames.includes(svc.metadata.namespace) && matchesSelector(svc.metadata.labels ?? {}, sm.spec.selector));
          expect(by, `Service ${svc.metadata.name} has a metrics port but no ServiceMonitor`).to.have.length(1);
        }
      });

      // Only where monitoring is on (staging, prod); dev's absence of every monitoring object is tested above.
      if (configOf(stack).monitoring.enabled) it("alerts on everything the issue lists, each with severity, summary, runbook and metrics the exporters expose", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        const [rule] = objectsOfKind(ev, "PrometheusRule");
        await validateObject(rule);
        expect(rule.metadata.labels).to.include(cfg.monitoring.selectorLabels);
        const alerts = rule.spec.groups.flatMap((g: { rules: unknown[] }) => g.rules) as { alert: string; expr: string; labels: { severity: string }; annotations: Record<string, string> }[];
        // Every tier is enabled in the stack files, so every alert applies.
        expect(alerts.map((a) => a.alert)).to.have.members(ISSUE_ALERTS.concat(["ScrapeTargetDown"]));
        for (const a of alerts) {
          expect(["critical", "warning"], a.alert).to.include(a.labels.severity);
          expect(a.annotations.summary, a.alert).to.be.a("string").and.not.equal("");
          expect(a.annotations.runbook, a.alert).to.be.a("string").and.not.equal("");
          const names = metricNames(a.expr);
          expect(names.length, a.alert).to.be.greaterThan(0);
          for (const n of names) expect(KNOWN.has(n), `${a.alert} uses ${n}, which no deployed exporter exposes`).to.equal(true);
        }
        const t = cfg.monitoring.thresholds;
        const by = (n: string) => alerts.find((a) => a.alert === n)!;
        expect(by("HighErrorRate").expr).to.match(new RegExp(`> ${t.errorRatio}$`)).and.contain('ingress=~"email-platform-public(-.+)?"');
        expect(by("HighLatencyP95").expr).to.contain("histogram_quantile(0.95").and.match(new RegExp(`> ${t.p95LatencySeconds}$`));
        expect((by("HPAAtMaxReplicas") as unknown as { for: string }).for).to.equal("15m");
        expect(by("RedisMemoryHigh").expr).to.contain(`> ${t.redisMemoryRatio}`);
        expect(by("PostgresConnectionsNearMax").expr).to.contain(`> ${t.postgresConnectionsRatio}`);
        expect(by("CeleryQueueBacklog").expr).to.contain('key=~"default"').and.contain(`> ${t.celeryQueueLength}`);
        expect(by("CertificateExpiringSoon").expr).to.contain('name="email-platform-tls"').and.contain(`< ${t.certificateExpiryDays * 86400}`);
        expect(by("BackupTooOld").expr).to.contain(`> ${t.backupMaxAgeHours * 3600}`);
        for (const a of alerts.filter((x) => x.alert.startsWith("Mail") || x.alert === "RspamdDown")) expect(a.expr, a.alert).to.contain(`namespace="email-platform-mail-${stack}"`);
        expect(by("MailDeferredQueueGrowing").expr).to.contain('queue="deferred"').and.contain(`> ${t.mailDeferredQueue}`);
        // Every backup CronJob, the mailbox one in the mail namespace included.
        expect(by("BackupTooOld").expr).to.contain(`namespace=~"${cfg.platform.namespace}|${cfg.platform.mailNamespace}",cronjob=~"postgres-backup|redis-backup|mongo-backup|mailbox-backup"`);
        // A failed Job never sets lastSuccessfulTime; a CronJob that never succeeded counts from its creation.
        expect(by("BackupTooOld").expr).to.match(/time\(\) - kube_cronjob_created\{[^}]+\} > \d+ unless on \(namespace, cronjob\) kube_cronjob_status_last_successful_time\{/);
        expect(by("RedisReplicationBroken").expr).to.contain(`< ${cfg.redis.replicas - 1}`);
        expect(by("MongoReplicationLag").expr).to.contain(`> ${t.mongoReplicationLagSeconds}`);
      });

      // Only where monitoring is on (staging, prod); dev's absence of every monitoring object is tested above.
      if (configOf(stack).monitoring.enabled) it("ships a Grafana dashboard ConfigMap the sidecar discovers, on exported metrics", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        const [cm] = objectsOfKind(ev, "ConfigMap").filter((c) => c.metadata.labels?.grafana_dashboard === "1");
        expect(cm.metadata.namespace).to.equal(`email-platform-${stack}`);
        const dashboard = JSON.parse(cm.data["email-platform.json"]);
        expect(dashboard.panels).to.have.length(dashboardPanels(cfg).length).and.length.greaterThan(5);
        for (const p of dashboard.panels) for (const n of metricNames(p.targets[0].expr)) expect(KNOWN.has(n), `${p.title}: ${n}`).to.equal(true);
        await validateObject(cm);
      });
    });
  }

  it("works in dev once the CRDs are there, and leaves out alerts of disabled tiers", async () => {
    const ev = ok(await evaluate({ stack: "dev", set: { "monitoring.enabled": true, "mail.enabled": false } }));
    const expected = inventory(configOf("dev", { monitoring: { enabled: true }, mail: { enabled: false } })).filter((g) => g.metricsPort !== undefined);
    expect(objectsOfKind(ev, "ServiceMonitor").map((m) => m.metadata.name).sort()).to.deep.equal(expected.map((g) => g.name).sort());
    expect(expected.map((g) => g.name)).to.include("jaeger").and.not.include("postfix");
    const names = alertGroups(configOf("dev", { monitoring: { enabled: true }, mail: { enabled: false } })).flatMap((g) => g.rules.map((r) => r.alert));
    expect(names.filter((n) => n.startsWith("Mail") || n === "RspamdDown")).to.deep.equal([]);
    // No TLS in dev: no certificate to watch.
    expect(names).to.not.include("CertificateExpiringSoon");
  });

  it("creates none of its objects when disabled in prod, and everything else still builds", async () => {
    const ev = ok(await evaluate({ stack: "prod", set: { "monitoring.enabled": false } }));
    expect(ev.resources.filter((r) => r.type.includes("monitoring.coreos.com"))).to.have.length(0);
    expect(objectsOfKind(ev, "ConfigMap").filter((c) => c.metadata.labels?.grafana_dashboard === "1")).to.have.length(0);
    expect(objectsOfKind(ev, "Deployment").map((d) => d.metadata.name)).to.include("jaeger");
    // Nothing is opened to the monitoring namespace either.
    expect(JSON.stringify(objectsOfKind(ev, "NetworkPolicy"))).not.to.contain('"monitoring"');
  });

  it("mail alerts read the objects the mail tier really creates: the Services' endpoints, the rspamd container, the Certificate, the Probes (prod)", async () => {
    const ev = ok(await evaluateStack("prod"));
    const cfg = configOf("prod");
    const alerts = objectsOfKind(ev, "PrometheusRule")[0].spec.groups.flatMap((g: any) => g.rules);
    const by = (n: string) => alerts.find((r: any) => r.alert === n).expr as string;
    const mailNs = cfg.platform.mailNamespace;
    const named = (kind: string, name: string) => objectsOfKind(ev, kind).some((o) => o.metadata.name === name && o.metadata.namespace === mailNs);
    for (const [alert, svc] of [["MailNoReadyPostfix", "postfix"], ["MailNoReadyDovecot", "dovecot"]]) {
      const endpoint = /endpoint="([^"]+)"/.exec(by(alert))![1];
      expect(endpoint).to.equal(svc);
      expect(named("Service", endpoint), endpoint).to.equal(true);
    }
    const container = /container="([^"]+)"/.exec(by("RspamdDown"))![1];
    const postfix = objectsOfKind(ev, "StatefulSet").find((s) => s.metadata.name === "postfix");
    expect(postfix.spec.template.spec.containers.map((c: any) => c.name)).to.include(container);
    const cert = /name="([^"]+)"/.exec(by("MailCertificateExpiringSoon"))![1];
    expect(named("Certificate", cert), cert).to.equal(true);
    // The deferred-queue alert reads the exporter the Postfix pod runs, scraped through its ServiceMonitor.
    expect(postfix.spec.template.spec.containers.some((c: any) => (c.ports ?? []).some((p: any) => p.name === "metrics"))).to.equal(true);
    expect(objectsOfKind(ev, "ServiceMonitor").map((m) => m.metadata.name)).to.include.members(["postfix", "dovecot"]);
  });

  it("without cert-manager (self-signed mail certificate) there is no mail certificate alert", () => {
    const names = alertGroups(configOf("dev", { monitoring: { enabled: true } })).flatMap((g) => g.rules.map((r) => r.alert));
    expect(names).to.include("MailSMTPDown").and.not.include("MailCertificateExpiringSoon");
  });

  it("the Celery backlog alert reads queue lengths the Redis exporter is told to export, from the broker's DB (prod)", async () => {
    const ev = ok(await evaluateStack("prod"));
    const cfg = configOf("prod");
    const queues = [...new Set(Object.values(cfg.workers.pools).flatMap((p) => p.queues))];
    const redis = objectsOfKind(ev, "StatefulSet").find((s) => s.metadata.name === "redis");
    const exporter = redis.spec.template.spec.containers.find((c: any) => (c.ports ?? []).some((p: any) => p.name === "metrics"));
    const single = exporter.env.find((e: any) => e.name === "REDIS_EXPORTER_CHECK_SINGLE_KEYS").value.split(",");
    // The broker DB is the one in CELERY_BROKER_URL (redis://...:6379/<db>).
    const brokerUrl = objectsOfKind(ev, "Secret").find((s) => s.metadata.name === "app-connections").stringData.CELERY_BROKER_URL;
    const db = /\/(\d+)$/.exec(brokerUrl)![1];
    expect(single.sort()).to.deep.equal(queues.map((q) => `db${db}=${q}`).sort());
    const [rule] = objectsOfKind(ev, "PrometheusRule");
    const backlog = rule.spec.groups.flatMap((g: any) => g.rules).find((r: any) => r.expr.includes("redis_key_size"));
    const keys = new RegExp(`^(${/key=~"([^"]+)"/.exec(backlog.expr)![1]})$`);
    for (const q of queues) expect(q).to.match(keys);
  });

  it("leaves out the alerts whose exporter or backup is off, keeps the rest", () => {
    const names = (overrides: Record<string, unknown>) => alertGroups(configOf("prod", overrides)).flatMap((g) => g.rules.map((r) => r.alert));
    const all = names({});
    expect(all).to.include.members(["RedisMemoryHigh", "CeleryQueueBacklog", "PostgresConnectionsNearMax", "BackupTooOld"]);
    const noExporters = names({ redis: { exporter: { enabled: false } }, postgres: { exporter: { enabled: false } } });
    for (const a of ["RedisMemoryHigh", "CeleryQueueBacklog", "PostgresConnectionsNearMax"]) expect(noExporters, a).to.not.include(a);
    expect(noExporters).to.include("BackupTooOld");
    const noBackups = names({ postgres: { backup: { enabled: false } }, redis: { backup: { enabled: false } }, mongo: { backup: { enabled: false } }, mail: { backup: { enabled: false } } });
    expect(noBackups).to.not.include("BackupTooOld");
    expect(names({ postgres: { backup: { enabled: false } }, mongo: { backup: { enabled: false } } })).to.include("BackupTooOld");
    // The mailbox backup alone still has its age alert.
    expect(names({ postgres: { backup: { enabled: false } }, redis: { backup: { enabled: false } }, mongo: { backup: { enabled: false } } })).to.include("BackupTooOld");
    // Replication alerts need the exporter, and Redis's need Sentinel.
    expect(all).to.include.members(["RedisNoMaster", "RedisFailover", "RedisReplicationBroken", "MongoNoPrimary", "MongoReplicationLag"]);
    const single = names({ redis: { replicas: 1, sentinel: { enabled: false }, settings: { minReplicasToWrite: 0 } }, mongo: { replicas: 1 } });
    for (const a of ["RedisNoMaster", "RedisFailover", "RedisReplicationBroken", "MongoReplicationLag"]) expect(single, a).to.not.include(a);
    expect(single).to.include("MongoNoPrimary");
    expect(names({ mongo: { exporter: { enabled: false } } })).to.not.include("MongoNoPrimary");
  });

  describe("the seeds' availability and saturation alerts (prod)", () => {
    let ev: Evaluation;
    let alerts: { alert: string; expr: string; for: string; labels: { severity: string }; annotations: Record<string, string> }[];
    before(async () => {
      ev = ok(await evaluateStack("prod"));
      alerts = objectsOfKind(ev, "PrometheusRule")[0].spec.groups.flatMap((g: any) => g.rules);
    });
    const by = (n: string) => alerts.find((a) => a.alert === n)!;

    it("each reads only metrics of its named sources, and every named source contributes", () => {
      for (const [name, sources] of Object.entries(SOURCES)) {
        const names = metricNames(by(name).expr);
        const allowed = new Set(sources.flatMap((src) => EXPORTED_METRICS[src]));
        expect(names.filter((n) => !allowed.has(n)), name).to.deep.equal([]);
        for (const src of sources) expect(names.some((n) => EXPORTED_METRICS[src].includes(n)), `${name} reads ${src}`).to.equal(true);
        expect(by(name).annotations.runbook.length, name).to.be.greaterThan(40);
      }
    });

    it("thresholds and durations come from monitoring.thresholds", () => {
      const t = configOf("prod").monitoring.thresholds;
      expect(by("ContainerCPUThrottled").expr).to.match(new RegExp(`> ${t.cpuThrottlingRatio}$`));
      expect(by("ContainerMemoryNearLimit").expr).to.match(new RegExp(`> ${t.memoryLimitRatio}$`));
      expect(by("HPAMaxedOutSustained").for).to.equal(`${t.hpaMaxedOutHours}h`);
      const changed = alertGroups(configOf("prod", { monitoring: { thresholds: { memoryLimitRatio: 0.8, hpaMaxedOutHours: 6 } } })).flatMap((g) => g.rules);
      expect(changed.find((a) => a.alert === "ContainerMemoryNearLimit")!.expr).to.match(/> 0\.8$/);
      expect(changed.find((a) => a.alert === "HPAMaxedOutSustained")!.for).to.equal("6h");
    });

    it("the saturation ratios have a denominator: every container in the watched namespaces sets CPU and memory limits", () => {
      const cfg = configOf("prod");
      const watched = [cfg.platform.namespace, cfg.platform.mailNamespace];
      for (const a of ["ContainerCPUThrottled", "ContainerMemoryNearLimit"]) expect(by(a).expr).to.contain(`namespace=~"${watched.join("|")}"`);
      const workloads = ["Deployment", "StatefulSet", "Job", "CronJob"].flatMap((k) => objectsOfKind(ev, k)).filter((o) => watched.includes(o.metadata.namespace));
      const containers = workloads.flatMap((o) => podSpec(o).containers);
      expect(containers.length).to.be.greaterThan(10);
      for (const c of containers) expect([c.resources?.limits?.cpu, c.resources?.limits?.memory], c.name).to.not.include(undefined);
    });

    it("StatefulSetReplicasNotReady watches every namespace that runs a StatefulSet; ServiceNoEndpoints the app namespace's Services", () => {
      const cfg = configOf("prod");
      const sets = objectsOfKind(ev, "StatefulSet");
      expect(sets.map((s) => s.metadata.name)).to.include.members(["postgres", "redis", "mongo", "postfix", "dovecot"]);
      const watched = /namespace=~"([^"]+)"/.exec(by("StatefulSetReplicasNotReady").expr)![1].split("|");
      for (const s of sets) expect(watched, s.metadata.name).to.include(s.metadata.namespace);
      // The mail Services have their own availability alerts (MailSMTPDown, MailIMAPDown): not twice.
      expect(by("ServiceNoEndpoints").expr).to.contain(`namespace="${cfg.platform.namespace}"`).and.not.contain(cfg.platform.mailNamespace);
      expect(objectsOfKind(ev, "Service").filter((s) => s.metadata.namespace === cfg.platform.namespace).length).to.be.greaterThan(3);
    });

    it("MongoDBDown reads the exporter the mongo pod runs, scraped through its ServiceMonitor", () => {
      const cfg = configOf("prod");
      const mongo = objectsOfKind(ev, "StatefulSet").find((s) => s.metadata.name === "mongo");
      const exporter = podSpec(mongo).containers.find((c: any) => c.image === cfg.mongo.exporter.image);
      expect(exporter.image).to.match(/^percona\/mongodb_exporter:/);
      expect(exporter.ports.map((p: any) => p.name)).to.include("metrics");
      expect(objectsOfKind(ev, "ServiceMonitor").map((m) => m.metadata.name)).to.include("mongo");
      expect(by("MongoDBDown").expr).to.contain(`namespace="${cfg.platform.namespace}"`);
    });

    it("exists only where its source does: no MongoDBDown without the exporter, no StatefulSet alert without StatefulSets", () => {
      const names = (overrides: Record<string, unknown>) => alertGroups(configOf("prod", overrides)).flatMap((g) => g.rules.map((r) => r.alert));
      expect(names({ mongo: { exporter: { enabled: false } } })).to.not.include("MongoDBDown");
      expect(names({ mongo: { enabled: false } })).to.not.include("MongoDBDown");
      const stateless = { postgres: { enabled: false }, redis: { enabled: false }, mongo: { enabled: false }, mail: { enabled: false }, workers: { enabled: false } };
      expect(names(stateless)).to.not.include("StatefulSetReplicasNotReady");
      expect(names(stateless)).to.include.members(["ServiceNoEndpoints", "ContainerCPUThrottled", "ContainerMemoryNearLimit", "HPAMaxedOutSustained"]);
      expect(names({ postgres: { enabled: false }, redis: { enabled: false }, mongo: { enabled: false }, workers: { enabled: false } })).to.include("StatefulSetReplicasNotReady");
    });
  });
});
