// Postfix configuration as pure functions of the mail model. The files land in the postfix-config
// ConfigMap; run.sh copies them into /etc/postfix (the image's config directory, which also holds
// postfix-files and dynamicmaps.cf) and starts `postfix start-fg`. Rspamd (rspamd.ts) is the
// milter: content and authentication checks on inbound mail, DKIM signing of authenticated mail.
import { PATHS, POD_LOCAL, perAnvilUnit } from "./model";
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
    // A file the exporter sidecar tails; run.sh copies every line to the container's stdout.
    `maillog_file = ${PATHS.maillog}/mail.log`,
    "biff = no",
    "append_dot_mydomain = no",
    "smtputf8_enable = yes",
    "",
    "# Limits (seed 003: 25 MiB messages, 100 recipients)",
    `message_size_limit = ${m.messageSizeLimit}`,
    `smtpd_recipient_limit = ${m.recipientLimit}`,
    ...limitLines(m),
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
    `smtp_tls_CAfile = ${m.relay?.caPem ? `${PATHS.postfixConfig}/relay-ca.pem` : "/etc/ssl/certs/ca-certificates.crt"}`,
    "smtp_tls_loglevel = 1",
    ...relayLines(m),
    "",
    "# Restrictions",
    "smtpd_helo_required = yes",
    "disable_vrfy_command = yes",
    "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    "smtpd_recipient_restrictions = reject_non_fqdn_recipient, reject_unknown_recipient_domain, reject_unauth_pipelining, permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    "",
    ...postscreenLines(m),
    "",
    "# Rspamd (sidecar): SPF/DKIM/DMARC/ARC and spam scoring of inbound mail, DKIM signing of authenticated mail",
    `smtpd_milters = inet:127.0.0.1:${POD_LOCAL.milter}`,
    "non_smtpd_milters = $smtpd_milters",
    // Unsigned mail fails DMARC and unscanned mail is unchecked: with the milter down, defer (the
    // queue holds it) rather than accept or send it unchecked.
    "milter_default_action = tempfail",
    "milter_protocol = 6",
    // Rspamd signs when it sees the SASL login ({auth_authen}) and checks the client's address.
    "milter_mail_macros = i {mail_addr} {client_addr} {client_name} {auth_authen}",
  ];
  return lines.join("\n") + "\n";
}

/** Seed 003's limits: connections, per-client rates (anvil), timeouts. */
function limitLines(m: MailModel): string[] {
  const l = m.limits;
  const unit = l.anvilUnitSeconds;
  return [
    "",
    `# Per-client limits, counted by anvil per ${unit} s: ${l.messageRate.burst} messages at once, ${l.messageRate.perMinute} a minute in the long run`,
    `anvil_rate_time_unit = ${unit}s`,
    `smtpd_client_connection_count_limit = ${l.connectionsPerClient}`,
    `smtpd_client_connection_rate_limit = ${perAnvilUnit(l.connectionRatePerMinute, unit)}`,
    `smtpd_client_message_rate_limit = ${l.messageRate.burst}`,
    `smtpd_client_auth_rate_limit = ${perAnvilUnit(l.authRatePerMinute, unit)}`,
    // Only loopback is exempt (the pod itself); every network client is counted.
    "smtpd_client_event_limit_exceptions = $mynetworks",
    `smtpd_timeout = ${l.timeoutSeconds}s`,
    // A client that keeps making errors is disconnected sooner than the default 20.
    "smtpd_soft_error_limit = 5",
    "smtpd_hard_error_limit = 10",
  ];
}

/** Postscreen on port 25: pregreet test, weighted DNSBLs, allow/deny lists. */
function postscreenLines(m: MailModel): string[] {
  const p = m.postscreen;
  if (!p.enabled) return [];
  const sites = p.dnsbl.sites.map((s) => `${s.zone}*${s.weight}`);
  return [
    "",
    "# Postscreen in front of smtpd on port 25: bots that talk before the greeting, or that DNSBLs list, never reach smtpd",
    `postscreen_access_list = permit_mynetworks, cidr:/etc/postfix/postscreen_access.cidr`,
    "postscreen_denylist_action = enforce",
    `postscreen_greet_wait = ${p.greetWaitSeconds}s`,
    "postscreen_greet_action = enforce",
    ...(sites.length ? [`postscreen_dnsbl_sites = ${sites.join(", ")}`, `postscreen_dnsbl_threshold = ${p.dnsbl.threshold}`, "postscreen_dnsbl_action = enforce"] : []),
    `postscreen_pre_queue_limit = ${m.limits.maxConnections}`,
    `postscreen_post_queue_limit = ${m.limits.maxConnections}`,
    `postscreen_client_connection_count_limit = ${m.limits.connectionsPerClient}`,
    // The verdicts are cached for the pod's life (the container's /var/lib/postfix), shared through
    // proxymap by port 25's postscreen and its PROXY-protocol twin (a plain btree allows one writer).
    "postscreen_cache_map = proxy:btree:$data_directory/postscreen_cache",
  ];
}

/** Postscreen's allow/deny table (cidr:), first match wins. */
export function postscreenAccess(m: MailModel): string {
  return [...m.postscreen.deny.map((c) => `${c} reject`), ...m.postscreen.allow.map((c) => `${c} permit`), ""].join("\n");
}

function relayLines(m: MailModel): string[] {
  if (!m.relay) return ["smtp_tls_security_level = may"];
  const lines = ["", "# Smarthost: every outbound message goes through it, always encrypted", `relayhost = [${m.relay.host}]:${m.relay.port}`];
  if (m.relay.tls === "secure") {
    // The certificate must chain to a trusted CA and name the relay host: a man in the middle
    // cannot present one, so the relay password only ever reaches the relay.
    lines.push("smtp_tls_security_level = secure", "smtp_tls_secure_cert_match = nexthop");
  } else {
    lines.push("# relay.tls: encrypt (explicit opt-out): TLS without certificate verification", "smtp_tls_security_level = encrypt");
  }
  if (m.relay.username) {
    lines.push("smtp_sasl_auth_enable = yes", `smtp_sasl_password_maps = ${table("sasl_passwd")}`, "smtp_sasl_security_options = noanonymous", "smtp_sasl_tls_security_options = noanonymous");
  }
  return lines;
}

interface Listener {
  /** Which public port this listener serves (its PROXY twin has the same kind). */
  kind: "smtp" | "submission" | "smtps";
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
    // Authenticated users are limited per user by Rspamd, not per address (the app sends from few pods).
    "smtpd_client_message_rate_limit=0",
    "smtpd_client_connection_rate_limit=0",
  ];
  const base: Listener[] = [
    { kind: "smtp", service: "smtp", port: PORTS.postfix.smtp, options: [] },
    { kind: "submission", service: "submission", port: PORTS.postfix.submission, options: ["syslog_name=postfix/submission", ...submissionOpts] },
    { kind: "smtps", service: "smtps", port: PORTS.postfix.smtps, options: ["syslog_name=postfix/smtps", "smtpd_tls_wrappermode=yes", ...submissionOpts] },
  ];
  if (!m.proxy) return base;
  const proxied = base.map((l) => {
    const ext = m.external.postfix.find((p) => p.port === l.port)!;
    return { kind: l.kind, service: String(ext.targetPort), port: ext.targetPort, options: [`syslog_name=postfix/${l.service}-proxy`, ...l.options.filter((o) => !o.startsWith("syslog_name")), "smtpd_upstream_proxy_protocol=haproxy"] };
  });
  return [...base, ...proxied];
}

export function masterCf(m: MailModel): string {
  // No daemon is chrooted: the container is the jail, and chroot would need SYS_CHROOT plus a
  // populated /var/spool/postfix/etc.
  const row = (service: string, type: string, priv: string, unpriv: string, wakeup: string, maxproc: string, command: string) =>
    [service.padEnd(10), type.padEnd(6), priv.padEnd(7), unpriv.padEnd(7), "n".padEnd(7), wakeup.padEnd(7), maxproc.padEnd(7), command].join(" ").trimEnd();
  const out = ["# Rendered by the mail component. service type private unpriv chroot wakeup maxproc command"];
  const screened = m.postscreen.enabled;
  for (const l of smtpListeners(m)) {
    // Port 25 (and its PROXY twin): postscreen answers, then hands clean clients to `smtpd pass`.
    if (screened && l.kind === "smtp") {
      out.push(row(l.service, "inet", "n", "-", "-", "1", "postscreen"));
      for (const o of l.options.filter((o) => o.startsWith("syslog_name"))) out.push(`  -o ${o}`);
      if (l.options.includes("smtpd_upstream_proxy_protocol=haproxy")) out.push("  -o postscreen_upstream_proxy_protocol=haproxy");
      continue;
    }
    out.push(row(l.service, "inet", "n", "-", "-", l.kind === "smtp" ? String(m.limits.smtpdProcesses) : "-", "smtpd"));
    for (const o of l.options) out.push(`  -o ${o}`);
  }
  if (screened) {
    out.push(row("smtpd", "pass", "-", "-", "-", String(m.limits.smtpdProcesses), "smtpd"));
    out.push(row("dnsblog", "unix", "-", "-", "-", "0", "dnsblog"));
    out.push(row("tlsproxy", "unix", "-", "-", "-", "0", "tlsproxy"));
  }
  // showq on loopback TCP for the exporter sidecar (the public/showq socket's directory is
  // postdrop-only, and the exporter runs as an unprivileged user of another image).
  out.push(row(`127.0.0.1:${POD_LOCAL.showq}`, "inet", "n", "-", "-", "-", "showq"));
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

/**
 * Container entry (run by the image's tini): install the rendered files, then run Postfix in the
 * foreground. A background loop reloads Postfix when the mounted certificate changes.
 */
export function postfixRunScript(m: MailModel): string {
  const files = ["main.cf", "master.cf", "vmailbox", "virtual", "sender_login", ...(m.postscreen.enabled ? ["postscreen_access.cidr"] : [])];
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
    "# The log file the exporter reads; copied to stdout for kubectl logs, and truncated in place",
    "# (copytruncate keeps the inode both readers follow) before it fills the emptyDir.",
    `log=${PATHS.maillog}/mail.log`,
    'touch "$log" && chmod 0644 "$log"',
    'tail -F -n +1 "$log" 2>/dev/null &',
    `( while sleep 300; do [ "$(wc -c < "$log")" -gt ${MAILLOG_MAX_BYTES} ] && : > "$log"; done ) &`,
    "# The milter starts beside us; give it a moment so the first messages are not deferred.",
    `i=0; while [ $i -lt 60 ] && ! nc -z 127.0.0.1 ${POD_LOCAL.milter}; do sleep 1; i=$((i + 1)); done`,
    "exec postfix start-fg",
    "",
  ].join("\n");
}

/** The log is truncated above this size (the maillog emptyDir's sizeLimit is twice it). */
export const MAILLOG_MAX_BYTES = 50 * 1024 * 1024;

/** Relay credentials in Postfix's sasl_passwd format. */
export function relayPasswordLine(host: string, port: number, username: string, password: string): string {
  return `[${host}]:${port} ${username}:${password}\n`;
}
