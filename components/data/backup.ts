// Scheduled logical backups: one CronJob per store writing timestamped dumps to its own retained
// PVC. A dump is written to a `.partial` file and renamed only when complete, and older dumps are
// pruned only after a successful run, so a failing job never eats into the good backups.
import * as crypto from "crypto";
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import type { StoreConfig, StoreName } from "../../config/data";
import type { PostgresConfig } from "../../config/postgres";
import type { PlatformConfig } from "../../config/schema";
import { labels } from "../lib/labels";
import { restrictedContainer, restrictedPod, scratchVolume } from "../lib/pod";
import { statefulOptions } from "./store";

export const BACKUP_DIR = "/backup";

export interface BackupArgs {
  cfg: PlatformConfig;
  name: StoreName;
  store: StoreConfig;
  namespace: pulumi.Input<string>;
  serviceAccount: pulumi.Input<string>;
  /** Connection settings and credentials (secretKeyRef) for the dump tool. */
  env: k8s.types.input.core.v1.EnvVar[];
  /** Shell command writing one complete dump to "$OUT". */
  dump: string;
  /** File extension of a dump, e.g. "dump", "archive.gz", "rdb". */
  extension: string;
}

export interface BackupObjects {
  cronJob: k8s.batch.v1.CronJob;
  volume: k8s.core.v1.PersistentVolumeClaim;
}

/** The job's script: dump to a partial file, rename, then keep the newest `retention` dumps. */
export function backupScript(prefix: string, extension: string, retention: number, dump: string): string {
  const glob = `${BACKUP_DIR}/${prefix}-*.${extension}`;
  return [
    "set -eu",
    `rm -f ${BACKUP_DIR}/*.partial`,
    `OUT="${BACKUP_DIR}/${prefix}-$(date -u +%Y%m%dT%H%M%SZ).${extension}.partial"`,
    dump,
    'mv "$OUT" "${OUT%.partial}"',
    // Timestamps sort lexically: everything after the newest N goes.
    `ls -1 ${glob} | sort -r | tail -n +${retention + 1} | while read -r old; do rm -f -- "$old"; done`,
    `echo "backup written: \${OUT%.partial}; kept: $(ls -1 ${glob} | wc -l)"`,
  ].join("\n");
}

export function createBackup(parent: pulumi.Resource, a: BackupArgs): BackupObjects {
  const { cfg, store } = a;
  const b = store.backup;
  const name = `${a.name}-backup`;
  const podLabels = labels(cfg, { name, component: "backup", image: store.image });
  const objLabels = labels(cfg, { name, component: "backup" });

  // Its own volume, so losing the data volume does not lose the backups (and vice versa).
  const volume = new k8s.core.v1.PersistentVolumeClaim(
    name,
    {
      metadata: { name, namespace: a.namespace, labels: objLabels },
      spec: {
        accessModes: ["ReadWriteOnce"],
        ...(b.storage.storageClass ? { storageClassName: b.storage.storageClass } : {}),
        resources: { requests: { storage: b.storage.size } },
      },
    },
    { parent, ...statefulOptions(cfg, "volume") },
  );

  const cronJob = new k8s.batch.v1.CronJob(
    name,
    {
      metadata: { name, namespace: a.namespace, labels: objLabels },
      spec: {
        schedule: b.schedule,
        timeZone: b.timeZone,
        // A slow dump must never overlap the next one (same volume, double load on the store).
        concurrencyPolicy: "Forbid",
        startingDeadlineSeconds: 3600,
        successfulJobsHistoryLimit: 3,
        failedJobsHistoryLimit: 3,
        jobTemplate: {
          metadata: { labels: objLabels },
          spec: {
            backoffLimit: 2,
            activeDeadlineSeconds: b.activeDeadlineSeconds,
            template: {
              metadata: { labels: podLabels },
              spec: {
                serviceAccountName: a.serviceAccount,
                automountServiceAccountToken: false,
                enableServiceLinks: false,
                restartPolicy: "Never",
                securityContext: restrictedPod({ uid: store.runAs.uid, gid: store.runAs.gid, fsGroup: store.runAs.gid }),
                containers: [
                  {
                    name: "backup",
                    // The store's own image: the dump tool matches the server version.
                    image: store.image,
                    command: ["sh", "-c", backupScript(a.name, a.extension, b.retention, a.dump)],
                    env: [{ name: "HOME", value: "/tmp" }, ...a.env],
                    resources: b.resources,
                    securityContext: restrictedContainer({ readOnlyRootFilesystem: true }),
                    volumeMounts: [
                      { name: "backup", mountPath: BACKUP_DIR },
                      { name: "tmp", mountPath: "/tmp" },
                    ],
                  },
                ],
                volumes: [{ name: "backup", persistentVolumeClaim: { claimName: volume.metadata.name } }, scratchVolume("tmp")],
              },
            },
          },
        },
      },
    },
    { parent },
  );
  return { cronJob, volume };
}

/**
 * The one-shot import (postgres.import): restores a dump the backup job wrote into the database of
 * a new cluster, as the application role, in one transaction, and only into an empty database.
 * This is how a single-pod stack moves to the replicated one without carrying the old data
 * directory over (the official alpine image's musl collations differ from glibc's: a physical copy
 * would leave text indexes in the wrong order). The script waits until the new leader accepts the
 * application role, so the Job can start with the StatefulSet.
 */
export function importScript(dump: string): string {
  return [
    "set -eu",
    dump === "latest" ? `FILE="$(ls -1 ${BACKUP_DIR}/postgres-*.dump 2>/dev/null | sort | tail -n 1)"` : `FILE="${BACKUP_DIR}/${dump}"`,
    `[ -n "$FILE" ] && [ -f "$FILE" ] || { echo "import: no dump ${dump} in ${BACKUP_DIR}" >&2; exit 1; }`,
    'until psql -XAtq -c "SELECT 1" > /dev/null 2>&1; do echo "import: waiting for the leader to accept $PGUSER"; sleep 5; done',
    `n="$(psql -XAtq -c "SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname NOT IN ('pg_catalog', 'information_schema') AND s.nspname NOT LIKE 'pg_toast%'")"`,
    '[ "$n" = 0 ] || { echo "import: database $PGDATABASE is not empty ($n relations); nothing imported" >&2; exit 1; }',
    'pg_restore --no-owner --no-privileges --exit-on-error --single-transaction --dbname="$PGDATABASE" "$FILE"',
    'echo "import: $FILE restored into $PGDATABASE"',
  ].join("\n");
}

export interface ImportArgs {
  cfg: PlatformConfig;
  pg: PostgresConfig;
  namespace: pulumi.Input<string>;
  serviceAccount: pulumi.Input<string>;
  /** Connection settings (the leader Service, the application role). */
  env: k8s.types.input.core.v1.EnvVar[];
  /** The backup job's claim. */
  volume: k8s.core.v1.PersistentVolumeClaim;
  dependsOn: pulumi.Resource[];
}

/** The import Job, named after what it imports: a new dump is a new Job; the same config keeps the finished one. */
export function createImport(parent: pulumi.Resource, a: ImportArgs): k8s.batch.v1.Job {
  const { cfg, pg } = a;
  const dump = pg.import?.dump;
  if (!dump) throw new Error("createImport: postgres.import is not set");
  const script = importScript(dump);
  const name = `postgres-import-${crypto.createHash("sha256").update(script).digest("hex").slice(0, 8)}`;
  const id = { name: "postgres-import", component: "backup", image: pg.image };
  const deadline = pg.backup.activeDeadlineSeconds;
  return new k8s.batch.v1.Job(
    name,
    {
      metadata: { name, namespace: a.namespace, labels: labels(cfg, { name: "postgres-import", component: "backup" }) },
      spec: {
        backoffLimit: 0,
        activeDeadlineSeconds: deadline,
        template: {
          metadata: { labels: labels(cfg, id) },
          spec: {
            serviceAccountName: a.serviceAccount,
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            restartPolicy: "Never",
            securityContext: restrictedPod({ uid: pg.runAs.uid, gid: pg.runAs.gid, fsGroup: pg.runAs.gid }),
            containers: [
              {
                name: "import",
                image: pg.image,
                command: ["sh", "-c", script],
                env: [{ name: "HOME", value: "/tmp" }, ...a.env],
                resources: pg.backup.resources,
                securityContext: restrictedContainer({ readOnlyRootFilesystem: true }),
                volumeMounts: [
                  { name: "backup", mountPath: BACKUP_DIR, readOnly: true },
                  { name: "tmp", mountPath: "/tmp" },
                ],
              },
            ],
            volumes: [{ name: "backup", persistentVolumeClaim: { claimName: a.volume.metadata.name, readOnly: true } }, scratchVolume("tmp")],
          },
        },
      },
    },
    // Pulumi waits for the Job and fails `pulumi up` when the import fails.
    { parent, dependsOn: a.dependsOn, customTimeouts: { create: `${deadline + 300}s`, update: `${deadline + 300}s` } },
  );
}
