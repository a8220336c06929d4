// Postfix and Dovecot (seed 000's mail tier, seed 003's limits and TLS floor).
// The domain is per deployment, so it has no default: each stack file names it.
import { z } from "zod";
import type { Environment } from "./common";
import { cidr, hostname, image, perEnv, port, res, resources, storage } from "./common";
import { backupSchema } from "./backups";
import { backupDefaults } from "./data";

/** A mailbox local part ("info" in info@example.com); the address is <name>@<mail.domain>. */
export const localPart = z.string().regex(/^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$/, "must be a mailbox name such as info or no-reply (lowercase)");

/**
 * Postfix's anvil counts per client and per time unit (anvil_rate_time_unit, one for every rate).
 * Seed 003 asks for 100 messages a minute with a burst of 20: the unit becomes burst / rate
 * (12 s) and the message limit the burst, so the 21st message inside one unit is refused with a
 * temporary error while the long-run rate stays at 100 a minute. Every other per-minute rate is
 * then expressed per that unit, which is why it must divide evenly.
 */
const limitsSchema = z
  .strictObject({
    /** Connections postscreen holds at once before it answers 421 (seed 003: 10000). */
    maxConnections: z.number().int().min(1).max(100_000),
    /** smtpd processes serving clients that passed postscreen (the port 25 listener's process limit). */
    smtpdProcesses: z.number().int().min(1).max(10_000),
    /** Concurrent connections from one client address. */
    connectionsPerClient: z.number().int().min(1).max(10_000),
    /** New connections per minute from one client address. */
    connectionRatePerMinute: z.number().int().min(1),
    /** Messages per minute from one client address on port 25, and how many may come at once. */
    messageRate: z.strictObject({ perMinute: z.number().int().min(1), burst: z.number().int().min(1) }),
    /** SASL AUTH commands per minute from one client on 465/587 (slows password guessing). */
    authRatePerMinute: z.number().int().min(1),
    /** Seed 003: 300 s; smtpd's read/write timeout. */
    timeoutSeconds: z.number().int().min(10).max(3600),
  })
  .superRefine((l, ctx) => {
    const unit = (60 * l.messageRate.burst) / l.messageRate.perMinute;
    if (l.messageRate.burst > l.messageRate.perMinute) {
      ctx.addIssue({ code: "custom", path: ["messageRate", "burst"], message: `must not exceed messageRate.perMinute (${l.messageRate.perMinute})` });
      return;
    }
    if (!Number.isInteger(unit)) {
      ctx.addIssue({ code: "custom", path: ["messageRate", "burst"], message: `must make 60 * burst / perMinute a whole number of seconds (Postfix's anvil_rate_time_unit); ${l.messageRate.burst} / ${l.messageRate.perMinute} gives ${unit.toFixed(2)} s` });
      return;
    }
    for (const key of ["connectionRatePerMinute", "authRatePerMinute"] as const) {
      const perUnit = (l[key] * unit) / 60;
      if (!Number.isInteger(perUnit) || perUnit < 1) {
        ctx.addIssue({ code: "custom", path: [key], message: `must be a multiple of ${60 / gcd(60, unit)} (Postfix counts per ${unit} s, the unit messageRate sets, and needs a whole number per unit)` });
      }
    }
  });

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

const dnsblSite = z.strictObject({
  /** DNSBL zone, optionally with a result filter: zen.spamhaus.org=127.0.0.[2..11] */
  zone: z.string().regex(/^[a-z0-9.-]+\.[a-z]{2,}(=[0-9.[\];.]+)?$/, "must be a DNSBL zone such as zen.spamhaus.org or zone=127.0.0.[2..11]"),
  weight: z.number().int().min(-10).max(10),
});

const postscreenSchema = z
  .strictObject({
    /** Postscreen in front of smtpd on port 25 (and its PROXY-protocol twin). */
    enabled: z.boolean(),
    /** Seconds postscreen waits before its greeting; a client that talks first is a bot (pregreet test). */
    greetWaitSeconds: z.number().int().min(1).max(30),
    /** DNSBL scoring: the weights of the zones that list a client add up; at the threshold it is refused. */
    dnsbl: z.strictObject({ sites: z.array(dnsblSite), threshold: z.number().int().min(1).max(100) }),
    /** Client networks always let through (skip every test) and always refused. */
    allow: z.array(cidr),
    deny: z.array(cidr),
  })
  .superRefine((p, ctx) => {
    const seen = new Map<string, string>();
    for (const [list, cidrs] of [["allow", p.allow], ["deny", p.deny]] as const) {
      cidrs.forEach((c, i) => {
        const other = seen.get(c);
        if (other && other !== list) ctx.addIssue({ code: "custom", path: [list, i], message: `is also in postscreen.${other}: a network is either allowed or denied` });
        seen.set(c, list);
      });
    }
    if (p.dnsbl.sites.length && p.dnsbl.sites.every((s) => s.weight <= 0)) {
      ctx.addIssue({ code: "custom", path: ["dnsbl", "sites"], message: "must give at least one zone a positive weight (only positive weights can reach the threshold)" });
    }
  });

const rspamdSchema = z
  .strictObject({
    /** rspamd/rspamd (official image) as a milter sidecar of Postfix: SPF, DKIM, DMARC, ARC, spam scoring, DKIM signing. */
    image: image,
    resources: resources,
    /** Rspamd's own Redis (ratelimits, greylisting, DMARC and Bayes state), a sidecar in the same pod. */
    redis: z.strictObject({ image: image, resources: resources }),
    /** Score at which inbound mail is refused, and at which it is delivered with X-Spam headers. */
    thresholds: z.strictObject({ reject: z.number().min(1).max(1000), addHeader: z.number().min(0).max(1000), greylist: z.number().min(0).max(1000) }),
    /** Temporary refusal of first-time senders with a middling score (off: it delays legitimate mail). */
    greylisting: z.boolean(),
  })
  .superRefine((r, ctx) => {
    if (r.thresholds.addHeader >= r.thresholds.reject) ctx.addIssue({ code: "custom", path: ["thresholds", "addHeader"], message: `must be below thresholds.reject (${r.thresholds.reject})` });
    if (r.greylisting && !(r.thresholds.greylist < r.thresholds.reject)) ctx.addIssue({ code: "custom", path: ["thresholds", "greylist"], message: `must be below thresholds.reject (${r.thresholds.reject}) when greylisting is on` });
  });

const clamavSchema = z.strictObject({
  /** clamd sidecar scanned through Rspamd's antivirus module; heavy (about 1.5 GiB for the signatures), opt-in. */
  enabled: z.boolean(),
  image: image,
  resources: resources,
});

const postfixSchema = z.strictObject({
  image: image,
  replicas: z.number().int().min(1).max(10),
  resources: resources,
  /** Each replica owns one queue volume (StatefulSet volumeClaimTemplates, ReadWriteOnce). */
  storage: storage,
  /** Seed 003: max_message_size 26214400 (25 MiB), max_recipients 100. */
  messageSizeLimit: z.number().int().min(1024 * 1024).max(512 * 1024 * 1024),
  recipientLimit: z.number().int().min(1).max(10000),
  /** Port 587: STARTTLS then SASL. "none" is refused: it would send passwords in clear text. */
  submission: z.strictObject({
    tls: z.enum(["required", "none"]),
    /**
     * Per authenticated user (Rspamd ratelimit, leaky bucket): at most `burst` messages at once, refilled
     * at perHour; a message counts once whatever its recipients. The next one gets 451 at DATA.
     */
    userRateLimit: z.strictObject({ perHour: z.number().int().min(1).max(1_000_000), burst: z.number().int().min(1).max(100_000) }),
  }),
  /** The DKIM key Rspamd signs authenticated mail with (docs/mail.md, "DKIM"). */
  dkim: z.strictObject({
    selector: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/, "must be a DKIM selector such as mail or s2026"),
    /** Bump to generate a new key (publish the new DNS record first under a new selector). */
    rotation: z.number().int().min(1),
  }),
  /** Connection and rate limits of the SMTP listeners (seed 003's numbers in prod). */
  limits: limitsSchema,
  /** prometheus postfix_exporter sidecar: queue sizes from showq, deliveries and rejects from the log. */
  exporter: z.strictObject({ image: image, resources: resources }),
});

const dovecotSchema = z.strictObject({
  image: image,
  /** Seconds before a failed login is answered (Dovecot's auth_failure_delay); anvil's per-address penalty grows on top. */
  authFailureDelaySeconds: z.number().int().min(0).max(15),
  replicas: z.number().int().min(1).max(10),
  resources: resources,
  storage: storage.extend({
    /** ReadWriteOnce: one replica owns the mailboxes. ReadWriteMany (e.g. NFS/CephFS class): replicas share them. */
    accessMode: z.enum(["ReadWriteOnce", "ReadWriteMany"]),
  }),
});

export const mailSchema = z
  .strictObject({
    enabled: z.boolean(),
    /** Mail domain: addresses are user@domain; MX/SPF/DKIM/DMARC records are for it. Required. */
    domain: hostname.optional(),
    /** Public name of the mail server (MX target, TLS certificate, HELO). Defaults to mail.<domain>. */
    hostname: hostname.optional(),
    postfix: postfixSchema,
    dovecot: dovecotSchema,
    postscreen: postscreenSchema,
    rspamd: rspamdSchema,
    clamav: clamavSchema,
    /** Nightly copy of every mailbox (doveadm backup, safe while Dovecot runs), like the stores' backups. */
    backup: backupSchema,
    /** Optional smarthost: all outbound mail goes through it. */
    relay: z
      .strictObject({
        host: hostname,
        /** Submission with STARTTLS unless the provider says otherwise. */
        port: port.default(587),
        /** When set, the password comes from the secret config key smtpRelayPassword. */
        username: z.string().min(1).optional(),
        /**
         * secure (default): the relay's certificate must chain to a trusted CA and name the relay
         * host, so nobody in between can collect the relay password. encrypt: TLS without
         * verification, only for a relay whose certificate cannot be verified (then prefer caPem).
         */
        tls: z.enum(["secure", "encrypt"]).default("secure"),
        /** PEM of the private CA that signed the relay's certificate (added to the system CAs). */
        caPem: z.string().regex(/-----BEGIN CERTIFICATE-----[^]*-----END CERTIFICATE-----/, "must be a PEM certificate").optional(),
      })
      .optional(),
    tls: z.strictObject({
      /** cert-manager issuer for the mail hostname; without it a self-signed certificate is generated (dev). */
      issuer: z.strictObject({ name: z.string().min(1), kind: z.enum(["ClusterIssuer", "Issuer"]) }).optional(),
      minProtocol: z.enum(["TLSv1.2", "TLSv1.3"]),
    }),
    /** Mailbox users (names only); passwords are generated and never typed into a file. */
    users: z.array(localPart).min(1, "must list at least one mailbox (postmaster)"),
    /** Receives postmaster@, abuse@ and DMARC reports; must be one of users. */
    postmaster: localPart,
    /** The user the app tier authenticates as on port 587 (credentials land in a Secret in the app namespace). */
    appSender: localPart.optional(),
    dns: z.strictObject({
      dmarcPolicy: z.enum(["none", "quarantine", "reject"]),
      /** Extra SPF mechanisms, e.g. "include:_spf.relay.example" when a relay sends for the domain. */
      spfExtra: z.array(z.string().regex(/^[a-z0-9:._/+-]+$/i, "must be an SPF mechanism")),
    }),
    exposure: z.strictObject({
      /** LoadBalancer in the cloud; NodePort on a laptop cluster. */
      type: z.enum(["LoadBalancer", "NodePort"]),
      annotations: z.record(z.string(), z.string()),
      /** The load balancer prepends a PROXY protocol header (so Postfix/Dovecot see client addresses). */
      proxyProtocol: z.strictObject({
        enabled: z.boolean(),
        /** Addresses the PROXY header is accepted from (Dovecot haproxy_trusted_networks). */
        trustedNetworks: z.array(cidr),
        /** Annotation that tells the cloud load balancer to send the header. */
        annotations: z.record(z.string(), z.string()),
      }),
    }),
  })
  .superRefine((m, ctx) => {
    if (!m.enabled) return;
    if (!m.domain) ctx.addIssue({ code: "custom", path: ["domain"], message: "is required when mail.enabled is true (the domain addresses belong to, e.g. example.com)" });
    if (m.dovecot.replicas > 1 && m.dovecot.storage.accessMode !== "ReadWriteMany") {
      ctx.addIssue({
        code: "custom",
        path: ["dovecot", "replicas"],
        message: `must be 1 unless dovecot.storage.accessMode is ReadWriteMany: two Dovecot servers must not write the same mailboxes on a ReadWriteOnce volume (accessMode is ${m.dovecot.storage.accessMode})`,
      });
    }
    if (m.dovecot.storage.accessMode === "ReadWriteMany" && !m.dovecot.storage.storageClass) {
      ctx.addIssue({ code: "custom", path: ["dovecot", "storage", "storageClass"], message: "is required with ReadWriteMany (name a class that supports it, e.g. an NFS or CephFS class)" });
    }
    if (m.postfix.submission.tls !== "required") {
      ctx.addIssue({ code: "custom", path: ["postfix", "submission", "tls"], message: 'must be "required": submission carries SASL passwords and must never accept them before STARTTLS' });
    }
    const seen = new Set<string>();
    m.users.forEach((u, i) => {
      if (seen.has(u)) ctx.addIssue({ code: "custom", path: ["users", i], message: "is listed twice" });
      seen.add(u);
    });
    if (!m.users.includes(m.postmaster)) ctx.addIssue({ code: "custom", path: ["postmaster"], message: `must be one of mail.users (${m.users.join(", ")})` });
    if (m.appSender && !m.users.includes(m.appSender)) ctx.addIssue({ code: "custom", path: ["appSender"], message: `must be one of mail.users (${m.users.join(", ")})` });
    if (m.relay?.caPem && m.relay.tls !== "secure") {
      ctx.addIssue({ code: "custom", path: ["relay", "caPem"], message: 'is only used with relay.tls "secure" (verification against this CA); remove it or set tls to secure' });
    }
    if (m.exposure.proxyProtocol.enabled && m.exposure.proxyProtocol.trustedNetworks.length === 0) {
      ctx.addIssue({ code: "custom", path: ["exposure", "proxyProtocol", "trustedNetworks"], message: "must list the load balancer's source ranges when PROXY protocol is on" });
    }
  });

export type MailConfig = z.infer<typeof mailSchema>;

export function mailDefaults(env: Environment): z.input<typeof mailSchema> {
  return {
    enabled: true,
    postfix: {
      // Postfix 3.7 on Debian 12 with OpenDKIM; see docs/mail.md ("Images").
      image: "boky/postfix:v4.3.0",
      replicas: perEnv(env, { dev: 1, staging: 1, prod: 2 }),
      resources: perEnv(env, {
        dev: res("50m", "64Mi", "250m", "256Mi"),
        staging: res("100m", "128Mi", "500m", "512Mi"),
        prod: res("250m", "256Mi", "1", "1Gi"),
      }),
      storage: { size: perEnv(env, { dev: "1Gi", staging: "2Gi", prod: "5Gi" }) },
      messageSizeLimit: 26214400,
      recipientLimit: 100,
      submission: { tls: "required", userRateLimit: { perHour: 500, burst: 50 } },
      dkim: { selector: "mail", rotation: 1 },
      limits: {
        maxConnections: perEnv(env, { dev: 100, staging: 1000, prod: 10000 }),
        smtpdProcesses: perEnv(env, { dev: 20, staging: 50, prod: 100 }),
        connectionsPerClient: 10,
        connectionRatePerMinute: 30,
        messageRate: { perMinute: 100, burst: 20 },
        authRatePerMinute: 60,
        timeoutSeconds: 300,
      },
      // Reads showq over a loopback TCP listener and the log from a shared emptyDir (docs/mail.md).
      exporter: { image: "ghcr.io/hsn723/postfix_exporter:0.16.1", resources: res("50m", "64Mi", "100m", "128Mi") },
    },
    dovecot: {
      image: "dovecot/dovecot:2.3.21.1",
      authFailureDelaySeconds: 2,
      // One replica per ReadWriteOnce mailbox volume; more need a ReadWriteMany class (docs/mail.md).
      replicas: 1,
      resources: perEnv(env, {
        dev: res("50m", "64Mi", "250m", "256Mi"),
        staging: res("100m", "256Mi", "500m", "1Gi"),
        prod: res("250m", "512Mi", "1", "2Gi"),
      }),
      storage: { size: perEnv(env, { dev: "1Gi", staging: "5Gi", prod: "10Gi" }), accessMode: "ReadWriteOnce" },
    },
    // The mail volume's size plus the retained archives (compressed mail is roughly half its size).
    backup: backupDefaults(env, "0 3 * * *", { dev: "2Gi", staging: "10Gi", prod: "50Gi" }),
    tls: {
      ...(env === "dev" ? {} : { issuer: { name: perEnv(env, { dev: "", staging: "letsencrypt-staging", prod: "letsencrypt-prod" }), kind: "ClusterIssuer" as const } }),
      minProtocol: "TLSv1.2",
    },
    postscreen: {
      enabled: true,
      greetWaitSeconds: 6,
      // Public DNSBLs refuse queries that arrive through big public resolvers; see docs/mail.md.
      dnsbl: {
        sites: env === "dev" ? [] : [
          { zone: "zen.spamhaus.org=127.0.0.[2..11]", weight: 3 },
          { zone: "bl.spamcop.net", weight: 2 },
          { zone: "b.barracudacentral.org", weight: 1 },
        ],
        threshold: 3,
      },
      allow: [],
      deny: [],
    },
    rspamd: {
      image: "rspamd/rspamd:3.9.0",
      resources: perEnv(env, { dev: res("50m", "128Mi", "500m", "512Mi"), staging: res("100m", "256Mi", "1", "1Gi"), prod: res("250m", "512Mi", "2", "2Gi") }),
      redis: { image: "redis:7.4.1-alpine", resources: res("50m", "64Mi", "250m", "256Mi") },
      thresholds: { reject: 15, addHeader: 6, greylist: 4 },
      greylisting: false,
    },
    clamav: { enabled: false, image: "clamav/clamav:1.4.3", resources: res("250m", "1536Mi", "1", "3Gi") },
    users: ["postmaster", "noreply"],
    postmaster: "postmaster",
    appSender: "noreply",
    dns: { dmarcPolicy: perEnv(env, { dev: "none", staging: "none", prod: "quarantine" }), spfExtra: [] },
    exposure: {
      type: env === "dev" ? "NodePort" : "LoadBalancer",
      annotations: {},
      proxyProtocol: {
        enabled: false,
        trustedNetworks: [],
        annotations: { "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol": "*" },
      },
    },
  };
}
