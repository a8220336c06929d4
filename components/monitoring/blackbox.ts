// Per-port availability of the mail tier: Prometheus's blackbox exporter speaks each protocol to
// each port of each mail replica (SMTP banner, EHLO, STARTTLS; implicit TLS on 465/993/995; the
// IMAP and POP3 greetings), and Prometheus Operator Probe objects have Prometheus ask it every
// scrape interval. The readiness probes check port 25 and 143 only, so a dead 465 listener, or
// 587 without AUTH, leaves the pod ready; these probes name the port. Pure functions of config;
// components/monitoring/index.ts registers the objects (only when monitoring and mail are on).
import type * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import { mailProbeScrapeTimeoutSeconds, mailProbeTimeoutSeconds } from "../../config/observability";
import type { PlatformConfig } from "../../config/schema";
import { labels, selectorLabels } from "../lib/labels";
import { checksum, restrictedContainer, restrictedPod } from "../lib/pod";
import { PORTS, serviceHost } from "../lib/ports";
import { DOVECOT_PORTS, replicaHost } from "../mail/model";
import { scheduled } from "../lib/scheduling";

export const BLACKBOX = "blackbox-exporter";
/** The image's config path (mounted from the ConfigMap over the image's own example). */
export const BLACKBOX_CONFIG_DIR = "/etc/blackbox_exporter";
/** nobody in the image's busybox base: the image sets no USER, so the pod names one. */
const BLACKBOX_UID = 65534;

/** How long one probe may take (config/observability.ts: postscreen's greeting delay plus slack). */
export function probeTimeoutSeconds(cfg: PlatformConfig): number {
  return mailProbeTimeoutSeconds(cfg.mail.postscreen);
}

/** The Probes' scrape timeout (one second more: the exporter keeps 0.5 s for itself). */
export function probeScrapeTimeoutSeconds(cfg: PlatformConfig): number {
  return mailProbeScrapeTimeoutSeconds(cfg.mail.postscreen);
}

export type MailProtocol = "smtp" | "submission" | "smtps" | "imap" | "imaps" | "pop3" | "pop3s";

export interface MailProbe {
  protocol: MailProtocol;
  daemon: "postfix" | "dovecot";
  /** The Service port clients use (the alert's `port` label). */
  port: number;
  /** The container port the probe connects to (the replica's own address; Dovecot is rootless on high ports). */
  targetPort: number;
  module: string;
}

/** Every public mail port, with the blackbox module that speaks its protocol. */
export const MAIL_PROBES: readonly MailProbe[] = [
  { protocol: "smtp", daemon: "postfix", port: PORTS.postfix.smtp, targetPort: PORTS.postfix.smtp, module: "smtp_starttls" },
  { protocol: "submission", daemon: "postfix", port: PORTS.postfix.submission, targetPort: PORTS.postfix.submission, module: "submission_starttls" },
  { protocol: "smtps", daemon: "postfix", port: PORTS.postfix.smtps, targetPort: PORTS.postfix.smtps, module: "submission_tls" },
  { protocol: "imap", daemon: "dovecot", port: PORTS.dovecot.imap, targetPort: DOVECOT_PORTS.imap, module: "imap_starttls" },
  { protocol: "imaps", daemon: "dovecot", port: PORTS.dovecot.imaps, targetPort: DOVECOT_PORTS.imaps, module: "imaps" },
  { protocol: "pop3", daemon: "dovecot", port: PORTS.dovecot.pop3, targetPort: DOVECOT_PORTS.pop3, module: "pop3_starttls" },
  { protocol: "pop3s", daemon: "dovecot", port: PORTS.dovecot.pop3s, targetPort: DOVECOT_PORTS.pop3s, module: "pop3s" },
];

/** Probe targets of one port: every replica by its own DNS name, so one bad pod is named, not averaged away. */
export function probeTargets(cfg: PlatformConfig, p: MailProbe): string[] {
  const replicas = cfg.mail[p.daemon].replicas;
  return Array.from({ length: replicas }, (_, i) => `${replicaHost(p.daemon, i, cfg.platform.mailNamespace)}:${p.targetPort}`);
}

type Step = { expect?: string; send?: string; starttls?: boolean };

/**
 * The exporter's modules. Each `expect` reads lines until one matches (Go regexp); each `send` is
 * written with "\n" appended, so the "\r" here makes it CRLF. Submission (587, 465) must offer
 * AUTH after TLS: without Dovecot's auth service smtpd has no mechanism and submission is down
 * even though the port answers. The certificate chain is not verified: staging's Let's Encrypt
 * staging root and a self-signed certificate are in no trust store; MailCertificateExpiringSoon
 * watches the certificate itself.
 */
export function blackboxConfig(cfg: PlatformConfig): { modules: Record<string, unknown> } {
  const hostname = cfg.mail.hostname ?? `mail.${cfg.mail.domain}`;
  const helo = `EHLO ${serviceHost(BLACKBOX, cfg.platform.mailNamespace)}\r`;
  const smtpStarttls = (auth: boolean): Step[] => [
    { expect: "^220 ", send: helo },
    { expect: "^250[ -]STARTTLS", send: "STARTTLS\r" },
    { expect: "^220 ", starttls: true },
    { send: helo },
    { expect: auth ? "^250[ -]AUTH " : "^250 ", send: "QUIT\r" },
  ];
  const imapCapability = (tag: string): Step[] => [
    { send: `${tag} CAPABILITY\r` },
    { expect: "^\\* CAPABILITY .*AUTH=PLAIN" },
    { expect: `^${tag} OK`, send: "z LOGOUT\r" },
  ];
  const pop3Capability: Step[] = [{ send: "CAPA\r" }, { expect: "^SASL .*PLAIN" }, { expect: "^\\.$", send: "QUIT\r" }];
  const steps: Record<string, { tls: boolean; steps: Step[] }> = {
    smtp_starttls: { tls: false, steps: smtpStarttls(false) },
    submission_starttls: { tls: false, steps: smtpStarttls(true) },
    submission_tls: { tls: true, steps: [{ expect: "^220 ", send: helo }, { expect: "^250[ -]AUTH ", send: "QUIT\r" }] },
    imap_starttls: { tls: false, steps: [{ expect: "^\\* OK", send: "a STARTTLS\r" }, { expect: "^a OK", starttls: true }, ...imapCapability("b")] },
    imaps: { tls: true, steps: [{ expect: "^\\* OK" }, ...imapCapability("a")] },
    pop3_starttls: { tls: false, steps: [{ expect: "^\\+OK", send: "STLS\r" }, { expect: "^\\+OK", starttls: true }, ...pop3Capability] },
    pop3s: { tls: true, steps: [{ expect: "^\\+OK" }, ...pop3Capability] },
  };
  const modules = Object.fromEntries(
    Object.entries(steps).map(([name, m]) => [
      name,
      {
        prober: "tcp",
        timeout: `${probeTimeoutSeconds(cfg)}s`,
        tcp: {
          // IPv4 first, IPv6 only as fallback (the exporter's default is the other way round).
          preferred_ip_protocol: "ip4",
          tls: m.tls,
          tls_config: { server_name: hostname, insecure_skip_verify: true },
          query_response: m.steps,
        },
      },
    ]),
  );
  return { modules };
}

/** The rendered config file: JSON is YAML. */
export function blackboxConfigText(cfg: PlatformConfig): string {
  return JSON.stringify(blackboxConfig(cfg), null, 2) + "\n";
}

/** The exporter's Deployment spec: one restricted pod, nothing written, TCP probes need no capability. */
export function blackboxDeploymentSpec(cfg: PlatformConfig, refs: { serviceAccount: pulumi.Input<string>; configMap: pulumi.Input<string> }): k8s.types.input.apps.v1.DeploymentSpec {
  const b = cfg.monitoring.blackbox;
  const id = { name: BLACKBOX, component: "monitoring", image: b.image };
  const health = { httpGet: { path: "/-/healthy", port: "metrics" }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 };
  return {
    replicas: 1,
    selector: { matchLabels: selectorLabels(cfg, id) },
    template: {
      metadata: { labels: labels(cfg, id), annotations: { "checksum/config": checksum(blackboxConfigText(cfg)) } },
      spec: scheduled(cfg, "observability", {
        serviceAccountName: refs.serviceAccount,
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        securityContext: restrictedPod({ uid: BLACKBOX_UID }),
        containers: [
          {
            name: BLACKBOX,
            image: b.image,
            args: [`--config.file=${BLACKBOX_CONFIG_DIR}/config.yml`, `--web.listen-address=:${PORTS.blackbox.metrics}`],
            ports: [{ name: "metrics", containerPort: PORTS.blackbox.metrics, protocol: "TCP" }],
            resources: b.resources,
            securityContext: restrictedContainer({ runAsUser: BLACKBOX_UID }),
            readinessProbe: health,
            livenessProbe: { ...health, periodSeconds: 30 },
            volumeMounts: [{ name: "config", mountPath: BLACKBOX_CONFIG_DIR, readOnly: true }],
          },
        ],
        volumes: [{ name: "config", configMap: { name: refs.configMap } }],
      }),
    },
  };
}

/** One Probe per mail port: the replicas as static targets, labelled with the port, the protocol and the pod. */
export function mailProbeSpec(cfg: PlatformConfig, p: MailProbe): Record<string, unknown> {
  return {
    interval: cfg.monitoring.scrapeInterval,
    scrapeTimeout: `${probeScrapeTimeoutSeconds(cfg)}s`,
    module: p.module,
    prober: { url: `${serviceHost(BLACKBOX, cfg.platform.mailNamespace)}:${PORTS.blackbox.metrics}`, path: "/probe" },
    targets: {
      staticConfig: {
        static: probeTargets(cfg, p),
        labels: { protocol: p.protocol, port: String(p.port) },
        // The target is <pod>.<headless service>.<ns>...: the pod label names the replica.
        relabelingConfigs: [{ sourceLabels: ["__param_target"], regex: "([^.]+)\\..*", targetLabel: "pod", replacement: "$1", action: "replace" }],
      },
    },
  };
}
