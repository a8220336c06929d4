// The mail tier's plan, derived from config alone (pure): names, ports, paths and the coupling
// between Postfix and Dovecot. The renderers and the component read only this, so a test can
// check a rendered file against the same numbers the Services and NetworkPolicies use.
import type { PlatformConfig } from "../../config/schema";
import { PORTS, serviceHost } from "../lib/ports";

/** Ports the load balancer sends PROXY-protocol traffic to (plain ports stay for in-cluster clients). */
export const PROXY_PORTS = {
  postfix: { smtp: 10025, smtps: 10465, submission: 10587 },
  dovecot: { imap: 10143, imaps: 10993, pop3: 10110, pop3s: 10995 },
} as const;

/** Where the pods find what the program mounts. Secret volumes are whole-directory mounts (no subPath) so renewals arrive. */
export const PATHS = {
  tls: "/etc/mail-tls",
  postfixConfig: "/etc/postfix-k8s",
  postfixQueue: "/var/spool/postfix",
  relay: "/etc/postfix-relay",
  dkimKey: "/etc/opendkim-key",
  /** The key as OpenDKIM reads it: copied out of the Secret volume (a world-writable tmpfs root, which RequireSafeKeys refuses). */
  dkimKeyRuntime: "/run/opendkim-key",
  dovecotConfig: "/etc/dovecot",
  dovecotUsers: "/etc/dovecot-users",
  /** The passwd-file as Dovecot reads it: copied at start, readable by root and the dovecot group only. */
  dovecotUsersRuntime: "/run/dovecot-auth/users",
  mail: "/srv/mail",
} as const;

/** OpenDKIM milter, loopback only (same pod as Postfix). */
export const MILTER_PORT = 8891;
/** vmail in the dovecot/dovecot image (useradd -u 1000). */
export const VMAIL_UID = 1000;

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
  relay?: { host: string; port: number; username?: string };
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
    sharedMailboxes: m.dovecot.storage.accessMode === "ReadWriteMany",
    external: {
      postfix: ext({ smtp: PORTS.postfix.smtp, smtps: PORTS.postfix.smtps, submission: PORTS.postfix.submission }, PROXY_PORTS.postfix),
      dovecot: ext({ imap: PORTS.dovecot.imap, imaps: PORTS.dovecot.imaps, pop3: PORTS.dovecot.pop3, pop3s: PORTS.dovecot.pop3s }, PROXY_PORTS.dovecot),
    },
  };
}
