// Rspamd's local configuration as pure functions of the mail model. The official image keeps the
// upstream defaults in /usr/share/rspamd/config and reads local changes from /etc/rspamd: the
// rspamd-config ConfigMap is mounted twice, as local.d (merged into the defaults) and override.d
// (replaces them: worker sockets). Rspamd runs as a sidecar of Postfix, reached on loopback only.
//
// Rspamd also signs: one milter checks inbound mail (SPF, DKIM, DMARC, ARC, spam score) and signs
// authenticated mail, so the OpenDKIM sidecar (a second root container) is gone.
import { PATHS, POD_LOCAL } from "./model";
import type { MailModel } from "./model";

/** The map of recipients exempt from the per-user limit: empty (a file map, as Rspamd cannot load an empty inline list). */
export const RATELIMIT_EXEMPT_RCPTS = "ratelimit_whitelisted_rcpts.map";

/** The files of the rspamd-config ConfigMap: `local.d/<name>` and `override.d/<name>` (flattened keys). */
export function rspamdFiles(m: MailModel): { local: Record<string, string>; override: Record<string, string> } {
  const t = m.rspamd.thresholds;
  const loopback = (port: number) => `bind_socket = "127.0.0.1:${port}";`;
  const local: Record<string, string> = {
    // The image logs to the console already; stated for any other packaging of the same config.
    "logging.inc": 'type = "console";\nlevel = "notice";\n',
    "redis.conf": `servers = "127.0.0.1:${POD_LOCAL.redis}";\n`,
    "actions.conf": [
      `reject = ${t.reject};`,
      `add_header = ${t.addHeader};`,
      `greylist = ${m.rspamd.greylisting ? t.greylist : "null"};`,
      "",
    ].join("\n"),
    "greylist.conf": `enabled = ${m.rspamd.greylisting};\n`,
    // DMARC policies are enforced, not only scored: p=reject is refused, p=quarantine tagged.
    "dmarc.conf": 'actions {\n  reject = "reject";\n  quarantine = "add_header";\n}\n',
    // Results on every delivered message, spam flags on those over add_header.
    "milter_headers.conf": 'use = ["authentication-results", "x-spam-status", "x-spamd-bar"];\nauthenticated_headers = ["authentication-results"];\n',
    // Per authenticated user on 465/587 (a leaky bucket: `burst` messages at once, refilled at the
    // rate). Rspamd answers the message over the limit at the end of DATA with a soft reject (451).
    "ratelimit.conf": [
      "rates {",
      "  user = {",
      // A message counts once whatever its recipients (smtpd_recipient_limit caps those): counted
      // per recipient, a message to more recipients than the burst could never leave.
      `    bucket = { burst = ${m.rspamd.userRateLimit.burst}; rate = "${m.rspamd.userRateLimit.perHour} / 1h"; skip_recipients = true; }`,
      "  }",
      "}",
      // Rspamd's default exempts any message with a postmaster@ or mailer-daemon@ recipient (of
      // any domain): one extra recipient would lift the limit. The empty list exempts nothing.
      `whitelisted_rcpts = "${PATHS.rspamdLocal}/${RATELIMIT_EXEMPT_RCPTS}";`,
      // The bucket stays what config says. Rspamd 3.4 grows it by 2% (rate 1%) with every message
      // it scores as ham, up to 10x (5x); 3.9 adapts only with dynamic_rate_limit.
      "dynamic_rate_limit = false;",
      "max_rate_mult = 1;",
      "max_bucket_mult = 1;",
      "",
    ].join("\n"),
    [RATELIMIT_EXEMPT_RCPTS]: "# No recipient exempts a message from the per-user limit (ratelimit.conf).\n",
    "dkim_signing.conf": [
      "# Sign what authenticated users send, for the mail domain only, with the generated key.",
      "sign_authenticated = true;",
      "sign_local = false;",
      "sign_inbound = false;",
      'use_domain = "header";',
      "use_esld = false;",
      "try_fallback = false;",
      "allow_username_mismatch = true;",
      "domain {",
      `  ${m.domain} {`,
      `    selector = "${m.selector}";`,
      `    path = "${PATHS.dkimKey}/dkim.private";`,
      "  }",
      "}",
      "",
    ].join("\n"),
  };
  if (m.clamav) {
    local["antivirus.conf"] = [
      "clamav {",
      '  type = "clamav";',
      `  servers = "127.0.0.1:${POD_LOCAL.clamd}";`,
      '  symbol = "CLAM_VIRUS";',
      '  action = "reject";',
      "  scan_mime_parts = true;",
      "  log_clean = false;",
      "}",
      "",
    ].join("\n");
  }
  const override: Record<string, string> = {
    // The milter (rspamd_proxy scanning in-process) and the other workers on loopback: only Postfix talks to them.
    "worker-proxy.inc": [loopback(POD_LOCAL.milter), "milter = yes;", "timeout = 120s;", "upstream \"local\" {", "  default = yes;", "  self_scan = yes;", "}", ""].join("\n"),
    "worker-normal.inc": `${loopback(POD_LOCAL.rspamdNormal)}\n`,
    "worker-controller.inc": `${loopback(POD_LOCAL.rspamdController)}\n`,
    // Only the pod itself is "local": every other client, in-cluster ones included, is checked
    // (Rspamd skips SPF, DMARC and rate limits for local addresses, and its default list holds
    // every RFC 1918 range). In override.d because local.d would append to that list.
    "options.inc": 'local_addrs = ["127.0.0.0/8", "::1"];\n',
  };
  return { local, override };
}

/** Flattened ConfigMap data: local.d files as-is, override.d files prefixed (mounted through `items`). */
export const OVERRIDE_PREFIX = "override.d_";

/** Redis for Rspamd, as arguments to redis-server: loopback only, memory only (its state is rebuilt). */
export function rspamdRedisArgs(): string[] {
  return ["--bind", "127.0.0.1", "--port", String(POD_LOCAL.redis), "--save", "", "--appendonly", "no", "--maxmemory", "96mb", "--maxmemory-policy", "allkeys-lru"];
}
