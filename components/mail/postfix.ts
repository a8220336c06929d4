// Postfix and OpenDKIM configuration as pure functions of the mail model. The files land in the
// postfix-config ConfigMap; run.sh copies them into /etc/postfix (the image's config directory,
// which also holds postfix-files and dynamicmaps.cf) and starts `postfix start-fg`.
import { MILTER_PORT, PATHS } from "./model";
import type { MailModel } from "./model";
import { PORTS } from "../lib/ports";

/** Tables are texthash: read as plain text, so no postmap step and no writable copy of the ConfigMap. */
const table = (file: string) => `texthash:/etc/postfix/${file}`;

export function mainCf(m: MailModel): string {
  const protocols = `>=${m.minProtocol}`;
  const lines = [
    "# Rendered by the mail component from Pulumi config; edits in the pod are lost on restart.",
    "compatibility_level = 3.6",
    `myhostname = ${m.hostname}`,
    `mydomain = ${m.domain}`,
    "myorigin = $mydomain",
    "inet_interfaces = all",
    "inet_protocols = all",
    // Nothing is delivered locally: every mailbox lives in Dovecot, reached over LMTP.
    "mydestination =",
    "local_recipient_maps =",
    "local_transport = error:local delivery is disabled",
    // Only loopback is trusted; in-cluster clients authenticate on 587 like everyone else.
    "mynetworks = 127.0.0.0/8 [::1]/128",
    "maillog_file = /dev/stdout",
    "biff = no",
    "append_dot_mydomain = no",
    "smtputf8_enable = yes",
    "",
    "# Limits (seed 003: 25 MiB messages, 100 recipients)",
    `message_size_limit = ${m.messageSizeLimit}`,
    `smtpd_recipient_limit = ${m.recipientLimit}`,
    "",
    "# Local domain: mailboxes in Dovecot, handed over by LMTP",
    `virtual_mailbox_domains = ${m.domain}`,
    `virtual_mailbox_maps = ${table("vmailbox")}`,
    `virtual_alias_maps = ${table("virtual")}`,
    `virtual_transport = lmtp:inet:${m.lmtp.host}:${m.lmtp.port}`,
    "",
    "# Submission authentication: Dovecot's auth service over the cluster network",
    "smtpd_sasl_type = dovecot",
    `smtpd_sasl_path = inet:${m.auth.host}:${m.auth.port}`,
    "smtpd_sasl_auth_enable = no",
    "smtpd_sasl_security_options = noanonymous, noplaintext",
    "smtpd_sasl_tls_security_options = noanonymous",
    "broken_sasl_auth_clients = no",
    `smtpd_sender_login_maps = ${table("sender_login")}`,
    "",
    "# Inbound TLS (TLS 1.2 minimum; the certificate Secret is a volume so renewals arrive)",
    `smtpd_tls_cert_file = ${PATHS.tls}/tls.crt`,
    `smtpd_tls_key_file = ${PATHS.tls}/tls.key`,
    "smtpd_tls_security_level = may",
    "smtpd_tls_auth_only = yes",
    `smtpd_tls_protocols = ${protocols}`,
    `smtpd_tls_mandatory_protocols = ${protocols}`,
    "smtpd_tls_mandatory_ciphers = high",
    "smtpd_tls_loglevel = 1",
    "smtpd_tls_received_header = yes",
    "tls_preempt_cipherlist = yes",
    "",
    "# Outbound TLS",
    `smtp_tls_protocols = ${protocols}`,
    `smtp_tls_mandatory_protocols = ${protocols}`,
    "smtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt",
    "smtp_tls_loglevel = 1",
    ...relayLines(m),
    "",
    "# Restrictions",
    "smtpd_helo_required = yes",
    "disable_vrfy_command = yes",
    "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    "smtpd_recipient_restrictions = reject_non_fqdn_recipient, reject_unknown_recipient_domain, reject_unauth_pipelining, permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    "",
    "# DKIM: the OpenDKIM sidecar signs mail from authenticated senders and verifies inbound mail",
    `smtpd_milters = inet:127.0.0.1:${MILTER_PORT}`,
    "non_smtpd_milters = $smtpd_milters",
    // Unsigned mail fails DMARC: if the milter is down, defer (the queue holds it) rather than send it unsigned.
    "milter_default_action = tempfail",
    "milter_protocol = 6",
  ];
  return lines.join("\n") + "\n";
}

function relayLines(m: MailModel): string[] {
  if (!m.relay) return ["smtp_tls_security_level = may"];
  const lines = ["", "# Smarthost: every outbound message goes through it, always encrypted", `relayhost = [${m.relay.host}]:${m.relay.port}`, "smtp_tls_security_level = encrypt"];
  if (m.relay.username) {
    lines.push("smtp_sasl_auth_enable = yes", `smtp_sasl_password_maps = ${table("sasl_passwd")}`, "smtp_sasl_security_options = noanonymous", "smtp_sasl_tls_security_options = noanonymous");
  }
  return lines;
}

interface Listener {
  service: string;
  port: number;
  options: string[];
}

/** The three SMTP listeners (plus their PROXY-protocol twins when the load balancer sends PROXY headers). */
export function smtpListeners(m: MailModel): Listener[] {
  const submissionOpts = [
    "smtpd_tls_security_level=encrypt",
    "smtpd_sasl_auth_enable=yes",
    // encrypt alone already hides and refuses AUTH before STARTTLS (Postfix answers 530 to all but
    // EHLO/STARTTLS); this keeps passwords off plain text should the level ever be relaxed.
    "smtpd_tls_auth_only=yes",
    "smtpd_client_restrictions=permit_sasl_authenticated,reject",
    "smtpd_sender_restrictions=reject_sender_login_mismatch",
    "smtpd_relay_restrictions=permit_sasl_authenticated,reject",
    "milter_macro_daemon_name=ORIGINATING",
  ];
  const base: Listener[] = [
    { service: "smtp", port: PORTS.postfix.smtp, options: [] },
    { service: "submission", port: PORTS.postfix.submission, options: ["syslog_name=postfix/submission", ...submissionOpts] },
    { service: "smtps", port: PORTS.postfix.smtps, options: ["syslog_name=postfix/smtps", "smtpd_tls_wrappermode=yes", ...submissionOpts] },
  ];
  if (!m.proxy) return base;
  const proxied = base.map((l) => {
    const ext = m.external.postfix.find((p) => p.port === l.port)!;
    return { service: String(ext.targetPort), port: ext.targetPort, options: [`syslog_name=postfix/${l.service}-proxy`, ...l.options.filter((o) => !o.startsWith("syslog_name")), "smtpd_upstream_proxy_protocol=haproxy"] };
  });
  return [...base, ...proxied];
}

export function masterCf(m: MailModel): string {
  // No daemon is chrooted: the container is the jail, and chroot would need SYS_CHROOT plus a
  // populated /var/spool/postfix/etc.
  const row = (service: string, type: string, priv: string, unpriv: string, wakeup: string, maxproc: string, command: string) =>
    [service.padEnd(10), type.padEnd(6), priv.padEnd(7), unpriv.padEnd(7), "n".padEnd(7), wakeup.padEnd(7), maxproc.padEnd(7), command].join(" ").trimEnd();
  const out = ["# Rendered by the mail component. service type private unpriv chroot wakeup maxproc command"];
  for (const l of smtpListeners(m)) {
    out.push(row(l.service, "inet", "n", "-", "-", "-", "smtpd"));
    for (const o of l.options) out.push(`  -o ${o}`);
  }
  const unix: [string, string, string, string, string, string][] = [
    ["pickup", "n", "-", "60", "1", "pickup"],
    ["cleanup", "n", "-", "-", "0", "cleanup"],
    ["qmgr", "n", "-", "300", "1", "qmgr"],
    ["tlsmgr", "-", "-", "1000?", "1", "tlsmgr"],
    ["rewrite", "-", "-", "-", "-", "trivial-rewrite"],
    ["bounce", "-", "-", "-", "0", "bounce"],
    ["defer", "-", "-", "-", "0", "bounce"],
    ["trace", "-", "-", "-", "0", "bounce"],
    ["verify", "-", "-", "-", "1", "verify"],
    ["flush", "n", "-", "1000?", "0", "flush"],
    ["proxymap", "-", "-", "-", "-", "proxymap"],
    ["proxywrite", "-", "-", "-", "1", "proxymap"],
    ["smtp", "-", "-", "-", "-", "smtp"],
    ["relay", "-", "-", "-", "-", "smtp"],
    ["showq", "n", "-", "-", "-", "showq"],
    ["error", "-", "-", "-", "-", "error"],
    ["retry", "-", "-", "-", "-", "error"],
    ["discard", "-", "-", "-", "-", "discard"],
    ["lmtp", "-", "-", "-", "-", "lmtp"],
    ["anvil", "-", "-", "-", "1", "anvil"],
    ["scache", "-", "-", "-", "1", "scache"],
  ];
  for (const [service, priv, unpriv, wakeup, maxproc, command] of unix) out.push(row(service, "unix", priv, unpriv, wakeup, maxproc, command));
  // postlogd writes maillog_file (/dev/stdout) for every daemon: logs reach `kubectl logs`.
  out.push(row("postlog", "unix-dgram", "n", "-", "-", "1", "postlogd"));
  return out.join("\n") + "\n";
}

/** Accepted local recipients: each mailbox, so unknown addresses are refused at RCPT time (no backscatter). */
export function vmailboxMap(m: MailModel): string {
  return m.addresses.map((a) => `${a} OK`).join("\n") + "\n";
}

/** RFC 2142 role addresses go to the postmaster's mailbox. */
export function virtualAliasMap(m: MailModel): string {
  const roles = ["postmaster", "abuse", "hostmaster", "dmarc-reports"].filter((r) => !m.users.includes(r));
  return roles.map((r) => `${r}@${m.domain} ${m.postmaster}`).join("\n") + "\n";
}

/** Who may send as whom: each user only as their own address (login name = address). */
export function senderLoginMap(m: MailModel): string {
  return m.addresses.map((a) => `${a} ${a}`).join("\n") + "\n";
}

export function opendkimConf(m: MailModel): string {
  return [
    "# Rendered by the mail component. Signs mail that Postfix marks as originating (SASL-authenticated",
    "# submission); verifies everything else.",
    "Syslog no",
    "Mode sv",
    `Domain ${m.domain}`,
    `Selector ${m.selector}`,
    `KeyFile ${PATHS.dkimKeyRuntime}/dkim.private`,
    "RequireSafeKeys yes",
    `Socket inet:${MILTER_PORT}@127.0.0.1`,
    // The key is read as root at start; then OpenDKIM drops to its own user.
    "UserID opendkim",
    "Canonicalization relaxed/simple",
    "SignatureAlgorithm rsa-sha256",
    "OversignHeaders From",
    "MTA ORIGINATING",
    "InternalHosts 127.0.0.1",
    "",
  ].join("\n");
}

/**
 * Container entry (run by the image's tini): install the rendered files, then run Postfix in the
 * foreground. A background loop reloads Postfix when the mounted certificate changes.
 */
export function postfixRunScript(m: MailModel): string {
  const files = ["main.cf", "master.cf", "vmailbox", "virtual", "sender_login"];
  return [
    "#!/bin/sh",
    "set -eu",
    `for f in ${files.join(" ")}; do install -m 0644 ${PATHS.postfixConfig}/$f /etc/postfix/$f; done`,
    ...(m.relay?.username ? [`install -m 0600 ${PATHS.relay}/sasl_passwd /etc/postfix/sasl_passwd`] : []),
    `fingerprint() { cat ${PATHS.tls}/tls.crt ${PATHS.tls}/tls.key 2>/dev/null | cksum; }`,
    "watch_tls() {",
    "  last=$(fingerprint)",
    "  while sleep 60; do",
    '    now=$(fingerprint); if [ "$now" != "$last" ]; then last=$now; postfix reload || true; fi',
    "  done",
    "}",
    "watch_tls &",
    "# The milter starts beside us; give it a moment so the first messages are not deferred.",
    `i=0; while [ $i -lt 30 ] && ! nc -z 127.0.0.1 ${MILTER_PORT}; do sleep 1; i=$((i + 1)); done`,
    "exec postfix start-fg",
    "",
  ].join("\n");
}

/** OpenDKIM sidecar entry: copy the key to a root-only directory, then run the milter in the foreground. */
export function opendkimCommand(): string[] {
  const dir = PATHS.dkimKeyRuntime;
  return ["/bin/sh", "-c", `install -d -m 0700 ${dir} && install -m 0400 ${PATHS.dkimKey}/dkim.private ${dir}/dkim.private && exec /usr/sbin/opendkim -f -x ${PATHS.postfixConfig}/opendkim.conf`];
}

/** Relay credentials in Postfix's sasl_passwd format. */
export function relayPasswordLine(host: string, port: number, username: string, password: string): string {
  return `[${host}]:${port} ${username}:${password}\n`;
}
