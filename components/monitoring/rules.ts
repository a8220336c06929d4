// The alerts of seeds 002, 003 and 004, as a pure function of config. Every expression uses
// metrics the deployed exporters really expose: ingress-nginx, kube-state-metrics, the kubelet's
// cAdvisor, postgres_exporter, redis_exporter, mongodb_exporter, postfix_exporter, Dovecot's stats
// endpoint and cert-manager (see docs/observability.md).
import { celeryQueues } from "../../config/workers";
import type { PlatformConfig } from "../../config/schema";
import { publicIngressPattern, tlsSecretName } from "../edge";

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
  if ((["postgres", "redis", "mongo", "mail"] as const).some((tier) => cfg[tier].enabled)) {
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
  if ((["postgres", "redis", "mongo"] as const).some((store) => cfg[store].enabled && cfg[store].backup.enabled)) {
    stores.push(
      alert(
        "BackupTooOld",
        `time() - kube_cronjob_status_last_successful_time{${app},cronjob=~".*backup.*"} > ${t.backupMaxAgeHours * 3600}`,
        "0m",
        "critical",
        `No successful backup for ${t.backupMaxAgeHours} hours`,
        "CronJob {{ $labels.cronjob }} last succeeded {{ $value | humanizeDuration }} ago.",
        "kubectl get jobs -l the backup CronJob; read the failed Job's logs (credentials, volume full, target unreachable).",
      ),
    );
  }
  if (stores.length) groups.push({ name: "stores", rules: stores });

  if (cfg.mail.enabled) groups.push({ name: "mail", rules: mailAlerts(cfg) });
  return groups;
}

/**
 * Mail: the daemons' availability (kube-state-metrics: the Services' ready endpoints, whose
 * readiness probes speak SMTP and IMAP, and the rspamd container), the queue and delivery
 * outcomes (postfix_exporter: showq and the log), password guessing (Dovecot's own metrics) and
 * the certificate (cert-manager, when it issues it).
 */
function mailAlerts(cfg: PlatformConfig): Alert[] {
  const t = cfg.monitoring.thresholds;
  const mailNs = `namespace="${cfg.platform.mailNamespace}"`;
  const rules = [
    alert(
      "MailSMTPDown",
      `sum(kube_endpoint_address{${mailNs},endpoint="postfix",ready="true"}) == 0 or absent(kube_endpoint_address{${mailNs},endpoint="postfix",ready="true"})`,
      "5m",
      "critical",
      "No Postfix pod is ready: SMTP 25, smtps 465 and submission 587 are down",
      "The postfix Service has no ready endpoint; its readiness probe expects the SMTP greeting.",
      "kubectl -n <mail ns> describe pod -l app.kubernetes.io/name=postfix; logs of the postfix and rspamd containers (milter down defers all mail).",
    ),
    alert(
      "MailIMAPDown",
      `sum(kube_endpoint_address{${mailNs},endpoint="dovecot",ready="true"}) == 0 or absent(kube_endpoint_address{${mailNs},endpoint="dovecot",ready="true"})`,
      "5m",
      "critical",
      "No Dovecot pod is ready: IMAP/POP3, LMTP delivery and submission logins are down",
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
