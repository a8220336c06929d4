// The alerts of seeds 002, 003 and 004, as a pure function of config. Every expression uses
// metrics the deployed exporters really expose: ingress-nginx, kube-state-metrics,
// postgres_exporter, redis_exporter, the kubelet (volume stats) and cert-manager (see docs/observability.md).
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
  if (cfg.redis.enabled && cfg.redis.exporter.enabled && cfg.redis.sentinel.enabled) {
    const info = `redis_instance_info{${app}}`;
    const master = `redis_instance_info{${app},role="master"}`;
    stores.push(
      alert(
        "RedisNoMaster",
        // Exporters answer, but no member says it is the master (longer than a failover takes).
        `count(${info}) > 0 unless on() count(${master}) > 0`,
        "1m",
        "critical",
        "No Redis member is the master",
        "The Redis exporters report no master for a minute: Celery cannot publish or consume tasks.",
        "kubectl exec redis-0 -c sentinel -- redis-cli -p 26379 sentinel masters (REDISCLI_AUTH is set): is a failover stuck (no replica in sync, quorum lost)? docs/data.md, Redis Sentinel.",
      ),
      alert(
        "RedisFailover",
        // A member that is the master now was not 10 minutes ago, while another one was.
        `max by (namespace, pod) (${master}) unless max by (namespace, pod) (${master} offset 10m) and on (namespace) (count by (namespace) (${master} offset 10m) > 0)`,
        "0m",
        "warning",
        "Redis failed over to another member",
        "{{ $labels.pod }} became the Redis master within the last 10 minutes.",
        "Find why the old master went away (pod events, node), and check that it rejoined as a replica (redis_master_link_up).",
      ),
      alert(
        "RedisReplicationBroken",
        // A replica that lost its master, or a master with fewer replicas than the set has.
        `redis_master_link_up{${app}} == 0 or on() (max(redis_connected_slaves{${app}} and on (pod) ${master}) < ${cfg.redis.replicas - 1})`,
        "2m",
        "warning",
        "Redis replication is broken",
        "A replica cannot reach the master, or the master has fewer than " + (cfg.redis.replicas - 1) + " replicas connected.",
        "kubectl logs the replica's redis container (auth, resync loops, output buffer limits); a failover needs an in-sync replica.",
      ),
    );
  }
  if (cfg.mongo.enabled && cfg.mongo.exporter.enabled) {
    const state = `mongodb_mongod_replset_my_state{${app}}`;
    stores.push(
      alert(
        "MongoNoPrimary",
        // my_state 1 is PRIMARY; every member's exporter reports its own state.
        `count(${state}) > 0 unless on() count(${state} == 1) > 0`,
        "1m",
        "critical",
        "The MongoDB replica set has no primary",
        "No member has been PRIMARY for a minute: writes fail.",
        "kubectl exec mongo-0 -c mongo -- mongosh -u root -p ... --eval 'rs.status()': members down, no majority, or a member stuck in STARTUP2? docs/data.md, MongoDB replica set.",
      ),
    );
    if (cfg.mongo.replicas > 1) {
      stores.push(
        alert(
          "MongoReplicationLag",
          `max by (name) (mongodb_mongod_replset_member_replication_lag{${app}}) > ${t.mongoReplicationLagSeconds}`,
          "5m",
          "warning",
          `A MongoDB secondary is more than ${t.mongoReplicationLagSeconds}s behind`,
          "{{ $labels.name }} is {{ $value }}s behind the primary; a failover to it would lose those writes unless they were majority-acknowledged.",
          "Check the secondary's disk and CPU, and the primary's write load; a member in initial sync catches up on its own.",
        ),
      );
    }
  }
  const backups = backupCronJobs(cfg);
  if (backups.length) {
    const jobs = `namespace=~"${namespaces.join("|")}",cronjob=~"${backups.join("|")}"`;
    const age = t.backupMaxAgeHours * 3600;
    stores.push(
      alert(
        "BackupTooOld",
        // A failed Job (dump or upload) never sets lastSuccessfulTime; a CronJob that has never
        // succeeded has no such series at all, so its age counts from its creation.
        `time() - kube_cronjob_status_last_successful_time{${jobs}} > ${age} or (time() - kube_cronjob_created{${jobs}} > ${age} unless on (namespace, cronjob) kube_cronjob_status_last_successful_time{${jobs}})`,
        "0m",
        "critical",
        `No successful backup for ${t.backupMaxAgeHours} hours`,
        "CronJob {{ $labels.namespace }}/{{ $labels.cronjob }} has not completed a backup (dump and off-cluster copy) for {{ $value | humanizeDuration }}.",
        "kubectl get jobs -l app.kubernetes.io/name=<cronjob> and the failed Job's logs: the backup container (credentials, volume full) or upload (object store unreachable, credentials, bucket policy).",
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

/** Names of the backup CronJobs the config creates, in every namespace. */
export function backupCronJobs(cfg: PlatformConfig): string[] {
  const stores = (["postgres", "redis", "mongo"] as const).filter((store) => cfg[store].enabled && cfg[store].backup.enabled).map((store) => `${store}-backup`);
  return [...stores, ...(cfg.mail.enabled && cfg.mail.backup.enabled ? ["mailbox-backup"] : [])];
}
