// Well-known ports, in one place: container ports, Service ports and the dependency graph's
// edges all read them from here.
export const PORTS = {
  api: { http: 5000, metrics: 9090, health: 8080 },
  flower: { http: 5555 },
  postgres: { sql: 5432, metrics: 9187 },
  redis: { redis: 6379, metrics: 9121 },
  mongo: { mongo: 27017, metrics: 9216 },
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
