// Nightly mailbox backup: `doveadm backup` (dsync, one-way) of every configured mailbox into a
// mirror Maildir tree on the backup volume, then a timestamped tar.gz of that tree, kept and copied
// off the cluster like the stores' backups (components/data/backup.ts). dsync reads the mailboxes
// through Dovecot's own storage code with Dovecot's locks, so it is consistent while Dovecot runs;
// it runs as vmail (the mailboxes' owner) without Dovecot's auth service, from the user's home
// (HOME/USER), which is how doveadm works without a userdb lookup. The pod is Pod Security
// "restricted" even though the mail namespace only enforces "baseline".
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import type { PlatformConfig } from "../../config/schema";
import type { Offsite } from "../data/backup";
import { BACKUP_DIR, createBackup } from "../data/backup";
import type { DependencyGraph } from "../lib/graph";
import { labels, selectorLabels } from "../lib/labels";
import { PATHS, VMAIL_UID } from "./model";
import type { MailModel } from "./model";

/** Where the job finds its doveadm configuration and the restore script. */
export const MAIL_BACKUP_CONFIG = "/etc/mailbox-backup";
/** The mirror Maildir tree dsync keeps up to date on the backup volume (archived each run). */
export const MAIL_MIRROR = `${BACKUP_DIR}/mirror`;

/**
 * doveadm's configuration in the job: the mailbox layout of dovecot.conf (location and hierarchy
 * separator, which dsync must share with the server), nothing else (no listeners, no TLS, no auth).
 */
export function doveadmConf(): string {
  return [
    "# Rendered by components/mail/backup.ts: doveadm only, as vmail, no running Dovecot.",
    "mail_location = maildir:~/Maildir",
    "namespace inbox {",
    "  inbox = yes",
    "  separator = /",
    "}",
    "base_dir = /tmp/dovecot",
    "log_path = /dev/stderr",
    "ssl = no",
    "",
  ].join("\n");
}

function userLoop(m: MailModel, body: string[]): string[] {
  return [`for user in ${m.users.join(" ")}; do`, `  home="${PATHS.mail}/${m.domain}/$user"`, `  address="$user@${m.domain}"`, ...body.map((l) => `  ${l}`), "done"];
}

/** The dump step: dsync every mailbox into the mirror, then archive the mirror to "$OUT". */
export function mailboxDump(m: MailModel): string {
  return [
    `mkdir -p ${MAIL_MIRROR}/${m.domain} /tmp/dovecot`,
    ...userLoop(m, [
      `mirror="${MAIL_MIRROR}/${m.domain}/$user"`,
      'if [ ! -d "$home/Maildir" ]; then echo "$address: no mailbox yet"; rm -rf "$mirror"; continue; fi',
      `HOME="$home" USER="$address" doveadm -c ${MAIL_BACKUP_CONFIG}/doveadm.conf backup "maildir:$mirror/Maildir"`,
      'echo "$address: $(find "$mirror/Maildir" -type f \\( -path "*/cur/*" -o -path "*/new/*" \\) | wc -l) messages"',
    ]),
    `tar -czf "$OUT" -C ${MAIL_MIRROR} .`,
  ].join("\n");
}

/**
 * restore.sh <archive>|latest: unpacks an archive from the backup volume and makes every mailbox in
 * it the archived state (`doveadm backup -R` into a fresh Maildir, UIDs and UIDVALIDITY kept so
 * IMAP clients' caches stay valid). The mailbox it replaces is moved aside, not deleted, so mail
 * that arrived after the backup can still be imported (docs/mail.md).
 */
export function mailboxRestoreScript(m: MailModel): string {
  return [
    "#!/bin/sh",
    "set -eu",
    'archive="${1:?usage: restore.sh <archive in the backup volume>|latest}"',
    `if [ "$archive" = latest ]; then archive=$(ls -1 ${BACKUP_DIR}/mailbox-*.tar.gz | sort | tail -n 1); fi`,
    `case "$archive" in /*) ;; *) archive="${BACKUP_DIR}/$archive" ;; esac`,
    `work="${BACKUP_DIR}/restore"`,
    'rm -rf "$work" && mkdir -p "$work" /tmp/dovecot',
    'tar -xzf "$archive" -C "$work"',
    ...userLoop(m, [
      `saved="$work/${m.domain}/$user/Maildir"`,
      'if [ ! -d "$saved" ]; then echo "$address: not in the archive"; continue; fi',
      'mkdir -p "$home"',
      // dsync cannot replace an INBOX that exists with another identity (Dovecot creates a new
      // one at the first login on an empty volume), so the current Maildir is kept aside, unread.
      'if [ -d "$home/Maildir" ]; then aside="$home/Maildir.replaced-$(date -u +%Y%m%dT%H%M%SZ)"; mv "$home/Maildir" "$aside"; echo "$address: current mailbox kept as $aside"; fi',
      `HOME="$home" USER="$address" doveadm -c ${MAIL_BACKUP_CONFIG}/doveadm.conf backup -R "maildir:$saved"`,
      'echo "$address: restored from $(basename "$archive")"',
    ]),
    'rm -rf "$work"',
    "",
  ].join("\n");
}

export interface MailboxBackupArgs {
  cfg: PlatformConfig;
  model: MailModel;
  namespace: pulumi.Input<string>;
  serviceAccount: pulumi.Input<string>;
  graph: DependencyGraph;
  offsite?: Offsite;
}

/** The mailboxes' claim: the shared ReadWriteMany claim, or member 0's own (Dovecot runs one replica then). */
export function mailClaim(m: MailModel): string {
  return m.sharedMailboxes ? "dovecot-mail" : "mail-dovecot-0";
}

export function createMailboxBackup(parent: pulumi.Resource, a: MailboxBackupArgs): void {
  const { cfg, model: m } = a;
  const files = { "doveadm.conf": doveadmConf(), "restore.sh": mailboxRestoreScript(m) };
  const configMap = new k8s.core.v1.ConfigMap(
    "mailbox-backup",
    { metadata: { name: "mailbox-backup", namespace: a.namespace, labels: labels(cfg, { name: "mailbox-backup", component: "backup" }) }, data: files },
    { parent },
  );
  createBackup(parent, {
    cfg,
    name: "mailbox",
    // The Dovecot image: doveadm of the server's own version, and its vmail user owns the mailboxes.
    store: { image: cfg.mail.dovecot.image, runAs: { uid: VMAIL_UID, gid: VMAIL_UID }, backup: cfg.mail.backup },
    namespace: a.namespace,
    serviceAccount: a.serviceAccount,
    env: [],
    dump: mailboxDump(m),
    extension: "tar.gz",
    volumes: [
      { name: "mail", persistentVolumeClaim: { claimName: mailClaim(m) } },
      { name: "config", configMap: { name: configMap.metadata.name } },
    ],
    mounts: [
      { name: "mail", mountPath: PATHS.mail },
      { name: "config", mountPath: MAIL_BACKUP_CONFIG, readOnly: true },
    ],
    // A ReadWriteOnce volume attaches to one node: the job runs where Dovecot runs.
    beside: m.sharedMailboxes ? undefined : { tier: "mail", selector: selectorLabels(cfg, { name: "dovecot", component: "mail" }) },
    offsite: a.offsite,
    graph: a.graph,
  });
}
