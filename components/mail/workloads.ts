// StatefulSet specs for Postfix (+ Rspamd, its Redis, the metrics exporter and optionally clamd as
// sidecars) and Dovecot, as plain data. Secrets are mounted as whole volumes (never subPath) so a
// renewed certificate or a new user list reaches running pods; run.sh in each container reloads
// the daemon when they change.
import type * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import type { PlatformConfig } from "../../config/schema";
import { labels, selectorLabels } from "../lib/labels";
import { execProbe, scratchVolume, spread } from "../lib/pod";
import { PORTS } from "../lib/ports";
import { DOVECOT_PORTS, HEADLESS, PATHS, POD_LOCAL, PROXY_PORTS, REDIS_UID, RSPAMD_UID, VMAIL_UID } from "./model";
import type { MailModel } from "./model";
import { MAILLOG_MAX_BYTES } from "./postfix";
import { OVERRIDE_PREFIX, rspamdRedisArgs } from "./rspamd";
import { IMAP_GREETING, LINT_EXCEPTIONS, SMTP_GREETING, lintIgnoreAnnotations, mailContainerSecurity, protocolProbes, unprivileged } from "./security";
import { scheduled } from "../lib/scheduling";

type StatefulSetSpec = k8s.types.input.apps.v1.StatefulSetSpec;
type ContainerPort = k8s.types.input.core.v1.ContainerPort;
type Volume = k8s.types.input.core.v1.Volume;
type Container = k8s.types.input.core.v1.Container;

export interface WorkloadRefs {
  serviceAccount: pulumi.Input<string>;
  configMap: pulumi.Input<string>;
  tlsSecret: pulumi.Input<string>;
  configChecksum: pulumi.Input<string>;
}

const secretVolume = (name: string, secretName: pulumi.Input<string>, mode = 0o400): Volume => ({ name, secret: { secretName, defaultMode: mode } });

function claimTemplate(name: string, size: string, storageClass: string | undefined, accessMode: string): k8s.types.input.core.v1.PersistentVolumeClaim {
  return {
    metadata: { name },
    spec: { accessModes: [accessMode], ...(storageClass ? { storageClassName: storageClass } : {}), resources: { requests: { storage: size } } },
  };
}

/** Named container ports; the PROXY-protocol twins exist only when the load balancer sends PROXY headers. */
export function proxyPortName(name: string): string {
  return `${name === "submission" ? "submit" : name}-proxy`;
}

function ports(m: MailModel, plain: Record<string, number>, proxied: Record<string, number>): ContainerPort[] {
  const out: ContainerPort[] = Object.entries(plain).map(([name, containerPort]) => ({ name, containerPort, protocol: "TCP" }));
  if (m.proxy) for (const [name, containerPort] of Object.entries(proxied)) out.push({ name: proxyPortName(name), containerPort, protocol: "TCP" });
  return out;
}

/** The annotations the Postfix StatefulSet carries: the outside linter's accepted findings, with reasons. */
export function postfixAnnotations(): Record<string, string> {
  return lintIgnoreAnnotations(LINT_EXCEPTIONS);
}

/** clamav/clamav's clamav user (uid 100, gid 101 in the Alpine-based image). */
const CLAMAV_UID = 100;
const CLAMAV_GID = 101;

export function postfixSpec(
  cfg: PlatformConfig,
  m: MailModel,
  refs: WorkloadRefs & { rspamdConfigMap: pulumi.Input<string>; dkimSecret: pulumi.Input<string>; dkimChecksum: pulumi.Input<string>; rspamdChecksum: pulumi.Input<string>; relaySecret?: pulumi.Input<string>; rspamdFiles: { local: string[]; override: string[] } },
): StatefulSetSpec {
  const mc = cfg.mail;
  const p = mc.postfix;
  const id = { name: "postfix", component: "mail", image: p.image };
  const selector = selectorLabels(cfg, id);
  const volumes: Volume[] = [
    { name: "config", configMap: { name: refs.configMap } },
    secretVolume("tls", refs.tlsSecret),
    ...(refs.relaySecret ? [secretVolume("relay", refs.relaySecret)] : []),
    // Twice the size at which run.sh truncates the log, so a busy minute never evicts the pod.
    { name: "maillog", emptyDir: { sizeLimit: `${(4 * MAILLOG_MAX_BYTES) / (1024 * 1024)}Mi` } },
    { name: "rspamd-local", configMap: { name: refs.rspamdConfigMap, items: refs.rspamdFiles.local.map((k) => ({ key: k, path: k })) } },
    { name: "rspamd-override", configMap: { name: refs.rspamdConfigMap, items: refs.rspamdFiles.override.map((k) => ({ key: `${OVERRIDE_PREFIX}${k}`, path: k })) } },
    // Readable by the rspamd user: only the rspamd container mounts it, so no other user sees it.
    secretVolume("dkim-key", refs.dkimSecret, 0o444),
    scratchVolume("rspamd-data", "256Mi"),
    scratchVolume("rspamd-tmp", "256Mi"),
    scratchVolume("redis-data", "64Mi"),
    ...(mc.clamav.enabled ? [scratchVolume("clamav-db", "2Gi"), scratchVolume("clamav-run", "16Mi"), scratchVolume("clamav-tmp", "512Mi")] : []),
  ];
  const local = (cmd: string) => ["sh", "-c", cmd];
  const containers: Container[] = [
    {
      name: "postfix",
      image: p.image,
      // Keeps the image's tini entrypoint (PID 1 reaps and forwards signals) and replaces its
      // env-driven setup with the rendered configuration.
      args: ["/bin/sh", `${PATHS.postfixConfig}/run.sh`],
      ports: ports(m, { smtp: PORTS.postfix.smtp, smtps: PORTS.postfix.smtps, submission: PORTS.postfix.submission }, PROXY_PORTS.postfix),
      resources: p.resources,
      securityContext: mailContainerSecurity("postfix"),
      ...protocolProbes(SMTP_GREETING(PORTS.postfix.smtp)),
      volumeMounts: [
        { name: "config", mountPath: PATHS.postfixConfig, readOnly: true },
        { name: "tls", mountPath: PATHS.tls, readOnly: true },
        { name: "queue", mountPath: PATHS.postfixQueue },
        { name: "maillog", mountPath: PATHS.maillog },
        ...(refs.relaySecret ? [{ name: "relay", mountPath: PATHS.relay, readOnly: true }] : []),
      ],
    },
    {
      name: "rspamd",
      image: mc.rspamd.image,
      // The image's own command (rspamd -f) with the mounted local configuration.
      resources: mc.rspamd.resources,
      securityContext: unprivileged(RSPAMD_UID, RSPAMD_UID),
      // The controller answers on loopback only, so the check runs inside the pod.
      readinessProbe: execProbe(["rspamc", "-h", `127.0.0.1:${POD_LOCAL.rspamdController}`, "stat"], { periodSeconds: 10, timeoutSeconds: 5 }),
      livenessProbe: execProbe(["rspamc", "-h", `127.0.0.1:${POD_LOCAL.rspamdController}`, "stat"], { periodSeconds: 30, timeoutSeconds: 10, failureThreshold: 3 }),
      startupProbe: { ...execProbe(["rspamc", "-h", `127.0.0.1:${POD_LOCAL.rspamdController}`, "stat"], { periodSeconds: 5, timeoutSeconds: 5 }), failureThreshold: 36 },
      volumeMounts: [
        { name: "rspamd-local", mountPath: PATHS.rspamdLocal, readOnly: true },
        { name: "rspamd-override", mountPath: PATHS.rspamdOverride, readOnly: true },
        { name: "dkim-key", mountPath: PATHS.dkimKey, readOnly: true },
        { name: "rspamd-data", mountPath: PATHS.rspamdData },
        { name: "rspamd-tmp", mountPath: "/tmp" },
      ],
    },
    {
      name: "redis",
      image: mc.rspamd.redis.image,
      args: rspamdRedisArgs(),
      resources: mc.rspamd.redis.resources,
      securityContext: unprivileged(REDIS_UID, 1000),
      readinessProbe: execProbe(["redis-cli", "-h", "127.0.0.1", "-p", String(POD_LOCAL.redis), "ping"], { periodSeconds: 10, timeoutSeconds: 5 }),
      livenessProbe: execProbe(["redis-cli", "-h", "127.0.0.1", "-p", String(POD_LOCAL.redis), "ping"], { periodSeconds: 30, timeoutSeconds: 5, failureThreshold: 3 }),
      volumeMounts: [{ name: "redis-data", mountPath: "/data" }],
    },
    {
      name: "exporter",
      image: p.exporter.image,
      args: exporterArgs(),
      ports: [{ name: "metrics", containerPort: PORTS.postfix.metrics, protocol: "TCP" }],
      resources: p.exporter.resources,
      securityContext: unprivileged(65534, 65534),
      readinessProbe: { httpGet: { path: "/metrics", port: "metrics" }, periodSeconds: 15, timeoutSeconds: 5 },
      volumeMounts: [{ name: "maillog", mountPath: PATHS.maillog, readOnly: true }],
    },
    ...(mc.clamav.enabled
      ? [
          {
            name: "clamav",
            image: mc.clamav.image,
            resources: mc.clamav.resources,
            securityContext: unprivileged(CLAMAV_UID, CLAMAV_GID),
            // Loading the signatures takes minutes; freshclam in the image keeps them current.
            startupProbe: { ...execProbe(local(`nc -z 127.0.0.1 ${POD_LOCAL.clamd}`), { periodSeconds: 10, timeoutSeconds: 5 }), failureThreshold: 60 },
            readinessProbe: execProbe(local(`nc -z 127.0.0.1 ${POD_LOCAL.clamd}`), { periodSeconds: 15, timeoutSeconds: 5 }),
            volumeMounts: [
              { name: "clamav-db", mountPath: "/var/lib/clamav" },
              { name: "clamav-run", mountPath: "/run/clamav" },
              { name: "clamav-tmp", mountPath: "/tmp" },
            ],
          },
        ]
      : []),
  ];
  return {
    serviceName: HEADLESS.postfix,
    replicas: p.replicas,
    // Replicas are independent MTAs: start them together; each keeps its own queue volume.
    podManagementPolicy: "Parallel",
    updateStrategy: { type: "RollingUpdate" },
    selector: { matchLabels: selector },
    // A queue is never deleted with the set or on scale-down: undelivered mail stays on its volume.
    persistentVolumeClaimRetentionPolicy: { whenDeleted: "Retain", whenScaled: "Retain" },
    volumeClaimTemplates: [claimTemplate("queue", p.storage.size, p.storage.storageClass, "ReadWriteOnce")],
    template: {
      metadata: {
        labels: labels(cfg, id),
        annotations: {
          "checksum/config": refs.configChecksum,
          "checksum/rspamd": refs.rspamdChecksum,
          "checksum/dkim": refs.dkimChecksum,
          "kubectl.kubernetes.io/default-container": "postfix",
        },
      },
      spec: scheduled(cfg, "mail", {
        serviceAccountName: refs.serviceAccount,
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        // No fsGroup: Postfix owns its queue permissions (postfix:postdrop) and rejects group-writable dirs.
        securityContext: { seccompProfile: { type: "RuntimeDefault" } },
        // Lets in-flight SMTP sessions finish and the queue manager write its state.
        terminationGracePeriodSeconds: 60,
        ...spread(selector),
        containers,
        volumes,
      }),
    },
  };
}

/** postfix_exporter: showq over the loopback TCP listener, the log from the shared file; submission/smtps smtpd lines count as smtpd. */
export function exporterArgs(): string[] {
  return [
    `--web.listen-address=:${PORTS.postfix.metrics}`,
    "--postfix.showq_network=tcp",
    `--postfix.showq_port=${POD_LOCAL.showq}`,
    `--postfix.logfile_path=${PATHS.maillog}/mail.log`,
    // The postfix container's run.sh creates the file, and both containers start together: by
    // default the exporter exits when it is not there yet (a restart at every pod start).
    "--postfix.logfile_must_exist=false",
    ...["smtpd", "submission/smtpd", "smtps/smtpd"].map((l) => `--postfix.smtpd_service_label=${l}`),
  ];
}

export function dovecotSpec(cfg: PlatformConfig, m: MailModel, refs: WorkloadRefs & { usersSecret: pulumi.Input<string>; sharedClaim?: pulumi.Input<string> }): StatefulSetSpec {
  const d = cfg.mail.dovecot;
  const id = { name: "dovecot", component: "mail", image: d.image };
  const selector = selectorLabels(cfg, id);
  const dp = DOVECOT_PORTS;
  return {
    serviceName: HEADLESS.dovecot,
    replicas: d.replicas,
    podManagementPolicy: "OrderedReady",
    updateStrategy: { type: "RollingUpdate" },
    selector: { matchLabels: selector },
    persistentVolumeClaimRetentionPolicy: { whenDeleted: "Retain", whenScaled: "Retain" },
    // ReadWriteOnce: the single replica owns its mailbox volume. ReadWriteMany: one shared claim.
    ...(refs.sharedClaim ? {} : { volumeClaimTemplates: [claimTemplate("mail", d.storage.size, d.storage.storageClass, "ReadWriteOnce")] }),
    template: {
      metadata: {
        labels: labels(cfg, id),
        annotations: { "checksum/config": refs.configChecksum },
      },
      spec: scheduled(cfg, "mail", {
        serviceAccountName: refs.serviceAccount,
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        // Every process is vmail (uid/gid 1000 in the image); the volumes are group-owned by it.
        securityContext: { runAsNonRoot: true, runAsUser: VMAIL_UID, runAsGroup: VMAIL_UID, fsGroup: VMAIL_UID, fsGroupChangePolicy: "OnRootMismatch", seccompProfile: { type: "RuntimeDefault" } },
        terminationGracePeriodSeconds: 30,
        ...spread(selector),
        containers: [
          {
            name: "dovecot",
            image: d.image,
            args: ["/bin/sh", `${PATHS.dovecotConfig}/run.sh`],
            ports: ports(m, { imap: dp.imap, imaps: dp.imaps, pop3: dp.pop3, pop3s: dp.pop3s, lmtp: dp.lmtp, auth: dp.auth, metrics: dp.metrics }, PROXY_PORTS.dovecot),
            resources: d.resources,
            securityContext: unprivileged(VMAIL_UID, VMAIL_UID),
            ...protocolProbes(IMAP_GREETING(dp.imap)),
            volumeMounts: [
              { name: "config", mountPath: PATHS.dovecotConfig, readOnly: true },
              { name: "tls", mountPath: PATHS.tls, readOnly: true },
              { name: "users", mountPath: PATHS.dovecotUsers, readOnly: true },
              { name: "mail", mountPath: PATHS.mail },
              { name: "run", mountPath: PATHS.dovecotRun },
              { name: "state", mountPath: PATHS.dovecotState },
              { name: "tmp", mountPath: "/tmp" },
            ],
          },
        ],
        volumes: [
          { name: "config", configMap: { name: refs.configMap } },
          secretVolume("tls", refs.tlsSecret),
          secretVolume("users", refs.usersSecret),
          scratchVolume("run", "16Mi"),
          scratchVolume("state", "16Mi"),
          scratchVolume("tmp", "64Mi"),
          ...(refs.sharedClaim ? [{ name: "mail", persistentVolumeClaim: { claimName: refs.sharedClaim } }] : []),
        ],
      }),
    },
  };
}
