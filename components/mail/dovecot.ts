// Dovecot 2.3 configuration as pure functions of the mail model. The dovecot-config ConfigMap is
// mounted over /etc/dovecot (the image's config volume), so dovecot.conf below is the whole
// configuration: nothing from the image's sample config applies. Dovecot runs without root: the
// master and every service run as vmail, listeners are on high ports (DOVECOT_PORTS), nothing is
// chrooted, and everything Dovecot writes besides mailboxes is on emptyDirs.
import { DOVECOT_PORTS, PATHS, PROXY_PORTS } from "./model";
import type { MailModel } from "./model";

export function dovecotConf(m: MailModel): string {
  const proxy = (name: string, port: number, ssl: boolean) =>
    m.proxy ? [`  inet_listener ${name}_proxy {`, `    port = ${port}`, ...(ssl ? ["    ssl = yes"] : []), "    haproxy = yes", "  }"] : [];
  return [
    "# Rendered by the mail component from Pulumi config.",
    "protocols = imap pop3 lmtp",
    "listen = *",
    "log_path = /dev/stderr",
    "info_log_path = /dev/stdout",
    "",
    "# Rootless: one unprivileged user (vmail) for the master and every service",
    "default_internal_user = vmail",
    "default_internal_group = vmail",
    "default_login_user = vmail",
    `base_dir = ${PATHS.dovecotRun}`,
    `state_dir = ${PATHS.dovecotState}`,
    "",
    "# Password guessing: every failed login waits this long; anvil's per-address penalty adds more after repeated failures",
    `auth_failure_delay = ${m.authFailureDelaySeconds} secs`,
    "",
    "# Mailboxes: one Maildir per user on the mail volume, owned by vmail (uid 1000 in the image)",
    `mail_home = ${PATHS.mail}/%Ld/%Ln`,
    "mail_location = maildir:~/Maildir",
    "mail_uid = vmail",
    "mail_gid = vmail",
    "first_valid_uid = 1000",
    "last_valid_uid = 1000",
    ...(m.sharedMailboxes
      ? ["# Shared (ReadWriteMany) volume: several servers touch the same indexes", "mmap_disable = yes", "mail_fsync = always", "mail_nfs_storage = yes", "mail_nfs_index = yes"]
      : []),
    "",
    "namespace inbox {",
    "  inbox = yes",
    "  separator = /",
    "  mailbox Drafts {\n    special_use = \\Drafts\n    auto = subscribe\n  }",
    "  mailbox Sent {\n    special_use = \\Sent\n    auto = subscribe\n  }",
    "  mailbox Junk {\n    special_use = \\Junk\n    auto = subscribe\n  }",
    "  mailbox Trash {\n    special_use = \\Trash\n    auto = subscribe\n  }",
    "}",
    "",
    "# Authentication: generated bcrypt hashes in a passwd-file; passwords only over TLS",
    "auth_mechanisms = plain login",
    "auth_username_format = %Lu",
    "disable_plaintext_auth = yes",
    "passdb {",
    "  driver = passwd-file",
    `  args = scheme=BLF-CRYPT username_format=%Lu ${PATHS.dovecotUsers}/users`,
    "}",
    "userdb {",
    "  driver = passwd-file",
    `  args = username_format=%Lu ${PATHS.dovecotUsers}/users`,
    `  default_fields = uid=vmail gid=vmail home=${PATHS.mail}/%Ld/%Ln`,
    "}",
    "",
    "# TLS (the certificate Secret is a volume; run.sh reloads Dovecot when it is renewed)",
    "ssl = required",
    `ssl_cert = <${PATHS.tls}/tls.crt`,
    `ssl_key = <${PATHS.tls}/tls.key`,
    `ssl_min_protocol = ${m.minProtocol}`,
    // ECDHE only: no DH parameter file is needed and every suite has forward secrecy.
    "ssl_cipher_list = ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!MD5",
    "ssl_prefer_server_ciphers = yes",
    ...(m.proxy ? ["", "# The load balancer sends PROXY headers on the *_proxy listeners only", `haproxy_trusted_networks = ${m.trustedNetworks.join(" ")}`] : []),
    "",
    // No chroot: it needs root (CAP_SYS_CHROOT); the container's own filesystem is the jail.
    "service imap-login {",
    "  chroot =",
    `  inet_listener imap {\n    port = ${DOVECOT_PORTS.imap}\n  }`,
    `  inet_listener imaps {\n    port = ${DOVECOT_PORTS.imaps}\n    ssl = yes\n  }`,
    ...proxy("imap", PROXY_PORTS.dovecot.imap, false),
    ...proxy("imaps", PROXY_PORTS.dovecot.imaps, true),
    "}",
    "service pop3-login {",
    "  chroot =",
    `  inet_listener pop3 {\n    port = ${DOVECOT_PORTS.pop3}\n  }`,
    `  inet_listener pop3s {\n    port = ${DOVECOT_PORTS.pop3s}\n    ssl = yes\n  }`,
    ...proxy("pop3", PROXY_PORTS.dovecot.pop3, false),
    ...proxy("pop3s", PROXY_PORTS.dovecot.pop3s, true),
    "}",
    `# Local delivery from Postfix (virtual_transport = lmtp:inet:dovecot...:${m.lmtp.port}; the Service maps it here)`,
    "service lmtp {",
    `  inet_listener lmtp {\n    port = ${DOVECOT_PORTS.lmtp}\n  }`,
    "}",
    `# SASL for Postfix submission (smtpd_sasl_type = dovecot, smtpd_sasl_path = inet:dovecot...:${m.auth.port})`,
    "service auth {",
    `  inet_listener auth {\n    port = ${DOVECOT_PORTS.auth}\n  }`,
    "}",
    "service auth-worker {",
    "  user = $default_internal_user",
    "}",
    "service anvil {",
    "  chroot =",
    "}",
    "",
    "# Prometheus metrics (Dovecot's own OpenMetrics endpoint): logins and failures by protocol",
    "service stats {",
    `  inet_listener http {\n    port = ${DOVECOT_PORTS.metrics}\n  }`,
    "}",
    ...DOVECOT_METRICS.flatMap((mt) => [`metric ${mt.name} {`, `  filter = ${mt.filter}`, ...(mt.groupBy ? [`  group_by = ${mt.groupBy}`] : []), "}"]),
    "protocol lmtp {",
    `  postmaster_address = ${m.postmaster}`,
    "}",
    "protocol imap {",
    "  mail_max_userip_connections = 20",
    "}",
    "",
  ].join("\n");
}

/** One passwd-file line per user: login is the full address, the password a bcrypt hash. */
export function passwdFile(entries: { address: string; bcryptHash: string }[]): string {
  return entries.map((e) => `${e.address}:{BLF-CRYPT}${e.bcryptHash}::::::`).join("\n") + "\n";
}

/** Metrics Dovecot's stats service exports (as dovecot_<name>_total); alerts read these names. */
export const DOVECOT_METRICS = [
  { name: "auth_success", filter: "event=auth_request_finished AND success=yes", groupBy: "" },
  { name: "auth_failures", filter: "event=auth_request_finished AND NOT success=yes", groupBy: "" },
  { name: "logins", filter: "event=auth_request_finished AND success=yes AND service=*", groupBy: "service" },
];

/**
 * Container entry (run by the image's tini) as vmail: run Dovecot in the foreground and reload it
 * when the certificate or the user list Secret changes (Secret volumes update in place).
 */
export function dovecotRunScript(): string {
  return [
    "#!/bin/sh",
    "set -eu",
    `fingerprint() { cat ${PATHS.tls}/tls.crt ${PATHS.tls}/tls.key ${PATHS.dovecotUsers}/users 2>/dev/null | cksum; }`,
    "watch_secrets() {",
    "  last=$(fingerprint)",
    "  while sleep 60; do",
    '    now=$(fingerprint); if [ "$now" != "$last" ]; then last=$now; doveadm reload || true; fi',
    "  done",
    "}",
    "watch_secrets &",
    "exec /usr/sbin/dovecot -F",
    "",
  ].join("\n");
}
