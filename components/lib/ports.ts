// Well-known ports, in one place: container ports, Service ports and the dependency graph's
// edges all read them from here.
export const PORTS = {
  api: { http: 5000, metrics: 9090, health: 8080 },
  flower: { http: 5555 },
  // patroni: Patroni's REST API (health, leader checks, switchover); pgbackrest: pgBackRest's TLS server.
  postgres: { sql: 5432, metrics: 9187, patroni: 8008, pgbackrest: 8432 },
  redis: { redis: 6379, sentinel: 26379, metrics: 9121 },
  mongo: { mongo: 27017, metrics: 9216 },
  // Chroma's HTTP API (clients, probes, backups); it has no metrics port.
  chroma: { http: 8000 },
  postfix: { smtp: 25, smtps: 465, submission: 587, metrics: 9154 },
  dovecot: { imap: 143, imaps: 993, pop3: 110, pop3s: 995, lmtp: 24, auth: 12345, metrics: 9166 },
  jaeger: { otlpGrpc: 4317, otlpHttp: 4318, ui: 16686, health: 13133, metrics: 8888 },
  blackbox: { metrics: 9115 },
  dns: 53,
} as const;

/** In-cluster DNS name of a Service the platform creates (Service name = workload name). */
export function serviceHost(service: string, namespace: string): string {
  return `${service}.${namespace}.svc.cluster.local`;
}

/** The container port of a store's exporter, where the store has one (Chroma has none). */
export function storeMetricsPort(store: "postgres" | "redis" | "mongo" | "chroma"): number | undefined {
  const ports = PORTS[store];
  return "metrics" in ports ? ports.metrics : undefined;
}

/** Ports a Redis client needs: the server, and the Sentinels it asks for the master when they run. */
export function redisClientPorts(redis: { sentinel: { enabled: boolean } }): number[] {
  return redis.sentinel.enabled ? [PORTS.redis.redis, PORTS.redis.sentinel] : [PORTS.redis.redis];
}

/** Stable DNS name of a StatefulSet member (`<set>-<i>.<set>-headless.<ns>.svc.cluster.local`). */
export function memberHost(set: string, ordinal: number, namespace: string): string {
  return `${set}-${ordinal}.${set}-headless.${namespace}.svc.cluster.local`;
}
