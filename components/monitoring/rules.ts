// The alerts of seeds 002, 003 and 004, as a pure function of config. Every expression uses
// metrics the deployed exporters really expose: ingress-nginx, kube-state-metrics, the kubelet's
// cAdvisor, postgres_exporter (and Patroni's and pgBackRest's own), redis_exporter,
// mongodb_exporter, postfix_exporter, Dovecot's stats endpoint, the blackbox exporter's mail probes
// and cert-manager (see docs/observability.md).
import { cronMaxGapSeconds } from "../../config/cron";
import { STORES } from "../../config/data";
import { celeryQueues } from "../../config/workers";
import type { PlatformConfig } from "../../config/schema";
import { publicIngressPattern, tlsSecretName } from "../edge";
import { MAIL_PROBES } from "./blackbox";
import type { MailProtocol } from "./blackbox";

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
    const ing = `ingress=~"${publicIngressPattern(cfg)}"`;
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

  const workloads: RuleGroup = {
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
        "HPAMaxedOutSustained",
        `kube_horizontalpodautoscaler_status_current_replicas{${ns}} >= kube_horizontalpodautoscaler_spec_max_replicas{${ns}}`,
        `${t.hpaMaxedOutHours}h`,
        "critical",
        `An autoscaler has been at its maximum for ${t.hpaMaxedOutHours} hours`,
        "HPA {{ $labels.horizontalpodautoscaler }} has run at maxReplicas for hours: this is the normal load now, and requests beyond it queue or fail.",
        "Capacity, not a spike: raise hpa.maxReplicas (platform.quota.max may need to follow) or make each pod cheaper; check HighLatencyP95 and the pods' CPU throttling first.",
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
        "ContainerCPUThrottled",
        `sum by (namespace, pod, container) (increase(container_cpu_cfs_throttled_periods_total{${ns},container!=""}[5m])) / sum by (namespace, pod, container) (increase(container_cpu_cfs_periods_total{${ns},container!=""}[5m])) > ${t.cpuThrottlingRatio}`,
        "15m",
        "warning",
        `A container is CPU-throttled in more than ${t.cpuThrottlingRatio * 100}% of its periods`,
        "{{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) hits its CPU limit in {{ $value | humanizePercentage }} of scheduling periods: requests slow down although the node may be idle.",
        "Compare its usage with resources.limits.cpu (kubectl top pod --containers): raise the limit, or let the HPA add pods earlier (a lower hpa.cpuUtilization).",
      ),
      alert(
        "ContainerMemoryNearLimit",
        `max by (namespace, pod, container) (container_memory_working_set_bytes{${ns},container!=""}) / max by (namespace, pod, container) (kube_pod_container_resource_limits{${ns},resource="memory"}) > ${t.memoryLimitRatio}`,
        "5m",
        "warning",
        `A container uses more than ${t.memoryLimitRatio * 100}% of its memory limit`,
        "{{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) is at {{ $value | humanizePercentage }} of its memory limit; the OOM killer acts at 100%.",
        "Look for growth over days (a leak: workers' maxTasksPerChild recycles them) versus a steady level (raise resources.limits.memory); PodRestarting with OOMKilled confirms it.",
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
  };
  groups.push(workloads);

  // Seeds 003 and 004: a StatefulSet (a store, Postfix, Dovecot) short of ready replicas, and an
  // app Service nothing answers behind (the mail Services have their own alerts, MailSMTPDown ...).
  if ([...STORES, "mail" as const].some((tier) => cfg[tier].enabled)) {
    workloads.rules.push(
      alert(
        "StatefulSetReplicasNotReady",
        `kube_statefulset_status_replicas_ready{${ns}} < kube_statefulset_replicas{${ns}}`,
        "10m",
        "critical",
        "A StatefulSet has had fewer ready replicas than desired for 10 minutes",
        "StatefulSet {{ $labels.namespace }}/{{ $labels.statefulset }}: {{ $value }} ready; a store or mail replica is down.",
        "kubectl describe pod <statefulset>-N: Pending (volume not bound, quota), CrashLoopBackOff (logs --previous: disk full, bad config) or failing readiness; the store's own alert (MongoDBDown, MailSMTPDown) tells which side.",
      ),
    );
  }
  workloads.rules.push(
    alert(
      "ServiceNoEndpoints",
      `kube_endpoint_info{${app}} unless on (namespace, endpoint) kube_endpoint_address{${app},ready="true"}`,
      "5m",
      "critical",
      "A Service has had no ready endpoint for 5 minutes",
      "Service {{ $labels.namespace }}/{{ $labels.endpoint }} routes to no ready pod: every request to it fails.",
      "kubectl get pods -l app.kubernetes.io/name=<service>: none running (quota, image pull) or none ready (readiness probe, a dependency down); then the selector against the pod labels.",
    ),
  );

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
    stores.push(
      alert(
        "MongoDBDown",
        `mongodb_up{${app}} == 0`,
        "5m",
        "critical",
        "MongoDB does not answer its exporter",
        "The mongodb_exporter next to {{ $labels.pod }} cannot reach or authenticate to MongoDB.",
        "kubectl logs {{ $labels.pod }} -c mongo (startup, disk full, WiredTiger errors), then -c exporter (credentials after a rotation: docs/data.md).",
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
  stores.push(...postgresHaAlerts(cfg, app));
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

  if (cfg.mail.enabled) groups.push({ name: "mail", rules: mailAlerts(cfg) });
  return groups;
}

/**
 * Mail: every port of every replica (the blackbox exporter's probes speak SMTP, IMAP and POP3),
 * the Services' ready endpoints and the rspamd container (kube-state-metrics), the queue and
 * delivery outcomes (postfix_exporter: showq and the log), password guessing (Dovecot's own
 * metrics) and the certificate (cert-manager, when it issues it).
 */
function mailAlerts(cfg: PlatformConfig): Alert[] {
  const t = cfg.monitoring.thresholds;
  const mailNs = `namespace="${cfg.platform.mailNamespace}"`;
  const portDown = (name: string, what: string, ps: MailProtocol[], severity: Alert["labels"]["severity"], runbook: string) =>
    alert(
      name,
      `probe_success{${mailNs},protocol=~"${ps.join("|")}"} == 0`,
      "5m",
      severity,
      `${what} port {{ $labels.port }} ({{ $labels.protocol }}) does not answer on {{ $labels.pod }}`,
      `The blackbox probe of {{ $labels.instance }} has failed for 5 minutes: no connection, no greeting, no STARTTLS or TLS handshake, or (submission) no AUTH offered.`,
      runbook,
    );
  const smtp = MAIL_PROBES.filter((p) => p.daemon === "postfix").map((p) => p.protocol);
  const imap: MailProtocol[] = ["imap", "imaps"];
  const pop3: MailProtocol[] = ["pop3", "pop3s"];
  const rules = [
    portDown(
      "MailSMTPDown",
      "SMTP",
      smtp,
      "critical",
      "kubectl -n <mail ns> exec {{ $labels.pod }} -c postfix -- postconf -M (is the port's service in master.cf?) and the postfix container's log; port 25 answers through postscreen; 465/587 without AUTH mean smtpd cannot reach Dovecot's auth service (check MailIMAPDown and dovecot-0).",
    ),
    portDown(
      "MailIMAPDown",
      "IMAP",
      imap,
      "critical",
      "kubectl -n <mail ns> logs {{ $labels.pod }}: imap-login errors, the mail-tls Secret (TLS handshake), the mailbox volume; doveadm service status in the pod.",
    ),
    portDown("MailPOP3Down", "POP3", pop3, "warning", "kubectl -n <mail ns> logs {{ $labels.pod }}: pop3-login errors and the mail-tls Secret; doveadm service status in the pod."),
    alert(
      "MailNoReadyPostfix",
      `sum(kube_endpoint_address{${mailNs},endpoint="postfix",ready="true"}) == 0 or absent(kube_endpoint_address{${mailNs},endpoint="postfix",ready="true"})`,
      "5m",
      "critical",
      "No Postfix pod is ready: the postfix Service (the app's submission on 587) routes nowhere",
      "The postfix Service has no ready endpoint; its readiness probe expects the SMTP greeting on port 25.",
      "kubectl -n <mail ns> describe pod -l app.kubernetes.io/name=postfix; logs of the postfix and rspamd containers (milter down defers all mail).",
    ),
    alert(
      "MailNoReadyDovecot",
      `sum(kube_endpoint_address{${mailNs},endpoint="dovecot",ready="true"}) == 0 or absent(kube_endpoint_address{${mailNs},endpoint="dovecot",ready="true"})`,
      "5m",
      "critical",
      "No Dovecot pod is ready: LMTP delivery, submission logins and the dovecot Service are down",
      "The dovecot Service has no ready endpoint; its readiness probe expects the IMAP greeting.",
      "kubectl -n <mail ns> logs dovecot-0; check the mailbox volume (full?) and the mail-tls Secret.",
    ),
    alert(
      "RspamdDown",
      `max by (pod) (kube_pod_container_status_ready{${mailNs},container="rspamd"}) == 0`,
      "5m",
      "critical",
      "Rspamd is not ready in a Postfix pod: that replica defers all mail",
      "{{ $labels.pod }}: the rspamd container fails its readiness check; milter_default_action = tempfail keeps mail queued.",
      "kubectl logs {{ $labels.pod }} -c rspamd and -c redis; rspamadm configtest in the container.",
    ),
    alert(
      "MailDeferredQueueGrowing",
      `postfix_showq_message_age_seconds_count{${mailNs},queue="deferred"} > ${t.mailDeferredQueue} and deriv(postfix_showq_message_age_seconds_count{${mailNs},queue="deferred"}[30m]) > 0`,
      "15m",
      "warning",
      `More than ${t.mailDeferredQueue} deferred messages in a Postfix queue, and growing`,
      "{{ $labels.pod }} holds {{ $value }} deferred messages.",
      "postqueue -p in the pod: deferred mail usually means the relay or the recipients' MX refuse us (egress on 25/587, DNS, reputation, relay credentials).",
    ),
    alert(
      "MailRejectRateHigh",
      `sum(rate(postfix_smtpd_messages_rejected_total{${mailNs}}[15m])) / sum(rate(postfix_smtpd_connects_total{${mailNs}}[15m])) > ${t.mailRejectRatio}`,
      "30m",
      "warning",
      `More than ${t.mailRejectRatio * 100}% of SMTP connections end in a rejection`,
      "{{ $value | humanizePercentage }} of connections were refused at RCPT over 15 minutes.",
      "An attack, a broken sender, or a wrong recipient list (mail.users): read the NOQUEUE lines in the postfix log.",
    ),
    alert(
      "MailBounceRateHigh",
      `sum(rate(postfix_smtp_messages_processed_total{${mailNs},status="bounced"}[30m])) / sum(rate(postfix_smtp_messages_processed_total{${mailNs}}[30m])) > ${t.mailBounceRatio}`,
      "30m",
      "warning",
      `More than ${t.mailBounceRatio * 100}% of outbound delivery attempts bounce`,
      "{{ $value | humanizePercentage }} of outbound messages bounced over 30 minutes.",
      "Check the DSN codes in the postfix log: a listed IP, missing SPF/DKIM (mailDnsZone published?), or the app sending to stale addresses.",
    ),
    alert(
      "MailAuthFailuresHigh",
      `sum(rate(dovecot_auth_failures_total{${mailNs}}[5m])) * 60 > ${t.mailAuthFailuresPerMinute}`,
      "10m",
      "warning",
      `More than ${t.mailAuthFailuresPerMinute} failed mail logins a minute`,
      "{{ $value }} failed logins a minute: someone is guessing passwords (Dovecot slows each address down).",
      "Find the addresses in the dovecot log (auth failed ... rip=); block them with mail.postscreen.deny or at the load balancer.",
    ),
  ];
  if (cfg.mail.tls.issuer) {
    rules.push(
      alert(
        "MailCertificateExpiringSoon",
        `(certmanager_certificate_expiration_timestamp_seconds{${mailNs},name="mail-tls"} - time()) < ${t.certificateExpiryDays * 86400}`,
        "1h",
        "warning",
        `The mail TLS certificate expires in less than ${t.certificateExpiryDays} days`,
        "Certificate mail-tls expires in {{ $value | humanizeDuration }}; cert-manager should have renewed it.",
        "kubectl -n <mail ns> describe certificate mail-tls; the issuer needs a DNS-01 solver (the mail host serves no HTTP).",
      ),
    );
  }
  return rules;
}

/** Names of the backup CronJobs the config creates, in every namespace. */
export function backupCronJobs(cfg: PlatformConfig): string[] {
  const stores = STORES.filter((store) => cfg[store].enabled && cfg[store].backup.enabled).map((store) => `${store}-backup`);
  return [...stores, ...(cfg.mail.enabled && cfg.mail.backup.enabled ? ["mailbox-backup"] : [])];
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
