// pgBackRest for the Patroni mode: continuous WAL archiving from the primary and scheduled base
// backups, both into the shared object store below <backups.objectStore.prefix>/postgres/, and
// the restore a point-in-time recovery starts from. Pure renderers of the two configurations:
// - every member's (archive-push/-get, restore, and the TLS server the backup job connects to);
// - the backup job's: it is the repository host, reaching the members' data directories through
//   their TLS servers (mutual TLS, one certificate each side), so no pod ever mounts another's volume.
import type { ObjectStoreConfig } from "../../config/backups";
import { objectStoreAddress } from "../../config/backups";
import type { PostgresConfig } from "../../config/postgres";
import { PORTS } from "../lib/ports";

export const STANZA = "db";
export const PGBACKREST_CONFIG_DIR = "/etc/pgbackrest";
/** Beside, not inside, the config directory: a volume cannot be mounted inside a ConfigMap volume. */
export const PGBACKREST_TLS_DIR = "/etc/pgbackrest-tls";
/** The client identity the members' TLS servers admit (the backup job's certificate's CN). */
export const PGBACKREST_CLIENT_CN = "pgbackrest-client";
/** Keys of the TLS Secret (components/data/postgres.ts). */
export const TLS_FILES = { serverCert: "server.crt", serverKey: "server.key", clientCert: "client.crt", clientKey: "client.key" } as const;

/** The repository path of a prefix: <prefix>/postgres (pgBackRest wants it absolute; S3 keys drop the slash). */
export function repoPath(prefix: string): string {
  return `/${prefix}/postgres`;
}

export interface PgbackrestPaths {
  dataDir: string;
  socketDir: string;
}

function repoSection(pg: PostgresConfig, store: ObjectStoreConfig): string[] {
  const { host, port } = objectStoreAddress(store);
  return [
    "repo1-type=s3",
    `repo1-path=${repoPath(store.prefix)}`,
    `repo1-s3-endpoint=${host}`,
    ...(port !== 443 ? [`repo1-storage-port=${port}`] : []),
    `repo1-s3-bucket=${store.bucket}`,
    `repo1-s3-region=${store.region}`,
    `repo1-s3-uri-style=${store.pathStyle ? "path" : "host"}`,
    // The key pair comes from the environment (PGBACKREST_REPO1_S3_KEY/_SECRET), never from this file.
    `repo1-retention-full-type=${pg.archive.retention.type === "days" ? "time" : "count"}`,
    `repo1-retention-full=${pg.archive.retention.full}`,
  ];
}

/** Options both sides share: scratch paths on the writable /tmp, logs to the container's output only. */
const COMMON = ["lock-path=/tmp/pgbackrest", "log-path=/tmp/pgbackrest", "spool-path=/tmp/pgbackrest", "log-level-console=info", "log-level-file=off", "process-max=2", "start-fast=y"];

/** pgbackrest.conf of every member: the repository, its own data directory, and its TLS server. */
export function memberConf(pg: PostgresConfig, store: ObjectStoreConfig, paths: PgbackrestPaths): string {
  return [
    "# pgBackRest on a Postgres member (archive-push/-get, restore, TLS server for the backup job).",
    "[global]",
    ...repoSection(pg, store),
    ...COMMON,
    "tls-server-address=*",
    `tls-server-port=${PORTS.postgres.pgbackrest}`,
    `tls-server-cert-file=${PGBACKREST_TLS_DIR}/${TLS_FILES.serverCert}`,
    `tls-server-key-file=${PGBACKREST_TLS_DIR}/${TLS_FILES.serverKey}`,
    // The client's certificate is self-signed: it is its own authority, and the only one admitted.
    `tls-server-ca-file=${PGBACKREST_TLS_DIR}/${TLS_FILES.clientCert}`,
    `tls-server-auth=${PGBACKREST_CLIENT_CN}=${STANZA}`,
    "",
    `[${STANZA}]`,
    `pg1-path=${paths.dataDir}`,
    `pg1-socket-path=${paths.socketDir}`,
    `pg1-port=${PORTS.postgres.sql}`,
    "pg1-user=postgres",
    "",
  ].join("\n");
}

/** pgbackrest.conf of the backup job: the repository, and every member as a TLS host (pgBackRest finds the primary). */
export function repoHostConf(pg: PostgresConfig, store: ObjectStoreConfig, paths: PgbackrestPaths, memberHosts: string[]): string {
  return [
    "# pgBackRest repository host (the base backup job): members are reached through their TLS servers.",
    "[global]",
    ...repoSection(pg, store),
    ...COMMON,
    "",
    `[${STANZA}]`,
    ...memberHosts.flatMap((host, i) => [
      `pg${i + 1}-host=${host}`,
      `pg${i + 1}-host-type=tls`,
      `pg${i + 1}-host-port=${PORTS.postgres.pgbackrest}`,
      `pg${i + 1}-host-cert-file=${PGBACKREST_TLS_DIR}/${TLS_FILES.clientCert}`,
      `pg${i + 1}-host-key-file=${PGBACKREST_TLS_DIR}/${TLS_FILES.clientKey}`,
      `pg${i + 1}-host-ca-file=${PGBACKREST_TLS_DIR}/${TLS_FILES.serverCert}`,
      `pg${i + 1}-path=${paths.dataDir}`,
      `pg${i + 1}-socket-path=${paths.socketDir}`,
      `pg${i + 1}-port=${PORTS.postgres.sql}`,
      `pg${i + 1}-user=postgres`,
    ]),
    "",
  ].join("\n");
}

/** Options that point a command at the restore source instead of this cluster's own repository path. */
export function sourceOptions(pg: PostgresConfig, store: ObjectStoreConfig): string {
  const source = pg.restore?.sourcePrefix;
  return source && source !== store.prefix ? ` --repo1-path=${repoPath(source)}` : "";
}

/** archive_command: every completed WAL segment to the repository, straight from the primary. */
export function archiveCommand(): string {
  return `pgbackrest --stanza=${STANZA} archive-push "%p"`;
}

/** restore_command: WAL from the repository (replicas catching up, a restore replaying to its target). */
export function restoreCommand(pg: PostgresConfig, store: ObjectStoreConfig, fromSource = false): string {
  return `pgbackrest --stanza=${STANZA}${fromSource ? sourceOptions(pg, store) : ""} archive-get %f "%p"`;
}

/** The base backup job's script: the stanza (idempotent), the backup, then what the repository holds. */
export function baseBackupScript(pg: PostgresConfig): string {
  return [
    "set -eu",
    `pgbackrest --stanza=${STANZA} stanza-create`,
    `pgbackrest --stanza=${STANZA} --type=${pg.archive.type} backup`,
    `pgbackrest --stanza=${STANZA} info`,
  ].join("\n");
}
