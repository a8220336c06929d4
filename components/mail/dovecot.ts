// Dovecot 2.3 configuration as pure functions of the mail model. The dovecot-config ConfigMap is
// mounted over /etc/dovecot (the image's config volume), so dovecot.conf below is the whole
// configuration: nothing from the image's sample config applies.
import { PATHS, PROXY_PORTS } from "./model";
import type { MailModel } from "./model";
import { PORTS } from "../lib/ports";

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
    `  args = scheme=BLF-CRYPT username_format=%Lu ${PATHS.dovecotUsersRuntime}`,
    "}",
    "userdb {",
    "  driver = passwd-file",
    `  args = username_format=%Lu ${PATHS.dovecotUsersRuntime}`,
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
    "service imap-login {",
    `  inet_listener imap {\n    port = ${PORTS.dovecot.imap}\n  }`,
    `  inet_listener imaps {\n    port = ${PORTS.dovecot.imaps}\n    ssl = yes\n  }`,
    ...proxy("imap", PROXY_PORTS.dovecot.imap, false),
    ...proxy("imaps", PROXY_PORTS.dovecot.imaps, true),
    "}",
    "service pop3-login {",
    `  inet_listener pop3 {\n    port = ${PORTS.dovecot.pop3}\n  }`,
    `  inet_listener pop3s {\n    port = ${PORTS.dovecot.pop3s}\n    ssl = yes\n  }`,
    ...proxy("pop3", PROXY_PORTS.dovecot.pop3, false),
    ...proxy("pop3s", PROXY_PORTS.dovecot.pop3s, true),
    "}",
    "# Local delivery from Postfix (virtual_transport = lmtp:inet:dovecot...:24)",
    "service lmtp {",
    `  inet_listener lmtp {\n    port = ${m.lmtp.port}\n  }`,
    "}",
    "# SASL for Postfix submission (smtpd_sasl_type = dovecot, smtpd_sasl_path = inet:dovecot...:12345)",
    "service auth {",
    `  inet_listener auth {\n    port = ${m.auth.port}\n  }`,
    "}",
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

/**
 * Container entry (run by the image's tini): copy the user list where only root and the auth
 * process (group dovecot) can read it, run Dovecot in the foreground, and reload it when the
 * certificate or the user list Secret changes (Secret volumes update in place).
 */
export function dovecotRunScript(): string {
  const runtime = PATHS.dovecotUsersRuntime;
  const dir = runtime.slice(0, runtime.lastIndexOf("/"));
  return [
    "#!/bin/sh",
    "set -eu",
    `mkdir -p ${dir}`,
    `install_users() { install -o root -g dovecot -m 0640 ${PATHS.dovecotUsers}/users ${runtime}.new && mv -f ${runtime}.new ${runtime}; }`,
    `fingerprint() { cat ${PATHS.tls}/tls.crt ${PATHS.tls}/tls.key ${PATHS.dovecotUsers}/users 2>/dev/null | cksum; }`,
    "watch_secrets() {",
    "  last=$(fingerprint)",
    "  while sleep 60; do",
    '    now=$(fingerprint); if [ "$now" != "$last" ]; then last=$now; install_users; doveadm reload || true; fi',
    "  done",
    "}",
    "install_users",
    "watch_secrets &",
    "exec /usr/sbin/dovecot -F",
    "",
  ].join("\n");
}
