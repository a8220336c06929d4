// What will run, derived from config alone: every pod group with its namespace, service account,
// worst-case pod count and per-pod resources. The platform sizes quotas and creates service
// accounts from this list; tests check it against the objects the tiers really register.
import { backupContainers } from "./backups";
import { CREDENTIAL_SYNC_RESOURCES, REPLSET_SIDECAR_RESOURCES, STORES, enabledExporter } from "./data";
import type { PostgresConfig } from "./postgres";
import type { PlatformConfig } from "./schema";
import type { Resources } from "./common";
import { maxReplicas } from "./common";
import { bytes, cpuMillis } from "./quantity";
import { poolReplicas } from "./workers";
import { smokeContainerCount } from "./verify";
import { PORTS, storeMetricsPort } from "../components/lib/ports";

export type NamespaceRole = "app" | "mail";

export interface PodGroup {
  name: string;
  /** The config key that sizes it (services.chat, workers.pools.default): named when the quota ceiling is exceeded. */
  configPath: string;
  namespace: NamespaceRole;
  serviceAccount: string;
  /** Most pods that can exist at once in steady state (HPA max or fixed replicas). */
  maxPods: number;
  /** Extra pods a rollout may add on top (maxSurge); 0 for Recreate and StatefulSets. */
  surge: number;
  /** Resources of every container in one pod (sidecars included). */
  containers: Resources[];
  /** PersistentVolumeClaims per pod. */
  volumes: number;
  /** Container port serving Prometheus metrics (the monitoring edge's port); its Service exposes it as port `metrics`. */
  metricsPort?: number;
}

/** Namespace name of a role, from config. */
export function namespaceOf(cfg: PlatformConfig, role: NamespaceRole): string {
  return role === "app" ? cfg.platform.namespace : cfg.platform.mailNamespace;
}

/** The migration Job's workload name (graph node, pod label) of a service. */
export function migrationName(service: string): string {
  return `${service}-migrate`;
}

/** maxSurge used by every Deployment that rolls (25%, at least one pod). */
export function surgePods(replicas: number): number {
  return Math.max(1, Math.ceil(replicas * 0.25));
}

export function inventory(cfg: PlatformConfig): PodGroup[] {
  const groups: PodGroup[] = [];
  // App tier (components/services.ts, components/workers.ts): Deployments that roll with surge,
  // except the singletons (beat, Flower), which use Recreate.
  for (const [name, svc] of Object.entries(cfg.services)) {
    if (!svc.enabled) continue;
    const max = maxReplicas(svc.replicas, svc.hpa);
    const metricsPort = svc.kind === "http" ? (svc.ports.metrics ?? undefined) : undefined;
    const configPath = `services.${name}`;
    groups.push({ name, configPath, namespace: "app", serviceAccount: name, maxPods: max, surge: surgePods(max), containers: [svc.resources], volumes: 0, ...(metricsPort ? { metricsPort } : {}) });
    // The migration Job (components/migration.ts): one pod, as the service's account, before the rollout.
    const m = svc.kind === "http" ? svc.migration : undefined;
    if (m?.enabled) {
      groups.push({ name: migrationName(name), configPath: `${configPath}.migration`, namespace: "app", serviceAccount: name, maxPods: 1, surge: 0, containers: [m.resources ?? svc.resources], volumes: 0 });
    }
  }
  if (cfg.workers.enabled) {
    for (const [pool, p] of Object.entries(cfg.workers.pools)) {
      const max = maxReplicas(poolReplicas(p), p.hpa);
      groups.push({ name: `worker-${pool}`, configPath: `workers.pools.${pool}`, namespace: "app", serviceAccount: "worker", maxPods: max, surge: surgePods(max), containers: [p.resources], volumes: 0 });
    }
    if (cfg.workers.beat.enabled) {
      groups.push({ name: "beat", configPath: "workers.beat", namespace: "app", serviceAccount: "beat", maxPods: 1, surge: 0, containers: [cfg.workers.beat.resources], volumes: 0 });
    }
    if (cfg.workers.flower.enabled) {
      groups.push({ name: "flower", configPath: "workers.flower", namespace: "app", serviceAccount: "flower", maxPods: 1, surge: 0, containers: [cfg.workers.flower.resources], volumes: 0, metricsPort: PORTS.flower.http });
    }
  }
  for (const store of STORES) {
    const s = cfg[store];
    if (!s.enabled) continue;
    // The exporter is a sidecar in the store pod; backups are CronJob pods with their own PVC.
    const exporter = enabledExporter(s);
    const sidecars = {
      postgres: postgresSidecars(cfg.postgres),
      redis: cfg.redis.sentinel.enabled ? [cfg.redis.sentinel.resources] : [],
      mongo: [REPLSET_SIDECAR_RESOURCES],
      chroma: [],
    }[store];
    // A managed Postgres runs no pod; its dump job (if any) still does.
    const pods = !(store === "postgres" && cfg.postgres.mode === "external");
    if (pods) groups.push({
      name: store,
      configPath: store,
      namespace: "app",
      serviceAccount: store,
      maxPods: s.replicas,
      surge: 0,
      containers: [s.resources, ...sidecars, ...(exporter ? [exporter.resources] : [])],
      volumes: 1,
      ...(exporter ? { metricsPort: storeMetricsPort(store) } : {}),
    });
    if (s.backup.enabled) {
      // concurrencyPolicy Forbid: never more than one backup pod of a store.
      groups.push({ name: `${store}-backup`, configPath: `${store}.backup`, namespace: "app", serviceAccount: "backup", maxPods: 1, surge: 0, containers: backupContainers(cfg.backups, s.backup.resources), volumes: 1 });
    }
  }
  const pg = cfg.postgres;
  if (pg.enabled && pg.mode === "patroni" && pg.archive.enabled) {
    // pgBackRest base backups (concurrencyPolicy Forbid); the repository is the object store, no volume.
    groups.push({ name: "postgres-basebackup", configPath: "postgres.archive", namespace: "app", serviceAccount: "backup", maxPods: 1, surge: 0, containers: [pg.archive.resources], volumes: 0 });
  }
  if (pg.enabled && pg.import) {
    // The one-shot import Job reads the dump from the postgres-backup claim (counted there).
    groups.push({ name: "postgres-import", configPath: "postgres.import", namespace: "app", serviceAccount: "backup", maxPods: 1, surge: 0, containers: [pg.backup.resources], volumes: 0 });
  }
  if (cfg.mail.enabled) {
    // StatefulSets (no surge). Postfix pods carry Rspamd, its Redis, the exporter and optionally
    // clamd as sidecars; each owns a queue volume. Dovecot pods own one mailbox volume (RWO) or
    // share one claim (RWX, counted per pod) and serve their own metrics.
    const { postfix, dovecot, rspamd, clamav } = cfg.mail;
    const sidecars = [rspamd.resources, rspamd.redis.resources, postfix.exporter.resources, ...(clamav.enabled ? [clamav.resources] : [])];
    groups.push({ name: "postfix", configPath: "mail.postfix", namespace: "mail", serviceAccount: "postfix", maxPods: postfix.replicas, surge: 0, containers: [postfix.resources, ...sidecars], volumes: 1, metricsPort: PORTS.postfix.metrics });
    groups.push({ name: "dovecot", configPath: "mail.dovecot", namespace: "mail", serviceAccount: "dovecot", maxPods: dovecot.replicas, surge: 0, containers: [dovecot.resources], volumes: 1, metricsPort: PORTS.dovecot.metrics });
    if (cfg.mail.backup.enabled) {
      // It mounts the mailboxes' claim too, but owns only its backup claim.
      groups.push({ name: "mailbox-backup", configPath: "mail.backup", namespace: "mail", serviceAccount: "mailbox-backup", maxPods: 1, surge: 0, containers: backupContainers(cfg.backups, cfg.mail.backup.resources), volumes: 1 });
    }
    if (cfg.monitoring.enabled) {
      // Probes every mail port (components/monitoring/blackbox.ts); a Deployment that rolls with surge.
      groups.push({ name: "blackbox-exporter", configPath: "monitoring.blackbox", namespace: "mail", serviceAccount: "blackbox-exporter", maxPods: 1, surge: 1, containers: [cfg.monitoring.blackbox.resources], volumes: 0, metricsPort: PORTS.blackbox.metrics });
    }
  }
  if (cfg.jaeger.enabled) {
    // One pod, Recreate: Badger's files take an exclusive lock, so two pods never share the volume.
    const volumes = cfg.jaeger.storage.type === "badger" ? 1 : 0;
    groups.push({ name: "jaeger", configPath: "jaeger", namespace: "app", serviceAccount: "jaeger", maxPods: 1, surge: 0, containers: [cfg.jaeger.resources], volumes, metricsPort: PORTS.jaeger.metrics });
    if (cfg.jaeger.storage.external) {
      groups.push({ name: "jaeger-index-cleaner", configPath: "jaeger.indexCleaner", namespace: "app", serviceAccount: "jaeger", maxPods: 1, surge: 0, containers: [cfg.jaeger.indexCleaner.resources], volumes: 0 });
    }
  }
  if (cfg.verify.smoke.enabled) {
    // The smoke test Job (components/smoke.ts): one pod whose check containers run side by side.
    const containers = Array.from({ length: smokeContainerCount(cfg) }, () => cfg.verify.smoke.resources);
    groups.push({ name: "smoke", configPath: "verify.smoke", namespace: "app", serviceAccount: "smoke", maxPods: 1, surge: 0, containers, volumes: 0 });
  }
  return groups;
}

/** Sidecars of a Postgres pod, in container order: credential sync (single), or patroni-sync and the pgBackRest TLS server (Patroni). */
export function postgresSidecars(pg: PostgresConfig): Resources[] {
  if (pg.mode !== "patroni") return [CREDENTIAL_SYNC_RESOURCES];
  return [pg.patroni.syncResources, ...(pg.archive.enabled ? [pg.archive.serverResources] : [])];
}

export interface Totals {
  pods: number;
  pvcs: number;
  requestsCpu: number;
  requestsMemory: number;
  limitsCpu: number;
  limitsMemory: number;
}

/** Worst case for a namespace: every group at its maximum plus a rollout surge, in millicores and bytes. */
export function totals(groups: PodGroup[]): Totals {
  const t: Totals = { pods: 0, pvcs: 0, requestsCpu: 0, requestsMemory: 0, limitsCpu: 0, limitsMemory: 0 };
  for (const g of groups) {
    const pods = g.maxPods + g.surge;
    t.pods += pods;
    t.pvcs += g.maxPods * g.volumes;
    for (const c of g.containers) {
      t.requestsCpu += pods * cpuMillis(c.requests.cpu);
      t.requestsMemory += pods * bytes(c.requests.memory);
      t.limitsCpu += pods * cpuMillis(c.limits.cpu);
      t.limitsMemory += pods * bytes(c.limits.memory);
    }
  }
  return t;
}
