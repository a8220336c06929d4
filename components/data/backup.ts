// Scheduled logical backups: one CronJob per store writing timestamped dumps to its own retained
// PVC. A dump is written to a `.partial` file and renamed only when complete, and older dumps are
// pruned only after a successful run, so a failing job never eats into the good backups.
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import type { StoreConfig, StoreName } from "../../config/data";
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
