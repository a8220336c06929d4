// Jaeger, the edge (Ingress) and monitoring (Prometheus Operator objects). Numbers from seeds
// 001 (Jaeger, /jaeger routing), 002 (ingress TLS, rate limits, CORS, headers, alerts) and 004.
import { z } from "zod";
import type { Environment } from "./common";
import { dnsLabel, hostname, image, perEnv, port, res, resources, storage } from "./common";

const duration = z.string().regex(/^\d+h$/, "must be a whole number of hours such as 72h");
const ratio = z.number().min(0).max(1);

export const JAEGER_STORAGE_TYPES = ["memory", "badger", "elasticsearch", "opensearch"] as const;

export const jaegerSchema = z
  .strictObject({
    enabled: z.boolean(),
    image: image,
    resources: resources,
    storage: z.strictObject({
      /** memory: lost on restart (dev). badger: embedded, on a retained volume. elasticsearch/opensearch: external. */
      type: z.enum(JAEGER_STORAGE_TYPES),
      /** memory only: traces kept before the oldest are dropped. */
      maxTraces: z.number().int().min(1000),
      /** badger only: the volume holding keys and values. */
      volume: storage,
      /** elasticsearch/opensearch only: where the cluster is and how Jaeger may reach it. */
      external: z
        .strictObject({
          serverUrls: z.array(z.url({ protocol: /^https?$/ })).min(1),
          indexPrefix: dnsLabel,
          /** The namespace the cluster runs in; omitted means outside the cluster (internet egress on `port`). */
          namespace: dnsLabel.optional(),
          port: port,
          /** Basic auth user, with the secret config key holding its password (`pulumi config set --secret <key>`). */
          username: z.string().min(1).optional(),
          passwordSecret: z.string().regex(/^[a-z][A-Za-z0-9]*$/, "must be a camelCase config key").optional(),
        })
        .superRefine((x, ctx) => {
          if ((x.username === undefined) !== (x.passwordSecret === undefined)) {
            ctx.addIssue({ code: "custom", path: [x.username === undefined ? "username" : "passwordSecret"], message: "must be set together with " + (x.username === undefined ? "passwordSecret" : "username") });
          }
        })
        .optional(),
    }),
    /** How long spans are kept: Badger's TTL, or the index cleaner's cut-off for Elasticsearch/OpenSearch. */
    retention: duration,
    /** Daily CronJob deleting span indices older than `retention` (external storage only; Jaeger never deletes them). */
    indexCleaner: z.strictObject({
      image: image,
      schedule: z.string().regex(/^(\S+\s+){4}\S+$/, "must be a cron schedule such as 55 23 * * *"),
      resources: resources,
    }),
    /** Head sampling ratio the services use (OTEL_TRACES_SAMPLER_ARG, parent-based). */
    samplingRatio: ratio,
  })
  .superRefine((j, ctx) => {
    const external = j.storage.type === "elasticsearch" || j.storage.type === "opensearch";
    if (external && !j.storage.external) {
      ctx.addIssue({ code: "custom", path: ["storage", "external"], message: `is required when storage.type is ${j.storage.type}` });
    }
    if (!external && j.storage.external) {
      ctx.addIssue({ code: "custom", path: ["storage", "external"], message: `is only used with elasticsearch or opensearch storage (storage.type is ${j.storage.type})` });
    }
  });
export type JaegerConfig = z.infer<typeof jaegerSchema>;

const origin = z.string().regex(/^https?:\/\/[a-z0-9.-]+(:\d+)?$/, "must be an origin such as https://app.example.com (scheme and host, no path)");
const bodySize = z.string().regex(/^\d+[km]$/, "must be an nginx size such as 10m or 512k");

export const edgeSchema = z
  .strictObject({
    enabled: z.boolean(),
    /** IngressClass name (ingressClassName). */
    className: dnsLabel,
    /** Public host names; the first is the one the stack outputs use. */
    hosts: z.array(hostname).min(1, "must list at least one host"),
    tls: z.strictObject({
      /** cert-manager issuer; null means plain HTTP (dev only). */
      issuer: dnsLabel.nullable(),
      issuerKind: z.enum(["ClusterIssuer", "Issuer"]),
    }),
    /** Seed 002: 100 requests per minute and 1000 per hour per client IP. */
    rateLimit: z.strictObject({
      perMinute: z.number().int().min(1),
      /** Needs the controller's global rate limiting (memcached), see docs/observability.md. */
      perHour: z.number().int().min(1).optional(),
      burstMultiplier: z.number().int().min(1).max(20),
    }),
    /** Browser origins allowed by CORS; empty disables CORS. */
    corsOrigins: z.array(origin),
    contentSecurityPolicy: z.string().min(1),
    hstsMaxAgeSeconds: z.number().int().min(0),
    maxBodySize: bodySize,
    /** Basic auth user for the non-public UIs (Jaeger, Flower); the password is generated. */
    opsUser: dnsLabel,
    /**
     * Keepalive connections from the controller to the pods (seed 004: 100 connections, 60 s).
     * ingress-nginx reads these from its own ConfigMap only (no annotation): they are published in
     * the stack output `ingressControllerSettings` for whoever runs the controller.
     */
    upstreamKeepalive: z
      .strictObject({
        connections: z.number().int().min(1).max(100000),
        timeoutSeconds: z.number().int().min(1).max(3600),
        requests: z.number().int().min(1).optional(),
      })
      .optional(),
  })
  .superRefine((e, ctx) => {
    if (e.rateLimit.perHour !== undefined && e.rateLimit.perHour < e.rateLimit.perMinute) {
      ctx.addIssue({ code: "custom", path: ["rateLimit", "perHour"], message: `must be >= rateLimit.perMinute (${e.rateLimit.perMinute})` });
    }
  });
export type EdgeConfig = z.infer<typeof edgeSchema>;

/** Slack of a mail probe on top of postscreen's greeting delay: connect, TLS handshake, EHLO round trips. */
export const MAIL_PROBE_SLACK_SECONDS = 5;

/**
 * How long one mail probe may take (components/monitoring/blackbox.ts). A client postscreen has
 * not seen yet (a new blackbox pod, a restarted Postfix) gets smtpd's "220 " only after
 * greetWaitSeconds; a probe that gave up sooner would fail every time, since postscreen caches
 * only a client that waited.
 */
export function mailProbeTimeoutSeconds(postscreen: { enabled: boolean; greetWaitSeconds: number }): number {
  return (postscreen.enabled ? postscreen.greetWaitSeconds : 0) + MAIL_PROBE_SLACK_SECONDS;
}

/** The Probes' scrape timeout: the exporter subtracts 0.5 s (--timeout-offset) from what Prometheus grants. */
export function mailProbeScrapeTimeoutSeconds(postscreen: { enabled: boolean; greetWaitSeconds: number }): number {
  return mailProbeTimeoutSeconds(postscreen) + 1;
}

export const monitoringSchema = z.strictObject({
  /** The Prometheus Operator CRDs exist in the cluster (ServiceMonitor, PrometheusRule). */
  enabled: z.boolean(),
  /** Labels the Prometheus selects rules and monitors by (kube-prometheus-stack: release=<name>). */
  selectorLabels: z.record(z.string(), z.string()),
  scrapeInterval: z.string().regex(/^\d+s$/, "must be seconds such as 30s"),
  /**
   * Prometheus's blackbox exporter in the mail namespace (only with mail.enabled): it speaks SMTP,
   * IMAP and POP3 to every mail port of every replica, so an alert names the port that is down.
   */
  blackbox: z.strictObject({ image: image, resources: resources }),
  thresholds: z.strictObject({
    errorRatio: ratio,
    p95LatencySeconds: z.number().positive(),
    restartsPer15m: z.number().int().min(1),
    redisMemoryRatio: ratio,
    postgresConnectionsRatio: ratio,
    celeryQueueLength: z.number().int().min(1),
    /** Messages in one Postfix replica's deferred queue (postfix_exporter's showq) above which a growing queue alerts. */
    mailDeferredQueue: z.number().int().min(1),
    /** Share of SMTP connections refused at RCPT, and of delivery attempts bounced, that alerts. */
    mailRejectRatio: ratio,
    mailBounceRatio: ratio,
    /** Failed Dovecot logins per minute (all addresses) that alert: someone is guessing passwords. */
    mailAuthFailuresPerMinute: z.number().int().min(1),
    certificateExpiryDays: z.number().int().min(1),
    backupMaxAgeHours: z.number().int().min(1),
    /** A secondary this far behind the primary alerts (a failover to it would lose that much). */
    mongoReplicationLagSeconds: z.number().int().min(1),
    /** Bytes a streaming replica may stay behind the primary's WAL (replayed) before it alerts. */
    postgresReplicationLagBytes: z.number().int().min(1),
    /** Share of a container's CFS periods throttled (it hit its CPU limit) that alerts. */
    cpuThrottlingRatio: ratio,
    /** Working set over memory limit that alerts (seed 003: 0.9): the OOM killer is next. */
    memoryLimitRatio: ratio,
    /** An HPA at its maximum this long is a capacity problem, not a spike (seed 004: 2 h). */
    hpaMaxedOutHours: z.number().int().min(1),
  }),
});
export type MonitoringConfig = z.infer<typeof monitoringSchema>;

export function jaegerDefaults(env: Environment): z.input<typeof jaegerSchema> {
  return {
    enabled: true,
    // The rendered config (storage.traces, healthcheckv2, telemetry readers) is the current v2 format;
    // 2.14.1 is also what the OpenTelemetry demo chart pins.
    image: "jaegertracing/jaeger:2.14.1",
    resources: res("100m", "256Mi", "500m", "512Mi"),
    storage: {
      type: perEnv(env, { dev: "memory", staging: "badger", prod: "badger" }),
      maxTraces: 50000,
      volume: { size: perEnv(env, { dev: "1Gi", staging: "5Gi", prod: "20Gi" }) },
    },
    retention: perEnv(env, { dev: "24h", staging: "72h", prod: "168h" }),
    indexCleaner: { image: "jaegertracing/jaeger-es-index-cleaner:1.72.0", schedule: "55 23 * * *", resources: res("50m", "64Mi", "200m", "128Mi") },
    samplingRatio: perEnv(env, { dev: 1.0, staging: 0.5, prod: 0.1 }),
  };
}

export function edgeDefaults(env: Environment): z.input<typeof edgeSchema> {
  const host = perEnv(env, { dev: "email.localtest.me", staging: "staging.email.example.com", prod: "email.example.com" });
  return {
    enabled: true,
    className: "nginx",
    hosts: [host],
    tls: { issuer: perEnv(env, { dev: null, staging: "letsencrypt-staging", prod: "letsencrypt-prod" }), issuerKind: "ClusterIssuer" },
    rateLimit: { perMinute: 100, perHour: perEnv(env, { dev: undefined, staging: 1000, prod: 1000 }), burstMultiplier: 5 },
    corsOrigins: [perEnv(env, { dev: "http://localhost:3000", staging: `https://${host}`, prod: `https://${host}` })],
    contentSecurityPolicy: "default-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'self'",
    hstsMaxAgeSeconds: 31536000,
    maxBodySize: "25m",
    opsUser: "ops",
  };
}

export function monitoringDefaults(env: Environment): z.input<typeof monitoringSchema> {
  return {
    enabled: env !== "dev",
    selectorLabels: { release: "kube-prometheus-stack" },
    scrapeInterval: "30s",
    // 0.25 (Debian's 0.23 stands in for it in the daemon tier; the TCP prober is the same code).
    blackbox: { image: "quay.io/prometheus/blackbox-exporter:v0.25.0", resources: res("10m", "32Mi", "100m", "64Mi") },
    thresholds: {
      errorRatio: 0.05,
      p95LatencySeconds: 1,
      restartsPer15m: 3,
      redisMemoryRatio: 0.9,
      postgresConnectionsRatio: 0.8,
      celeryQueueLength: 1000,
      mailDeferredQueue: 100,
      mailRejectRatio: 0.5,
      mailBounceRatio: 0.1,
      mailAuthFailuresPerMinute: 30,
      certificateExpiryDays: 14,
      backupMaxAgeHours: 26,
      mongoReplicationLagSeconds: 30,
      // Four WAL segments: a replica that far behind is not catching up.
      postgresReplicationLagBytes: 64 * 1024 * 1024,
      cpuThrottlingRatio: 0.25,
      memoryLimitRatio: 0.9,
      hpaMaxedOutHours: 2,
    },
  };
}
