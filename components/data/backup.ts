// Scheduled backups: one CronJob per store (and one for the mailboxes) writing timestamped files to
// its own retained PVC. A file is written as `.partial` and renamed only when complete, and older
// files are pruned only after a successful run, so a failing job never eats into the good backups.
// With backups.objectStore set, the same Job then copies the new file off the cluster: the dump
// runs as an init container, an upload container (rclone) copies and prunes the remote copies,
// and any failure fails the Job, so the CronJob's last successful time stops advancing and the
// backup-age alert fires.
import * as crypto from "crypto";
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import type { ObjectStoreConfig } from "../../config/backups";
import type { BackupConfig } from "../../config/data";
import type { Resources } from "../../config/common";
import type { PostgresConfig } from "../../config/postgres";
import type { PlatformConfig } from "../../config/schema";
import type { DependencyGraph } from "../lib/graph";
import { labels } from "../lib/labels";
import { OBJECT_STORE_KEYS, connectObjectStore, objectStoreCredentials } from "../lib/objectstore";
import { restrictedContainer, restrictedPod, scratchVolume, secretEnv } from "../lib/pod";
import { scheduled } from "../lib/scheduling";
import type { Tier } from "../../config/scheduling";
import type { SecretRef } from "../secrets";
import { statefulOptions } from "./store";

type Container = k8s.types.input.core.v1.Container;
type EnvVar = k8s.types.input.core.v1.EnvVar;
type Volume = k8s.types.input.core.v1.Volume;
type VolumeMount = k8s.types.input.core.v1.VolumeMount;

export const BACKUP_DIR = "/backup";
/** rclone remote name; its settings come from RCLONE_CONFIG_OFFSITE_* variables. */
export const REMOTE = "offsite";

/** Everything a namespace's backup Jobs need to copy off the cluster (built once per namespace). */
export interface Offsite {
  store: ObjectStoreConfig;
  /** The object-store credentials Secret in the namespace (components/lib/objectstore.ts). */
  credentials: SecretRef;
  uploader: { image: string; resources: Resources };
}

/**
 * The off-cluster copy settings for one namespace: the object store's credentials Secret there,
 * created only when backups.objectStore is set and something in the namespace uploads.
 */
export function offsiteFor(
  parent: pulumi.Resource,
  id: string,
  cfg: PlatformConfig,
  namespace: pulumi.Input<string>,
  secret: (key: string) => pulumi.Output<string>,
  uploads: boolean,
): Offsite | undefined {
  const store = cfg.backups.objectStore;
  if (!store || !uploads) return undefined;
  return { store, credentials: objectStoreCredentials(parent, id, cfg, store, namespace, secret), uploader: cfg.backups.uploader };
}

export interface BackupArgs {
  cfg: PlatformConfig;
  /** What is backed up: CronJob and PVC `<name>-backup`, files `<name>-<timestamp>.<extension>`, remote `<prefix>/<name>/`. */
  name: string;
  /** Image of the dump tool (the store's own, so its version matches the server), the uid it runs as, the schedule. */
  store: { image: string; runAs: { uid: number; gid: number }; backup: BackupConfig };
  namespace: pulumi.Input<string>;
  serviceAccount: pulumi.Input<string>;
  /** Connection settings and credentials (secretKeyRef) for the dump tool. */
  env: EnvVar[];
  /** Shell command writing one complete dump to "$OUT". */
  dump: string;
  /** File extension of a dump, e.g. "dump", "archive.gz", "rdb". */
  extension: string;
  /** Further volumes the dump reads (the mailboxes), with their mounts in the dump container. */
  volumes?: Volume[];
  mounts?: VolumeMount[];
  /**
   * The pod whose ReadWriteOnce volume the dump reads (its selector and tier): a volume attaches to
   * one node, so the Job runs on that pod's node, on its tier's nodes.
   */
  beside?: { tier: Tier; selector: Record<string, string> };
  /** Copy off the cluster (undefined: backups stay on the in-cluster volume). */
  offsite?: Offsite;
  graph: DependencyGraph;
}

export interface BackupObjects {
  cronJob: k8s.batch.v1.CronJob;
  volume: k8s.core.v1.PersistentVolumeClaim;
}

/** The dump step's script: dump to a partial file, rename, then keep the newest `retention` dumps. */
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

/** Object key prefix of one backup's remote copies: `<bucket>/<prefix>/<name>`. */
export function remotePath(store: ObjectStoreConfig, name: string): string {
  return `${store.bucket}/${store.prefix}/${name}`;
}

/**
 * The upload container's script (POSIX sh, rclone in the image). Its first argument picks the mode:
 *
 * - `upload` (the CronJob): copy the local files that are not in the store yet (`rclone copy`,
 *   never `sync`: an empty or new local volume adds nothing and deletes nothing remotely), check
 *   that the newest local file is now listed remotely, and only then delete remote copies beyond
 *   the newest `retention`. Any failing step exits non-zero and fails the Job.
 * - `list`: the remote copies, oldest first, with sizes and times.
 * - `fetch <file|latest> [destination]`: download one copy (default: into the backup volume).
 */
export function uploadScript(store: ObjectStoreConfig, name: string, extension: string, retention: number): string {
  const remote = `${REMOTE}:${remotePath(store, name)}`;
  // Anchored at the volume's root: the mailbox job keeps a working mirror in a subdirectory.
  const pattern = `/${name}-*.${extension}`;
  return [
    "set -eu",
    `remote='${remote}'`,
    `pattern='${pattern}'`,
    'list_remote() { rclone lsf "$remote" --files-only --include "$pattern" | sort; }',
    'mode="${1:-upload}"',
    'case "$mode" in',
    "upload)",
    `  newest=$(ls -1 ${BACKUP_DIR}/${name}-*.${extension} 2>/dev/null | sort | tail -n 1)`,
    '  [ -n "$newest" ] || { echo "no local backup to upload" >&2; exit 1; }',
    `  rclone copy ${BACKUP_DIR} "$remote" --include "$pattern"`,
    "  list_remote > /tmp/remote.list",
    '  if ! grep -qx "$(basename "$newest")" /tmp/remote.list; then echo "$(basename "$newest") is not in $remote after the upload; nothing pruned" >&2; exit 1; fi',
    `  sort -r /tmp/remote.list | tail -n +${retention + 1} > /tmp/prune.list`,
    '  while read -r old; do rclone deletefile "$remote/$old"; echo "pruned $remote/$old"; done < /tmp/prune.list',
    `  echo "uploaded $(basename "$newest") to $remote; remote copies: $(list_remote | wc -l) (keeping ${retention})"`,
    "  ;;",
    "list)",
    '  rclone lsl "$remote" --include "$pattern" | sort -k 4',
    "  ;;",
    "fetch)",
    '  file="${2:?fetch needs a file name or latest}"',
    '  if [ "$file" = latest ]; then file=$(list_remote | tail -n 1); [ -n "$file" ] || { echo "no copies in $remote" >&2; exit 1; }; fi',
    `  dest="\${3:-${BACKUP_DIR}/$file}"`,
    '  rclone copyto "$remote/$file" "$dest"',
    '  echo "fetched $remote/$file to $dest ($(wc -c < "$dest") bytes)"',
    "  ;;",
    '*) echo "unknown mode $mode (upload, list, fetch)" >&2; exit 2 ;;',
    "esac",
  ].join("\n");
}

/** rclone's S3 remote from the environment only: no config file, credentials by secretKeyRef. */
export function rcloneEnv(store: ObjectStoreConfig, credentials: SecretRef): EnvVar[] {
  const v = (key: string, value: string): EnvVar => ({ name: `RCLONE_CONFIG_${REMOTE.toUpperCase()}_${key}`, value });
  return [
    v("TYPE", "s3"),
    v("PROVIDER", "Other"),
    v("ENV_AUTH", "false"),
    v("ENDPOINT", store.endpoint),
    v("REGION", store.region),
    v("FORCE_PATH_STYLE", String(store.pathStyle)),
    // The uploader may only read, write and delete objects: it never creates the bucket.
    v("NO_CHECK_BUCKET", "true"),
    secretEnv(`RCLONE_CONFIG_${REMOTE.toUpperCase()}_ACCESS_KEY_ID`, credentials.name, OBJECT_STORE_KEYS.accessKeyId),
    secretEnv(`RCLONE_CONFIG_${REMOTE.toUpperCase()}_SECRET_ACCESS_KEY`, credentials.name, OBJECT_STORE_KEYS.secretAccessKey),
    { name: "HOME", value: "/tmp" },
  ];
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

  const backupMount = { name: "backup", mountPath: BACKUP_DIR };
  const tmpMount = { name: "tmp", mountPath: "/tmp" };
  const dump: Container = {
    name: "backup",
    image: store.image,
    command: ["sh", "-c", backupScript(a.name, a.extension, b.retention, a.dump)],
    env: [{ name: "HOME", value: "/tmp" }, ...a.env],
    resources: b.resources,
    securityContext: restrictedContainer({ readOnlyRootFilesystem: true }),
    volumeMounts: [backupMount, tmpMount, ...(a.mounts ?? [])],
  };
  const off = a.offsite;
  const upload: Container | undefined = off && {
    name: "upload",
    image: off.uploader.image,
    // `sh -c script uploader <mode> ...`: the mode is the container's args, so a restore is this Job with other args.
    command: ["sh", "-c", uploadScript(off.store, a.name, a.extension, b.retention), "uploader"],
    args: ["upload"],
    env: rcloneEnv(off.store, off.credentials),
    resources: off.uploader.resources,
    securityContext: restrictedContainer({ readOnlyRootFilesystem: true }),
    volumeMounts: [backupMount, tmpMount],
  };
  if (off) connectObjectStore(a.graph, off.store, name, "off-cluster backup copies");

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
              spec: scheduled(cfg, "batch", {
                serviceAccountName: a.serviceAccount,
                automountServiceAccountToken: false,
                enableServiceLinks: false,
                restartPolicy: "Never",
                securityContext: restrictedPod({ uid: store.runAs.uid, gid: store.runAs.gid, fsGroup: store.runAs.gid }),
                ...(a.beside
                  ? { affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: a.beside.selector }, topologyKey: "kubernetes.io/hostname" }] } } }
                  : {}),
                // With an upload the dump runs first (an init container): a failed dump never uploads or prunes.
                ...(upload ? { initContainers: [dump], containers: [upload] } : { containers: [dump] }),
                volumes: [{ name: "backup", persistentVolumeClaim: { claimName: volume.metadata.name } }, scratchVolume("tmp"), ...(a.volumes ?? [])],
              }, { nodesOf: a.beside?.tier }),
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
          spec: scheduled(cfg, "batch", {
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
          }),
        },
      },
    },
    // Pulumi waits for the Job and fails `pulumi up` when the import fails.
    { parent, dependsOn: a.dependsOn, customTimeouts: { create: `${deadline + 300}s`, update: `${deadline + 300}s` } },
  );
}
