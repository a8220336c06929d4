// The alerts of seeds 002, 003 and 004, as a pure function of config. Every expression uses
// metrics the deployed exporters really expose: ingress-nginx, kube-state-metrics,
// postgres_exporter, redis_exporter, the kubelet (volume stats) and cert-manager (see docs/observability.md).
import { cronMaxGapSeconds } from "../../config/cron";
import { celeryQueues } from "../../config/workers";
import type { PlatformConfig } from "../../config/schema";
import { publicIngressName, tlsSecretName } from "../edge";

export interface Alert {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: "critical" | "warning" | "info" };
  annotations: { summary: string; description: string; runbook: string };
}

export interface RuleGroup {
  name: string;
  rules: Alert[];
}

function alert(name: string, expr: string, forDuration: string, severity: Alert["labels"]["severity"], summary: string, description: string, runbook: string): Alert {
  return { alert: name, expr, for: forDuration, labels: { severity }, annotations: { summary, description, runbook } };
}

export function alertGroups(cfg: PlatformConfig): RuleGroup[] {
  const t = cfg.monitoring.thresholds;
  const namespaces = [cfg.platform.namespace, ...(cfg.mail.enabled ? [cfg.platform.mailNamespace] : [])];
  const ns = `namespace=~"${namespaces.join("|")}"`;
  const app = `namespace="${cfg.platform.namespace}"`;
  const groups: RuleGroup[] = [];

  if (cfg.edge.enabled) {
    const ing = `ingress="${publicIngressName(cfg)}"`;
    const rules = [
      alert(
        "HighErrorRate",
        `sum(rate(nginx_ingress_controller_requests{${ing},status=~"5.."}[5m])) / sum(rate(nginx_ingress_controller_requests{${ing}}[5m])) > ${t.errorRatio}`,
        "5m",
        "critical",
        "More than " + t.errorRatio * 100 + "% of requests fail with 5xx",
        "{{ $value | humanizePercentage }} of requests through the public ingress returned 5xx over 5 minutes.",
        "Check the api pods' logs and readiness, recent rollouts (kubectl rollout history deploy/api), and the databases' health.",
      ),
      alert(
        "HighLatencyP95",
        `histogram_quantile(0.95, sum by (le) (rate(nginx_ingress_controller_request_duration_seconds_bucket{${ing}}[5m]))) > ${t.p95LatencySeconds}`,
        "10m",
        "warning",
        `p95 latency above ${t.p95LatencySeconds}s`,
        "95th percentile request latency at the ingress is {{ $value | humanizeDuration }}.",
        "Look for saturation: HPA at max, CPU throttling, slow queries (pg_stat_activity), Redis latency. Traces in /jaeger show the slow span.",
      ),
    ];
    if (cfg.edge.tls.issuer) {
      rules.push(
        alert(
          "CertificateExpiringSoon",
          `(certmanager_certificate_expiration_timestamp_seconds{name="${tlsSecretName(cfg)}"} - time()) < ${t.certificateExpiryDays * 86400}`,
          "1h",
          "warning",
          `TLS certificate expires in less than ${t.certificateExpiryDays} days`,
          "Certificate {{ $labels.name }} expires in {{ $value | humanizeDuration }}; cert-manager should have renewed it.",
          "kubectl describe certificate / certificaterequest / order in the app namespace; check the issuer and the ACME challenge (ingress reachable on :80).",
        ),
      );
    }
    groups.push({ name: "edge", rules });
  }

  groups.push({
    name: "workloads",
    rules: [
      alert(
        "PodRestarting",
        `increase(kube_pod_container_status_restarts_total{${ns}}[15m]) > ${t.restartsPer15m}`,
        "0m",
        "warning",
        "A container keeps restarting",
        "{{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) restarted {{ $value }} times in 15 minutes.",
        "kubectl logs --previous and kubectl describe pod: look for OOMKilled (raise memory limits) or failing liveness probes.",
      ),
      alert(
        "HPAAtMaxReplicas",
        `kube_horizontalpodautoscaler_status_current_replicas{${ns}} >= kube_horizontalpodautoscaler_spec_max_replicas{${ns}}`,
        "15m",
        "warning",
        "An autoscaler has been at its maximum for 15 minutes",
        "HPA {{ $labels.horizontalpodautoscaler }} runs at maxReplicas; load beyond this is not absorbed.",
        "Raise <tier>.hpa.maxReplicas in the stack config (the quota follows), or find why each pod is saturated.",
      ),
      alert(
        "HPAMetricsUnavailable",
        `kube_horizontalpodautoscaler_status_condition{${ns},condition="ScalingActive",status="false"} == 1`,
        "5m",
        "warning",
        "An autoscaler cannot read its metrics",
        "HPA {{ $labels.horizontalpodautoscaler }} is not scaling: ScalingActive is false.",
        "Check metrics-server (kubectl top pods) and that every container has resource requests.",
      ),
      alert(
        "RolloutStuck",
        `kube_deployment_spec_replicas{${ns}} != kube_deployment_status_replicas_updated{${ns}} or kube_deployment_status_replicas_unavailable{${ns}} > 0`,
        "15m",
        "critical",
        "A rollout has not completed in 15 minutes",
        "Deployment {{ $labels.namespace }}/{{ $labels.deployment }} has pods that are not updated or not available.",
        "kubectl rollout status / describe the new ReplicaSet's pods: image pull errors, failing readiness, quota exhausted. Roll back with pulumi up on the previous config.",
      ),
      alert(
        "ScrapeTargetDown",
        `up{${ns}} == 0`,
        "5m",
        "warning",
        "A metrics endpoint is down",
        "{{ $labels.job }} ({{ $labels.instance }}) has not answered scrapes for 5 minutes.",
        "The pod may be down or the NetworkPolicy may not admit the monitoring namespace on its metrics port.",
      ),
    ],
  });

  // Store alerts read their exporter's metrics, so they exist only where that exporter runs.
  const stores: Alert[] = [];
  if (cfg.redis.enabled && cfg.redis.exporter.enabled) {
    stores.push(
      alert(
        "RedisMemoryHigh",
        `redis_memory_used_bytes{${app}} / redis_memory_max_bytes{${app}} > ${t.redisMemoryRatio} and redis_memory_max_bytes{${app}} > 0`,
        "10m",
        "warning",
        `Redis uses more than ${t.redisMemoryRatio * 100}% of maxmemory`,
        "Redis {{ $labels.pod }} is at {{ $value | humanizePercentage }} of maxmemory; keys are being evicted.",
        "Check queue backlogs (Celery lists) and big keys (redis-cli --bigkeys); raise redis maxmemory and memory limits together.",
      ),
    );
    if (cfg.workers.enabled) {
      stores.push(
        alert(
          "CeleryQueueBacklog",
          `max by (key) (redis_key_size{${app},key=~"${celeryQueues(cfg).join("|")}"}) > ${t.celeryQueueLength}`,
          "10m",
          "warning",
          "A Celery queue is backing up",
          "Queue {{ $labels.key }} holds {{ $value }} tasks.",
          "Check worker pods and their HPA (at max?), Flower for failing tasks, and beat for duplicated schedules.",
        ),
      );
    }
  }
  if (cfg.postgres.enabled && cfg.postgres.exporter.enabled) {
    stores.push(
      alert(
        "PostgresConnectionsNearMax",
        `sum by (pod) (pg_stat_activity_count{${app}}) / max by (pod) (pg_settings_max_connections{${app}}) > ${t.postgresConnectionsRatio}`,
        "5m",
        "warning",
        `Postgres connections above ${t.postgresConnectionsRatio * 100}% of max_connections`,
        "{{ $value | humanizePercentage }} of max_connections are in use.",
        "api replicas x DB_POOL_SIZE plus workers must stay below max_connections; lower the pool size or raise max_connections.",
      ),
    );
  }
  stores.push(...postgresHaAlerts(cfg, app));
  const dumps = (["postgres", "redis", "mongo"] as const).filter((store) => cfg[store].enabled && cfg[store].backup.enabled).map((store) => `${store}-backup`);
  if (dumps.length) {
    stores.push(
      alert(
        "BackupTooOld",
        // The logical dumps by name: the base backup CronJob has its own alert, from its own schedule.
        `time() - kube_cronjob_status_last_successful_time{${app},cronjob=~"${dumps.join("|")}"} > ${t.backupMaxAgeHours * 3600}`,
        "0m",
        "critical",
        `No successful backup for ${t.backupMaxAgeHours} hours`,
        "CronJob {{ $labels.cronjob }} last succeeded {{ $value | humanizeDuration }} ago.",
        "kubectl get jobs -l the backup CronJob; read the failed Job's logs (credentials, volume full, target unreachable).",
      ),
    );
  }
  if (stores.length) groups.push({ name: "stores", rules: stores });

  if (cfg.mail.enabled) {
    // The queue lives on each Postfix replica's own volume (queue-postfix-N): its fill level, from the
    // kubelet's volume stats, measures the queue without an extra exporter in the mail pods.
    const queue = `namespace="${cfg.platform.mailNamespace}",persistentvolumeclaim=~"queue-postfix-.*"`;
    const used = `kubelet_volume_stats_used_bytes{${queue}}`;
    groups.push({
      name: "mail",
      rules: [
        alert(
          "MailQueueGrowing",
          `${used} / kubelet_volume_stats_capacity_bytes{${queue}} > ${t.mailQueueVolumeRatio} and deriv(${used}[30m]) > 0`,
          "15m",
          "warning",
          "The Postfix queue is large and growing",
          "Queue volume {{ $labels.persistentvolumeclaim }} is {{ $value | humanizePercentage }} full and still growing.",
          "postqueue -p in a postfix pod: deferred mail usually means the relay or the recipients' MX refuse us (check egress on 25/587, DNS, reputation).",
        ),
      ],
    });
  }
  return groups;
}

/** The base backup may run this long after its scheduled time: the schedule's longest gap, the job's deadline, an hour of slack (time zones). */
export function baseBackupMaxAgeSeconds(cfg: PlatformConfig): number {
  return cronMaxGapSeconds(cfg.postgres.archive.schedule) + cfg.postgres.archive.activeDeadlineSeconds + 3600;
}

/**
 * The replicated Postgres (Patroni): a leader, replicas that keep up, failovers noticed, the WAL
 * archive and the base backups current. From postgres_exporter in every member (pg_replication_*,
 * pg_stat_replication_*, pg_stat_archiver_*) and kube-state-metrics (the base backup CronJob).
 */
function postgresHaAlerts(cfg: PlatformConfig, app: string): Alert[] {
  const pg = cfg.postgres;
  if (!pg.enabled || pg.mode !== "patroni") return [];
  const t = cfg.monitoring.thresholds;
  const out: Alert[] = [];
  if (pg.exporter.enabled) {
    out.push(
      alert(
        "PostgresNoLeader",
        `(count(pg_replication_is_replica{${app}} == 0) or vector(0)) < 1`,
        "1m",
        "critical",
        "No Postgres member accepts writes",
        "No member of the Patroni cluster runs as primary: every write of the platform fails.",
        "kubectl exec postgres-0 -c postgres -- patronictl -c /etc/patroni/patroni.yml list; check the members' logs (DCS reachable? the API server egress), and the PVCs.",
      ),
      alert(
        "PostgresMultiplePrimaries",
        `count(pg_replication_is_replica{${app}} == 0) > 1`,
        "1m",
        "critical",
        "More than one Postgres member runs as primary",
        "{{ $value }} members report they are not in recovery; only the one holding Patroni's lock gets client traffic (the postgres Service).",
        "patronictl list: the member without the leader lock must be demoted by Patroni; if it stays primary, stop it (kubectl delete pod) and let it rejoin.",
      ),
    );
    // Replication alerts only where there are replicas (one member with WAL archiving has none).
    if (pg.replicas > 1) out.push(
      alert(
        "PostgresReplicationLagHigh",
        `max by (application_name) (pg_stat_replication_pg_wal_lsn_diff{${app}}) > ${t.postgresReplicationLagBytes}`,
        "5m",
        "warning",
        `A Postgres replica is more than ${t.postgresReplicationLagBytes} bytes behind`,
        "Replica {{ $labels.application_name }} has {{ $value | humanize1024 }}B of WAL not replayed; in asynchronous mode a failover to it would lose that much.",
        "Check the replica's node (disk, CPU), its log (conflicts, long queries on the standby), and the network between the members.",
      ),
      alert(
        "PostgresReplicasMissing",
        `(count(pg_stat_replication_pg_wal_lsn_diff{${app}}) or vector(0)) < ${pg.replicas - 1}`,
        "5m",
        "warning",
        `Fewer than ${pg.replicas - 1} replicas stream from the primary`,
        `{{ $value }} of ${pg.replicas - 1} replicas are connected${pg.synchronous === "strict" ? "; with none, writes stop (synchronous: strict)" : pg.synchronous === "on" ? "; with none, commits are no longer confirmed by a standby" : ""}.`,
        "kubectl get pods -l app.kubernetes.io/name=postgres; patronictl list; a replica that cannot catch up is rebuilt with patronictl reinit.",
      ),
    );
    out.push(
      alert(
        "PostgresFailover",
        `max by (pod) (changes(pg_replication_is_replica{${app}}[10m])) > 0`,
        "0m",
        "warning",
        "A Postgres member changed role (failover or switchover)",
        "{{ $labels.pod }} became primary or replica in the last 10 minutes.",
        "A switchover during a rolling update or a drain is expected; otherwise read the former leader's log (node loss, OOM, DCS timeouts) and patronictl history.",
      ),
    );
    if (pg.archive.enabled) {
      out.push(
        alert(
          "PostgresWalArchivingFailing",
          `increase(pg_stat_archiver_failed_count{${app}}[10m]) > 0 unless increase(pg_stat_archiver_archived_count{${app}}[10m]) > 0`,
          "5m",
          "critical",
          "WAL archiving to the object store fails",
          "{{ $labels.pod }} failed to archive WAL and archived none for 10 minutes: point-in-time recovery stops at the last archived segment, and pg_wal grows.",
          "kubectl logs <primary> -c postgres | grep archive-push: credentials, the object store's egress (backups.objectStore.cidrs), the stanza (patroni-sync log).",
        ),
      );
    }
  }
  if (pg.archive.enabled) {
    out.push(
      alert(
        "PostgresBaseBackupTooOld",
        `time() - kube_cronjob_status_last_successful_time{${app},cronjob="postgres-basebackup"} > ${baseBackupMaxAgeSeconds(cfg)}`,
        "0m",
        "critical",
        "The last Postgres base backup is older than its schedule allows",
        "CronJob postgres-basebackup last succeeded {{ $value | humanizeDuration }} ago (schedule " + pg.archive.schedule + ").",
        "kubectl logs job/<last postgres-basebackup job>: TLS to the members (port 8432), the object store, or the stanza; run one now with kubectl create job --from=cronjob/postgres-basebackup.",
      ),
    );
  }
  return out;
}
