// Postfix and Dovecot (seed 000's mail tier, seed 003's limits and TLS floor). Issue #5.
// The domain is per deployment, so it has no default: each stack file names it.
import { z } from "zod";
import type { Environment } from "./common";
import { cidr, hostname, image, perEnv, port, res, resources, storage } from "./common";
import { backupDefaults, backupSchema } from "./data";

/** A mailbox local part ("info" in info@example.com); the address is <name>@<mail.domain>. */
export const localPart = z.string().regex(/^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$/, "must be a mailbox name such as info or no-reply (lowercase)");

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
  submission: z.strictObject({ tls: z.enum(["required", "none"]) }),
  /** OpenDKIM milter sidecar (same image as Postfix) that signs authenticated mail. */
  dkim: z.strictObject({
    selector: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/, "must be a DKIM selector such as mail or s2026"),
    /** Bump to generate a new key (publish the new DNS record first under a new selector). */
    rotation: z.number().int().min(1),
    resources: resources,
  }),
});

const dovecotSchema = z.strictObject({
  image: image,
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
      submission: { tls: "required" },
      dkim: { selector: "mail", rotation: 1, resources: res("10m", "32Mi", "100m", "128Mi") },
    },
    dovecot: {
      image: "dovecot/dovecot:2.3.21.1",
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
