// The mail tier: Postfix (SMTP 25 behind postscreen, smtps 465, submission 587; Rspamd, its Redis
// and the metrics exporter as sidecars) and Dovecot (IMAP 143/993, POP3 110/995, LMTP 24, SASL
// auth 12345, rootless on high container ports) in the mail namespace. Postfix delivers to Dovecot
// over LMTP and authenticates submission against Dovecot's auth service.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import type { PlatformConfig } from "../../config/schema";
import type { DependencyGraph } from "../lib/graph";
import { pdbSpec } from "../lib/availability";
import { labels, platformLabels, selectorLabels } from "../lib/labels";
import { checksum } from "../lib/pod";
import { PORTS, serviceHost } from "../lib/ports";
import { rotationKeepers } from "../secrets";
import { offsiteFor } from "../data/backup";
import { createMailboxBackup } from "./backup";
import type { SecretRef } from "../secrets";
import { mailDnsRecords, zoneLines } from "./dns";
import type { DnsRecord } from "./dns";
import { dovecotConf, dovecotRunScript, passwdFile } from "./dovecot";
import { mailModel } from "./model";
import type { ExternalPort, MailModel } from "./model";
import { mainCf, masterCf, postfixRunScript, postscreenAccess, relayPasswordLine, senderLoginMap, vmailboxMap, virtualAliasMap } from "./postfix";
import { OVERRIDE_PREFIX, rspamdFiles } from "./rspamd";
import { dovecotSpec, postfixAnnotations, postfixSpec, proxyPortName } from "./workloads";

export interface MailArgs {
  config: PlatformConfig;
  /** platform.namespaces.mail */
  namespace: pulumi.Input<string>;
  /** platform.namespaces.app: where the app's submission credentials Secret goes. */
  appNamespace: pulumi.Input<string>;
  serviceAccount: (name: string) => pulumi.Input<string>;
  graph: DependencyGraph;
  /** Reads a user-supplied secret config key (smtpRelayPassword). */
  secret: (key: string) => pulumi.Output<string>;
}

const INTERNET = { kind: "internet", name: "internet" } as const;

export class MailTier extends pulumi.ComponentResource {
  readonly model: MailModel;
  readonly dnsRecords: pulumi.Output<Record<"mx" | "spf" | "dkim" | "dmarc", DnsRecord>>;
  readonly dnsZone: pulumi.Output<string>;
  /** Generated mailbox passwords by user (secret). */
  readonly userPasswords: pulumi.Output<Record<string, string>>;
  /** SMTP_HOST/SMTP_PORT/SMTP_USER/SMTP_PASSWORD/SMTP_FROM/SMTP_TLS_SERVER_NAME for the app tier (app namespace). */
  readonly submission?: SecretRef;

  constructor(name: string, args: MailArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:mail:MailTier", name, {}, opts);
    const cfg = args.config;
    const mc = cfg.mail;
    const m = (this.model = mailModel(cfg));
    const ns = args.namespace;
    const child = { parent: this };
    const stateful = { parent: this, protect: cfg.environment === "prod" };
    const common = { ...platformLabels(cfg), "app.kubernetes.io/component": "mail" };
    const secret = (id: string, namespace: pulumi.Input<string>, data: Record<string, pulumi.Input<string>>, type = "Opaque") =>
      new k8s.core.v1.Secret(
        id,
        { metadata: { name: id, namespace, labels: common }, type, stringData: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, pulumi.secret(v)])) },
        child,
      );

    // ---- TLS for the mail hostname: cert-manager when an issuer is named, else self-signed (dev).
    let tlsSecretName: pulumi.Output<string>;
    if (mc.tls.issuer) {
      const cert = new k8s.apiextensions.CustomResource(
        "mail-certificate",
        {
          apiVersion: "cert-manager.io/v1",
          kind: "Certificate",
          metadata: { name: "mail-tls", namespace: ns, labels: common },
          spec: {
            secretName: "mail-tls",
            commonName: m.hostname,
            dnsNames: [m.hostname],
            issuerRef: { name: mc.tls.issuer.name, kind: mc.tls.issuer.kind, group: "cert-manager.io" },
            // RSA for the widest client support; a fresh key on every renewal.
            privateKey: { algorithm: "RSA", size: 2048, rotationPolicy: "Always" },
            duration: "2160h",
            renewBefore: "720h",
            usages: ["server auth", "digital signature", "key encipherment"],
          },
        },
        child,
      );
      // cert-manager writes the Secret; deriving the name from the Certificate orders the pods after it.
      tlsSecretName = pulumi.output(cert.metadata).apply(() => "mail-tls");
    } else {
      const key = new tls.PrivateKey("mail-tls-key", { algorithm: "RSA", rsaBits: 2048 }, child);
      const cert = new tls.SelfSignedCert(
        "mail-tls-cert",
        {
          privateKeyPem: key.privateKeyPem,
          subject: { commonName: m.hostname, organization: cfg.platform.name },
          dnsNames: [m.hostname, serviceHost("postfix", m.namespace), serviceHost("dovecot", m.namespace)],
          validityPeriodHours: 24 * 365,
          // `pulumi up` within 30 days of expiry issues a new one; run.sh reloads the daemons.
          earlyRenewalHours: 24 * 30,
          allowedUses: ["key_encipherment", "digital_signature", "server_auth"],
        },
        child,
      );
      tlsSecretName = secret("mail-tls", ns, { "tls.crt": cert.certPem, "tls.key": key.privateKeyPem }, "kubernetes.io/tls").metadata.name;
    }

    // ---- DKIM: generated key (a new selector/rotation means a new key), Secret for Rspamd's signer.
    const dkimKey = new tls.PrivateKey(`dkim-${m.selector}-r${mc.postfix.dkim.rotation}`, { algorithm: "RSA", rsaBits: 2048 }, child);
    const dkimSecret = secret("dkim-key", ns, { "dkim.private": dkimKey.privateKeyPem });

    // ---- Mailbox users: generated passwords, bcrypt hashes in Dovecot's passwd-file.
    const passwords = Object.fromEntries(
      m.users.map((u) => [
        u,
        new random.RandomPassword(`mail-user-${u}`, { length: 32, special: false, keepers: rotationKeepers(cfg, "mail") }, child),
      ]),
    );
    const hashes = pulumi.all(m.users.map((u) => passwords[u].bcryptHash));
    const usersFile = hashes.apply((hs) => passwdFile(m.users.map((u, i) => ({ address: `${u}@${m.domain}`, bcryptHash: hs[i] }))));
    const usersSecret = secret("dovecot-users", ns, { users: usersFile });
    this.userPasswords = pulumi.secret(pulumi.all(Object.fromEntries(m.users.map((u) => [u, passwords[u].result]))));

    if (mc.appSender) {
      const s = secret("mail-submission", args.appNamespace, {
        SMTP_HOST: serviceHost("postfix", m.namespace),
        SMTP_PORT: String(PORTS.postfix.submission),
        SMTP_USER: `${mc.appSender}@${m.domain}`,
        SMTP_PASSWORD: passwords[mc.appSender].result,
        SMTP_FROM: `${mc.appSender}@${m.domain}`,
        // The certificate names the public host; clients verify against it (STARTTLS is required).
        SMTP_TLS_SERVER_NAME: m.hostname,
      });
      this.submission = { name: s.metadata.name, keys: ["SMTP_HOST", "SMTP_PORT", "SMTP_USER", "SMTP_PASSWORD", "SMTP_FROM", "SMTP_TLS_SERVER_NAME"] };
    }

    let relaySecret: pulumi.Output<string> | undefined;
    if (m.relay?.username) {
      const line = args.secret("smtpRelayPassword").apply((pw) => relayPasswordLine(m.relay!.host, m.relay!.port, m.relay!.username!, pw));
      relaySecret = secret("postfix-relay", ns, { sasl_passwd: line }).metadata.name;
    }

    // ---- Rendered configuration.
    const postfixFiles = {
      "main.cf": mainCf(m),
      "master.cf": masterCf(m),
      vmailbox: vmailboxMap(m),
      virtual: virtualAliasMap(m),
      sender_login: senderLoginMap(m),
      ...(m.postscreen.enabled ? { "postscreen_access.cidr": postscreenAccess(m) } : {}),
      ...(m.relay?.caPem ? { "relay-ca.pem": m.relay.caPem } : {}),
      "run.sh": postfixRunScript(m),
    };
    const rspamd = rspamdFiles(m);
    const rspamdData = { ...rspamd.local, ...Object.fromEntries(Object.entries(rspamd.override).map(([k, v]) => [`${OVERRIDE_PREFIX}${k}`, v])) };
    const dovecotFiles = { "dovecot.conf": dovecotConf(m), "run.sh": dovecotRunScript() };
    const configMap = (id: string, daemon: string, data: Record<string, string>) =>
      new k8s.core.v1.ConfigMap(id, { metadata: { name: id, namespace: ns, labels: labels(cfg, { name: daemon, component: "mail" }) }, data }, child);
    const postfixConfig = configMap("postfix-config", "postfix", postfixFiles);
    const dovecotConfig = configMap("dovecot-config", "dovecot", dovecotFiles);
    const rspamdConfig = configMap("rspamd-config", "postfix", rspamdData);

    // ---- Workloads.
    let sharedClaim: pulumi.Output<string> | undefined;
    if (m.sharedMailboxes) {
      const pvc = new k8s.core.v1.PersistentVolumeClaim(
        "dovecot-mail",
        {
          metadata: { name: "dovecot-mail", namespace: ns, labels: labels(cfg, { name: "dovecot", component: "mail" }) },
          spec: { accessModes: ["ReadWriteMany"], storageClassName: mc.dovecot.storage.storageClass, resources: { requests: { storage: mc.dovecot.storage.size } } },
        },
        { ...stateful, retainOnDelete: true },
      );
      sharedClaim = pvc.metadata.name;
    }
    const workload = (id: "postfix" | "dovecot", spec: k8s.types.input.apps.v1.StatefulSetSpec, annotations: Record<string, string> = {}) =>
      new k8s.apps.v1.StatefulSet(id, { metadata: { name: id, namespace: ns, labels: labels(cfg, { name: id, component: "mail", image: mc[id].image }), annotations }, spec }, stateful);
    workload(
      "postfix",
      postfixSpec(cfg, m, {
        serviceAccount: args.serviceAccount("postfix"),
        configMap: postfixConfig.metadata.name,
        tlsSecret: tlsSecretName,
        rspamdConfigMap: rspamdConfig.metadata.name,
        rspamdFiles: { local: Object.keys(rspamd.local), override: Object.keys(rspamd.override) },
        rspamdChecksum: checksum(rspamdData),
        dkimSecret: dkimSecret.metadata.name,
        dkimChecksum: checksum(dkimKey.publicKeyPem),
        relaySecret,
        configChecksum: checksum(postfixFiles),
      }),
      postfixAnnotations(),
    );
    workload(
      "dovecot",
      dovecotSpec(cfg, m, {
        serviceAccount: args.serviceAccount("dovecot"),
        configMap: dovecotConfig.metadata.name,
        tlsSecret: tlsSecretName,
        usersSecret: usersSecret.metadata.name,
        sharedClaim,
        configChecksum: checksum(dovecotFiles),
      }),
    );
    for (const id of ["postfix", "dovecot"] as const) {
      const pdb = pdbSpec(selectorLabels(cfg, { name: id, component: "mail" }), mc[id].replicas);
      if (pdb) new k8s.policy.v1.PodDisruptionBudget(`${id}-pdb`, { metadata: { name: id, namespace: ns, labels: labels(cfg, { name: id, component: "mail" }) }, spec: pdb }, child);
    }

    // ---- Services: in-cluster (ClusterIP) and public (LoadBalancer, NodePort in dev).
    const service = (id: string, daemon: "postfix" | "dovecot", spec: k8s.types.input.core.v1.ServiceSpec, annotations: Record<string, string> = {}) =>
      new k8s.core.v1.Service(
        id,
        { metadata: { name: id, namespace: ns, labels: labels(cfg, { name: daemon, component: "mail" }), annotations }, spec: { ...spec, selector: selectorLabels(cfg, { name: daemon, component: "mail" }) } },
        child,
      );
    const tcp = (name: string, port: number) => ({ name, port, targetPort: name, protocol: "TCP" });
    const postfixPorts = [tcp("smtp", 25), tcp("smtps", 465), tcp("submission", 587)];
    service("postfix", "postfix", { type: "ClusterIP", ports: [...postfixPorts, tcp("metrics", PORTS.postfix.metrics)] });
    const d = PORTS.dovecot;
    const dovecotPorts = [tcp("imap", d.imap), tcp("imaps", d.imaps), tcp("pop3", d.pop3), tcp("pop3s", d.pop3s), tcp("lmtp", d.lmtp), tcp("auth", d.auth)];
    service("dovecot", "dovecot", { type: "ClusterIP", ports: [...dovecotPorts, tcp("metrics", d.metrics)] });
    // The StatefulSets' governing Services: headless, so postfix-0.postfix-headless.<ns> and
    // dovecot-0.dovecot-headless.<ns> exist (also for pods that are not ready yet).
    for (const [id, daemon, ps] of [["postfix-headless", "postfix", postfixPorts], ["dovecot-headless", "dovecot", dovecotPorts]] as const) {
      service(id, daemon, { clusterIP: "None", publishNotReadyAddresses: true, ports: ps });
    }
    const publicPorts = (ps: ExternalPort[]) => ps.map((p) => ({ name: p.name, port: p.port, targetPort: m.proxy ? proxyPortName(p.name) : p.name, protocol: "TCP" }));
    const annotations = { ...mc.exposure.annotations, ...(m.proxy ? mc.exposure.proxyProtocol.annotations : {}) };
    // Local: no second hop through another node, so the client's address reaches Postfix's
    // restrictions and Dovecot's logs (and nodes without a mail pod fail the LB health check).
    const publicSpec = (ps: ExternalPort[]) => ({ type: mc.exposure.type, externalTrafficPolicy: "Local", ports: publicPorts(ps) });
    service("postfix-public", "postfix", publicSpec(m.external.postfix), annotations);
    service("dovecot-public", "dovecot", publicSpec(m.external.dovecot), annotations);

    // ---- Who talks to whom (NetworkPolicies are generated from these edges).
    const g = args.graph;
    // Container ports: the Service maps 24 -> 10024 (Dovecot is rootless), and policies see the pod's port.
    g.connect("postfix", "dovecot", [m.dovecotPorts.lmtp], "LMTP: local delivery");
    g.connect("postfix", "dovecot", [m.dovecotPorts.auth], "SASL: submission logins checked by Dovecot auth");
    g.connect(INTERNET, "postfix", m.external.postfix.map((p) => p.targetPort), "inbound SMTP, smtps and submission");
    g.connect(INTERNET, "dovecot", m.external.dovecot.map((p) => p.targetPort), "IMAP and POP3 clients");
    // A proxying load balancer connects from its own (often private) addresses.
    for (const cidr of m.proxy ? m.trustedNetworks : []) {
      const lb = { kind: "cidr", name: `lb-${cidr}`, cidr } as const;
      g.connect(lb, "postfix", m.external.postfix.map((p) => p.targetPort), "load balancer with PROXY protocol");
      g.connect(lb, "dovecot", m.external.dovecot.map((p) => p.targetPort), "load balancer with PROXY protocol");
    }
    const outbound: number[] = [PORTS.postfix.smtp, PORTS.postfix.smtps, PORTS.postfix.submission];
    if (m.relay && !outbound.includes(m.relay.port)) outbound.push(m.relay.port);
    g.connect("postfix", INTERNET, outbound, m.relay ? `delivery via relay ${m.relay.host}` : "delivery to remote MX hosts");
    if (m.clamav) g.connect("postfix", INTERNET, [443], "freshclam: ClamAV signature updates");

    // ---- Nightly mailbox backup, copied off the cluster when backups.objectStore is set.
    if (mc.backup.enabled) {
      const offsite = offsiteFor(this, "mail-object-store-credentials", cfg, ns, args.secret, true);
      createMailboxBackup(this, { cfg, model: m, namespace: ns, serviceAccount: args.serviceAccount("mailbox-backup"), graph: g, offsite });
    }

    // ---- DNS records for the operator.
    this.dnsRecords = dkimKey.publicKeyPem.apply((pem) =>
      mailDnsRecords({ domain: m.domain, hostname: m.hostname, selector: m.selector, publicKeyPem: pem, dmarcPolicy: mc.dns.dmarcPolicy, spfExtra: mc.dns.spfExtra }),
    );
    this.dnsZone = this.dnsRecords.apply(zoneLines);
    this.registerOutputs({ dnsRecords: this.dnsRecords, dnsZone: this.dnsZone });
  }

  /** Stack outputs of the tier. */
  outputs(): Record<string, pulumi.Input<unknown>> {
    return {
      mailHostname: this.model.hostname,
      mailDnsRecords: this.dnsRecords,
      mailDnsZone: this.dnsZone,
      mailUserPasswords: this.userPasswords,
      mailServices: {
        smtp: `${serviceHost("postfix", this.model.namespace)}:${PORTS.postfix.submission}`,
        lmtp: `${this.model.lmtp.host}:${this.model.lmtp.port}`,
        public: ["postfix-public", "dovecot-public"],
      },
    };
  }
}
