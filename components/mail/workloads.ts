// StatefulSet specs for Postfix (+ OpenDKIM sidecar) and Dovecot, as plain data. Secrets are
// mounted as whole volumes (never subPath) so a renewed certificate or a new user list reaches
// running pods; run.sh in each container reloads the daemon when they change.
import type * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import type { PlatformConfig } from "../../config/schema";
import { labels, selectorLabels } from "../lib/labels";
import { spread } from "../lib/pod";
import { PORTS } from "../lib/ports";
import { MILTER_PORT, PATHS, PROXY_PORTS, VMAIL_UID } from "./model";
import type { MailModel } from "./model";
import { opendkimCommand } from "./postfix";
import { IMAP_GREETING, SMTP_GREETING, mailContainerSecurity, protocolProbes } from "./security";

type StatefulSetSpec = k8s.types.input.apps.v1.StatefulSetSpec;
type ContainerPort = k8s.types.input.core.v1.ContainerPort;
type Volume = k8s.types.input.core.v1.Volume;

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

export function postfixSpec(
  cfg: PlatformConfig,
  m: MailModel,
  refs: WorkloadRefs & { dkimSecret: pulumi.Input<string>; dkimChecksum: pulumi.Input<string>; relaySecret?: pulumi.Input<string> },
): StatefulSetSpec {
  const p = cfg.mail.postfix;
  const id = { name: "postfix", component: "mail", image: p.image };
  const selector = selectorLabels(cfg, id);
  const volumes: Volume[] = [
    { name: "config", configMap: { name: refs.configMap } },
    secretVolume("tls", refs.tlsSecret),
    secretVolume("dkim-key", refs.dkimSecret),
    ...(refs.relaySecret ? [secretVolume("relay", refs.relaySecret)] : []),
  ];
  return {
    serviceName: "postfix",
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
        annotations: { "checksum/config": refs.configChecksum, "checksum/dkim": refs.dkimChecksum, "kubectl.kubernetes.io/default-container": "postfix" },
      },
      spec: {
        serviceAccountName: refs.serviceAccount,
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        // No fsGroup: Postfix owns its queue permissions (postfix:postdrop) and rejects group-writable dirs.
        securityContext: { seccompProfile: { type: "RuntimeDefault" } },
        // Lets in-flight SMTP sessions finish and the queue manager write its state.
        terminationGracePeriodSeconds: 60,
        ...spread(selector),
        containers: [
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
              ...(refs.relaySecret ? [{ name: "relay", mountPath: PATHS.relay, readOnly: true }] : []),
            ],
          },
          {
            name: "opendkim",
            image: p.image,
            // The key is read once at start; a new key (rotation) changes checksum/dkim and rolls the pods.
            args: opendkimCommand(),
            ports: [{ name: "milter", containerPort: MILTER_PORT, protocol: "TCP" }],
            resources: p.dkim.resources,
            securityContext: mailContainerSecurity("opendkim"),
            // The milter listens on loopback only, so the check runs inside the pod (nc is in the image).
            readinessProbe: { exec: { command: ["nc", "-z", "-w", "2", "127.0.0.1", String(MILTER_PORT)] }, periodSeconds: 10, timeoutSeconds: 5 },
            livenessProbe: { exec: { command: ["nc", "-z", "-w", "2", "127.0.0.1", String(MILTER_PORT)] }, periodSeconds: 20, timeoutSeconds: 5, failureThreshold: 3 },
            volumeMounts: [
              { name: "config", mountPath: PATHS.postfixConfig, readOnly: true },
              { name: "dkim-key", mountPath: PATHS.dkimKey, readOnly: true },
            ],
          },
        ],
        volumes,
      },
    },
  };
}

export function dovecotSpec(cfg: PlatformConfig, m: MailModel, refs: WorkloadRefs & { usersSecret: pulumi.Input<string>; sharedClaim?: pulumi.Input<string> }): StatefulSetSpec {
  const d = cfg.mail.dovecot;
  const id = { name: "dovecot", component: "mail", image: d.image };
  const selector = selectorLabels(cfg, id);
  const d2 = PORTS.dovecot;
  return {
    serviceName: "dovecot",
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
      spec: {
        serviceAccountName: refs.serviceAccount,
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        // Mailboxes are written by vmail (uid/gid 1000 in the image): the volume is group-owned by it.
        securityContext: { seccompProfile: { type: "RuntimeDefault" }, fsGroup: VMAIL_UID, fsGroupChangePolicy: "OnRootMismatch" },
        terminationGracePeriodSeconds: 30,
        ...spread(selector),
        containers: [
          {
            name: "dovecot",
            image: d.image,
            args: ["/bin/sh", `${PATHS.dovecotConfig}/run.sh`],
            ports: ports(
              m,
              { imap: d2.imap, imaps: d2.imaps, pop3: d2.pop3, pop3s: d2.pop3s, lmtp: d2.lmtp, auth: d2.auth },
              PROXY_PORTS.dovecot,
            ),
            resources: d.resources,
            securityContext: mailContainerSecurity("dovecot"),
            ...protocolProbes(IMAP_GREETING(d2.imap)),
            volumeMounts: [
              { name: "config", mountPath: PATHS.dovecotConfig, readOnly: true },
              { name: "tls", mountPath: PATHS.tls, readOnly: true },
              { name: "users", mountPath: PATHS.dovecotUsers, readOnly: true },
              { name: "mail", mountPath: PATHS.mail },
            ],
          },
        ],
        volumes: [
          { name: "config", configMap: { name: refs.configMap } },
          secretVolume("tls", refs.tlsSecret),
          secretVolume("users", refs.usersSecret),
          ...(refs.sharedClaim ? [{ name: "mail", persistentVolumeClaim: { claimName: refs.sharedClaim } }] : []),
        ],
      },
    },
  };
}
