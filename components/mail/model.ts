// The mail tier's plan, derived from config alone (pure): names, ports, paths and the coupling
// between Postfix and Dovecot. The renderers and the component read only this, so a test can
// check a rendered file against the same numbers the Services and NetworkPolicies use.
import type { PlatformConfig } from "../../config/schema";
import { PORTS, serviceHost } from "../lib/ports";

/**
 * Dovecot runs without root, so it cannot bind ports below 1024: every listener is on a high
 * container port and the Services map the well-known ports to them (143 -> 10143, 24 -> 10024).
 */
export const DOVECOT_PORTS = { imap: 10143, imaps: 10993, pop3: 10110, pop3s: 10995, lmtp: 10024, auth: PORTS.dovecot.auth, metrics: PORTS.dovecot.metrics } as const;

/** Ports the load balancer sends PROXY-protocol traffic to (plain ports stay for in-cluster clients). */
export const PROXY_PORTS = {
  postfix: { smtp: 10025, smtps: 10465, submission: 10587 },
  dovecot: { imap: 11143, imaps: 11993, pop3: 11110, pop3s: 11995 },
} as const;

/** Loopback ports inside the Postfix pod: Rspamd's milter and controller, its Redis, clamd, showq for the exporter. */
export const POD_LOCAL = { milter: 11332, rspamdNormal: 11333, rspamdController: 11334, redis: 6379, clamd: 3310, showq: 10026 } as const;

/** Where the pods find what the program mounts. Secret volumes are whole-directory mounts (no subPath) so renewals arrive. */
export const PATHS = {
  tls: "/etc/mail-tls",
  postfixConfig: "/etc/postfix-k8s",
  postfixQueue: "/var/spool/postfix",
  relay: "/etc/postfix-relay",
  /** Postfix's log file (maillog_file), on an emptyDir the exporter reads; run.sh also copies it to stdout. */
  maillog: "/var/log/postfix",
  dkimKey: "/etc/rspamd-dkim",
  /** The image's local configuration directory (upstream defaults stay in /usr/share/rspamd/config). */
  rspamdLocal: "/etc/rspamd/local.d",
  rspamdOverride: "/etc/rspamd/override.d",
  rspamdData: "/var/lib/rspamd",
  dovecotConfig: "/etc/dovecot",
  dovecotUsers: "/etc/dovecot-users",
  /** Dovecot's base_dir (sockets, pid), on an emptyDir: the root filesystem is read-only. */
  dovecotRun: "/run/dovecot",
  dovecotState: "/var/lib/dovecot",
  mail: "/srv/mail",
} as const;

/** The StatefulSets' governing (headless) Services: each replica is <set>-<n>.<service>.<ns>.svc.cluster.local. */
export const HEADLESS = { postfix: "postfix-headless", dovecot: "dovecot-headless" } as const;

/** The DNS name of one replica of a mail StatefulSet (exists while the pod does, ready or not). */
export function replicaHost(daemon: keyof typeof HEADLESS, ordinal: number, namespace: string): string {
  return `${daemon}-${ordinal}.${HEADLESS[daemon]}.${namespace}.svc.cluster.local`;
}

/** vmail in the dovecot/dovecot image (useradd -u 1000): every Dovecot process runs as it. */
export const VMAIL_UID = 1000;
/** The rspamd/rspamd image's user and group (USER 11333:11333). */
export const RSPAMD_UID = 11333;
/** redis:*-alpine's redis user (999, group 1000). */
export const REDIS_UID = 999;

export interface ExternalPort {
  name: string;
  /** Port clients use (Service port). */
  port: number;
  /** Container port the load balancer reaches (differs only with PROXY protocol). */
  targetPort: number;
}

export interface MailModel {
  domain: string;
  hostname: string;
  namespace: string;
  dovecotHost: string;
  lmtp: { host: string; port: number };
  auth: { host: string; port: number };
  users: string[];
  addresses: string[];
  postmaster: string;
  selector: string;
  proxy: boolean;
  trustedNetworks: string[];
  minProtocol: "TLSv1.2" | "TLSv1.3";
  messageSizeLimit: number;
  recipientLimit: number;
  relay?: { host: string; port: number; username?: string; tls: "secure" | "encrypt"; caPem?: string };
  limits: PlatformConfig["mail"]["postfix"]["limits"] & { anvilUnitSeconds: number };
  postscreen: PlatformConfig["mail"]["postscreen"];
  rspamd: { thresholds: PlatformConfig["mail"]["rspamd"]["thresholds"]; greylisting: boolean; userRateLimit: { perHour: number; burst: number } };
  clamav: boolean;
  authFailureDelaySeconds: number;
  /** Container ports of Dovecot's Service ports (the graph and NetworkPolicies use these). */
  dovecotPorts: typeof DOVECOT_PORTS;
  /** Shared mailbox volume (ReadWriteMany): Dovecot must not trust mmap or cached indexes. */
  sharedMailboxes: boolean;
  external: { postfix: ExternalPort[]; dovecot: ExternalPort[] };
}

export function mailModel(cfg: PlatformConfig): MailModel {
  const m = cfg.mail;
  if (!m.domain) throw new Error("mail.domain is required (the schema enforces it)");
  const namespace = cfg.platform.mailNamespace;
  const dovecotHost = serviceHost("dovecot", namespace);
  const proxy = m.exposure.proxyProtocol.enabled;
  const ext = <K extends string>(ports: Record<K, number>, proxied: Record<K, number>): ExternalPort[] =>
    (Object.keys(ports) as K[]).map((name) => ({ name, port: ports[name], targetPort: proxy ? proxied[name] : ports[name] }));
  return {
    domain: m.domain,
    hostname: m.hostname ?? `mail.${m.domain}`,
    namespace,
    dovecotHost,
    lmtp: { host: dovecotHost, port: PORTS.dovecot.lmtp },
    auth: { host: dovecotHost, port: PORTS.dovecot.auth },
    users: m.users,
    addresses: m.users.map((u) => `${u}@${m.domain}`),
    postmaster: `${m.postmaster}@${m.domain}`,
    selector: m.postfix.dkim.selector,
    proxy,
    trustedNetworks: m.exposure.proxyProtocol.trustedNetworks,
    minProtocol: m.tls.minProtocol,
    messageSizeLimit: m.postfix.messageSizeLimit,
    recipientLimit: m.postfix.recipientLimit,
    relay: m.relay,
    limits: { ...m.postfix.limits, anvilUnitSeconds: anvilUnit(m.postfix.limits.messageRate) },
    postscreen: m.postscreen,
    rspamd: { thresholds: m.rspamd.thresholds, greylisting: m.rspamd.greylisting, userRateLimit: m.postfix.submission.userRateLimit },
    clamav: m.clamav.enabled,
    authFailureDelaySeconds: m.dovecot.authFailureDelaySeconds,
    dovecotPorts: DOVECOT_PORTS,
    sharedMailboxes: m.dovecot.storage.accessMode === "ReadWriteMany",
    external: {
      postfix: ext({ smtp: PORTS.postfix.smtp, smtps: PORTS.postfix.smtps, submission: PORTS.postfix.submission }, PROXY_PORTS.postfix),
      dovecot: ext({ imap: DOVECOT_PORTS.imap, imaps: DOVECOT_PORTS.imaps, pop3: DOVECOT_PORTS.pop3, pop3s: DOVECOT_PORTS.pop3s }, PROXY_PORTS.dovecot).map((p, i) => ({
        ...p,
        port: [PORTS.dovecot.imap, PORTS.dovecot.imaps, PORTS.dovecot.pop3, PORTS.dovecot.pop3s][i],
      })),
    },
  };
}

/** anvil_rate_time_unit in seconds: the window in which `burst` messages may arrive (burst / rate). */
export function anvilUnit(rate: { perMinute: number; burst: number }): number {
  return (60 * rate.burst) / rate.perMinute;
}

/** A per-minute client rate as Postfix counts it: per anvil unit. */
export function perAnvilUnit(perMinute: number, unitSeconds: number): number {
  return (perMinute * unitSeconds) / 60;
}
