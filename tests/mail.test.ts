// The mail tier as each stack really deploys it: Services, the Postfix <-> Dovecot coupling,
// TLS/DKIM/user secrets flowing into mounted volumes, DNS outputs, volumes, policies, security.
 
import { expect } from "chai";
import { parse } from "yaml";
import * as fs from "fs";
import * as path from "path";
import { inventory } from "../config/inventory";
import { parseConfig } from "../config/loader";
import { defaultsFor } from "../config/schema";
import { CAPABILITIES } from "../components/mail/security";
import { DOVECOT_PORTS, PATHS, POD_LOCAL } from "../components/mail/model";
import { pemBody } from "../components/mail/dns";
import { PORTS } from "../components/lib/ports";
import { PRIVATE_RANGES } from "../components/lib/graph";
import { ROOT, STACKS, configOf, evaluateStack, findObject, mocks, objectsOfKind, ok, recordOf, isSecretAt } from "./harness";
import type { Evaluation } from "./harness";
import { podSecurityViolations, validateObject } from "./checks";
import { postconf } from "./mailutil";

/** The config a stack file asks for, merged over the environment defaults (expectations come from here). */
function mailConfigOf(stack: string): any {
  const doc = parse(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8"));
  const defaults = defaultsFor(stack as "dev").mail as any;
  const over = doc.config["app-platform:mail"] ?? {};
  return { ...defaults, ...over, postfix: { ...defaults.postfix, ...(over.postfix ?? {}) }, dovecot: { ...defaults.dovecot, ...(over.dovecot ?? {}) } };
}

/** What the mock engine returns for a resource: the generated values the program saw. */
function mockState(type: string, name: string, inputs: any = {}): any {
  return (mocks.newResource({ type, name, inputs, custom: true, id: undefined, provider: undefined } as any) as any).state;
}

const mailNs = (stack: string) => `email-platform-mail-${stack}`;
const podOf = (ev: Evaluation, name: string, stack: string) => findObject(ev, "StatefulSet", name, mailNs(stack)).spec.template.spec;
const container = (spec: any, name: string) => spec.containers.find((c: any) => c.name === name);

for (const stack of STACKS) {
  describe(`mail tier (${stack})`, () => {
    const mc = mailConfigOf(stack);
    const ns = mailNs(stack);
    const hostname = `mail.${mc.domain}`;
    const dovecotHost = `dovecot.${ns}.svc.cluster.local`;
    let ev: Evaluation;
    before(async () => {
      ev = ok(await evaluateStack(stack));
    });

    it("exposes SMTP 25/465/587 on postfix and IMAP/POP3/LMTP/auth on dovecot (rootless: high container ports behind the well-known Service ports)", () => {
      const expectPorts = (svc: string, pod: string, want: Record<string, number>, containerPorts: Record<string, number>) => {
        const s = findObject(ev, "Service", svc, ns);
        const spec = podOf(ev, pod, stack);
        expect(Object.fromEntries(s.spec.ports.map((p: any) => [p.name, p.port]))).to.deep.equal(want);
        for (const p of s.spec.ports) {
          expect(p.protocol).to.equal("TCP");
          const cp = spec.containers.flatMap((c: any) => c.ports ?? []).find((x: any) => x.name === p.targetPort);
          expect(cp, `${svc} targetPort ${p.targetPort}`).to.exist;
          expect(cp.containerPort, `${svc} ${p.name}`).to.equal(containerPorts[p.name]);
        }
        expect(s.spec.selector).to.deep.equal(findObject(ev, "StatefulSet", pod, ns).spec.selector.matchLabels);
      };
      const postfixPorts = { smtp: 25, smtps: 465, submission: 587, metrics: PORTS.postfix.metrics };
      expectPorts("postfix", "postfix", postfixPorts, postfixPorts);
      const d = PORTS.dovecot;
      expectPorts("dovecot", "dovecot", { imap: d.imap, imaps: d.imaps, pop3: d.pop3, pop3s: d.pop3s, lmtp: d.lmtp, auth: d.auth, metrics: d.metrics }, DOVECOT_PORTS);
      // Nothing in the Dovecot pod needs a port below 1024.
      for (const c of podOf(ev, "dovecot", stack).containers) for (const p of c.ports) expect(p.containerPort, p.name).to.be.above(1023);
    });

    it("gives each StatefulSet a headless governing Service (serviceName), so per-pod DNS names exist", () => {
      for (const sts of objectsOfKind(ev, "StatefulSet")) {
        const gov = findObject(ev, "Service", sts.spec.serviceName, sts.metadata.namespace);
        expect(gov.spec.clusterIP, `${sts.metadata.name}: ${sts.spec.serviceName}`).to.equal("None");
        expect(gov.spec.selector).to.deep.equal(sts.spec.selector.matchLabels);
      }
      // The client Services stay ClusterIP (stable virtual address, port mapping).
      for (const svc of ["postfix", "dovecot"]) expect(findObject(ev, "Service", svc, ns).spec.clusterIP).to.be.undefined;
    });

    it(`publishes the mail ports on a ${stack === "dev" ? "NodePort" : "LoadBalancer"} Service with externalTrafficPolicy Local`, () => {
      for (const [svc, ports] of [
        ["postfix-public", [25, 465, 587]],
        ["dovecot-public", [143, 993, 110, 995]],
      ] as const) {
        const s = findObject(ev, "Service", svc, ns);
        expect(s.spec.type).to.equal(mc.exposure.type);
        expect(s.spec.externalTrafficPolicy).to.equal("Local");
        expect(s.spec.ports.map((p: any) => p.port)).to.have.members([...ports]);
      }
      expect(objectsOfKind(ev, "Service").filter((s: any) => s.metadata.namespace === ns && ["LoadBalancer", "NodePort"].includes(s.spec.type))).to.have.length(2);
    });

    it("couples Postfix to Dovecot: LMTP delivery, Dovecot SASL, and the seed 003 limits and TLS floor", () => {
      const cm = findObject(ev, "ConfigMap", "postfix-config", ns);
      const main = postconf(cm.data["main.cf"]);
      expect(main.virtual_transport).to.equal(`lmtp:inet:${dovecotHost}:${PORTS.dovecot.lmtp}`);
      expect(main.smtpd_sasl_type).to.equal("dovecot");
      expect(main.smtpd_sasl_path).to.equal(`inet:${dovecotHost}:${PORTS.dovecot.auth}`);
      expect(main.message_size_limit).to.equal(String(25 * 1024 * 1024));
      expect(main.smtpd_recipient_limit).to.equal("100");
      expect(main.smtpd_tls_mandatory_protocols).to.equal(">=TLSv1.2");
      expect(main.smtpd_tls_protocols).to.equal(">=TLSv1.2");
      expect(main.myhostname).to.equal(hostname);
      expect(main.virtual_mailbox_domains).to.equal(mc.domain);
      expect(main.relayhost).to.be.undefined;
      // Dovecot listens where Postfix points.
      const conf = findObject(ev, "ConfigMap", "dovecot-config", ns).data["dovecot.conf"];
      // The Service maps the ports Postfix uses (24, 12345) to where Dovecot listens without root.
      const svc = findObject(ev, "Service", "dovecot", ns).spec.ports;
      expect(svc.find((p: any) => p.port === PORTS.dovecot.lmtp).targetPort).to.equal("lmtp");
      expect(conf).to.match(new RegExp(`service lmtp \\{\\s+inet_listener lmtp \\{\\s+port = ${DOVECOT_PORTS.lmtp}\\s+\\}`));
      expect(conf).to.match(new RegExp(`service auth \\{\\s+inet_listener auth \\{\\s+port = ${DOVECOT_PORTS.auth}\\s+\\}`));
      expect(conf).to.include("scheme=BLF-CRYPT");
      expect(conf).to.include("ssl_min_protocol = TLSv1.2");
    });

    it("submission (587) requires STARTTLS and SASL; smtps (465) is implicit TLS", () => {
      const master = findObject(ev, "ConfigMap", "postfix-config", ns).data["master.cf"];
      const block = (svc: string) => master.split(/\n(?=\S)/).find((b: string) => b.startsWith(`${svc} `))!;
      for (const svc of ["submission", "smtps"]) {
        expect(block(svc)).to.include("-o smtpd_tls_security_level=encrypt");
        expect(block(svc)).to.include("-o smtpd_sasl_auth_enable=yes");
        expect(block(svc)).to.include("-o smtpd_client_restrictions=permit_sasl_authenticated,reject");
      }
      expect(block("smtps")).to.include("-o smtpd_tls_wrappermode=yes");
      expect(block("submission")).not.to.include("wrappermode");
    });

    it("mounts the TLS Secret as a whole volume (no subPath) where both daemons read it", () => {
      for (const [pod, ctr] of [
        ["postfix", "postfix"],
        ["dovecot", "dovecot"],
      ]) {
        const spec = podOf(ev, pod, stack);
        const vol = spec.volumes.find((v: any) => v.name === "tls");
        expect(vol.secret.secretName).to.equal("mail-tls");
        const mount = container(spec, ctr).volumeMounts.find((v: any) => v.name === "tls");
        expect(mount.mountPath).to.equal(PATHS.tls);
        expect(mount.subPath).to.be.undefined;
      }
      expect(findObject(ev, "ConfigMap", "postfix-config", ns).data["main.cf"]).to.include(`smtpd_tls_cert_file = ${PATHS.tls}/tls.crt`);
      expect(findObject(ev, "ConfigMap", "dovecot-config", ns).data["dovecot.conf"]).to.include(`ssl_key = <${PATHS.tls}/tls.key`);
    });

    if (mc.tls.issuer) {
      it(`asks cert-manager (${mc.tls.issuer.name}) for the mail hostname's certificate`, async () => {
        const cert = findObject(ev, "Certificate", "mail-tls", ns);
        expect(cert.apiVersion).to.equal("cert-manager.io/v1");
        expect(cert.spec.secretName).to.equal("mail-tls");
        expect(cert.spec.dnsNames).to.deep.equal([hostname]);
        expect(cert.spec.issuerRef).to.deep.equal({ name: mc.tls.issuer.name, kind: mc.tls.issuer.kind, group: "cert-manager.io" });
        expect(objectsOfKind(ev, "Secret").filter((s: any) => s.metadata.name === "mail-tls")).to.have.length(0);
        await validateObject(cert);
      });
    } else {
      it("generates a self-signed certificate (dev) and stores key and certificate in a kubernetes.io/tls Secret", () => {
        const key = ev.resources.find((r) => r.type === "tls:index/privateKey:PrivateKey" && r.name === "mail-tls-key")!;
        expect(key.inputs).to.include({ algorithm: "RSA", rsaBits: 2048 });
        const certRec = ev.resources.find((r) => r.type === "tls:index/selfSignedCert:SelfSignedCert")!;
        expect(certRec.inputs.dnsNames).to.include(hostname);
        const keyPem = mockState(key.type, key.name, key.inputs).privateKeyPem;
        expect(certRec.inputs.privateKeyPem).to.equal(keyPem);
        const secret = findObject(ev, "Secret", "mail-tls", ns);
        expect(secret.type).to.equal("kubernetes.io/tls");
        expect(secret.stringData["tls.key"]).to.equal(keyPem);
        expect(secret.stringData["tls.crt"]).to.equal(mockState(certRec.type, certRec.name, certRec.inputs).certPem);
        expect(isSecretAt(recordOf(ev, "Secret", "mail-tls"), "stringData.tls.key")).to.equal(true);
        expect(objectsOfKind(ev, "Certificate")).to.have.length(0);
      });
    }

    it("generates the DKIM key, mounts it into Rspamd (the signing milter), and publishes its public key in the DKIM record", () => {
      const rec = ev.resources.find((r) => r.type === "tls:index/privateKey:PrivateKey" && r.name.startsWith("dkim-"))!;
      expect(rec.inputs).to.include({ algorithm: "RSA", rsaBits: 2048 });
      const generated = mockState(rec.type, rec.name, rec.inputs);
      const secret = findObject(ev, "Secret", "dkim-key", ns);
      expect(secret.stringData["dkim.private"]).to.equal(generated.privateKeyPem);
      expect(isSecretAt(recordOf(ev, "Secret", "dkim-key"), "stringData.dkim.private")).to.equal(true);
      const spec = podOf(ev, "postfix", stack);
      expect(spec.volumes.find((v: any) => v.name === "dkim-key").secret.secretName).to.equal("dkim-key");
      const milter = container(spec, "rspamd");
      expect(milter.volumeMounts.find((v: any) => v.name === "dkim-key").mountPath).to.equal(PATHS.dkimKey);
      // Only the rspamd container sees the key.
      expect(spec.containers.filter((c: any) => (c.volumeMounts ?? []).some((v: any) => v.name === "dkim-key")).map((c: any) => c.name)).to.deep.equal(["rspamd"]);
      const conf = findObject(ev, "ConfigMap", "rspamd-config", ns).data["dkim_signing.conf"];
      expect(conf).to.include(`path = "${PATHS.dkimKey}/dkim.private"`).and.include(`selector = "${mc.postfix.dkim.selector}"`).and.include(`  ${mc.domain} {`).and.include("sign_authenticated = true");
      expect(spec.containers.map((c: any) => c.name)).to.not.include("opendkim");
      const main = postconf(findObject(ev, "ConfigMap", "postfix-config", ns).data["main.cf"]);
      expect(main.smtpd_milters).to.equal(`inet:127.0.0.1:${POD_LOCAL.milter}`);
      expect(findObject(ev, "ConfigMap", "rspamd-config", ns).data["override.d_worker-proxy.inc"]).to.include(`bind_socket = "127.0.0.1:${POD_LOCAL.milter}"`).and.include("milter = yes");
      expect(main.milter_default_action).to.equal("tempfail");
      const dns = ev.outputs.mailDnsRecords as any;
      expect(dns.dkim.name).to.equal(`${mc.postfix.dkim.selector}._domainkey.${mc.domain}.`);
      expect(dns.dkim.value).to.equal(`v=DKIM1; k=rsa; p=${pemBody(generated.publicKeyPem)}`);
      expect(dns.dkim.value).not.to.match(/-----|\n/);
    });

    it("outputs MX, SPF and DMARC records ready to paste, and a zone snippet", () => {
      const dns = ev.outputs.mailDnsRecords as any;
      expect(dns.mx).to.deep.include({ name: `${mc.domain}.`, type: "MX", value: `10 ${hostname}.` });
      expect(dns.spf).to.deep.include({ name: `${mc.domain}.`, type: "TXT", value: "v=spf1 mx -all" });
      expect(dns.dmarc.name).to.equal(`_dmarc.${mc.domain}.`);
      expect(dns.dmarc.value).to.match(new RegExp(`^v=DMARC1; p=${mc.dns.dmarcPolicy};`));
      const zone = ev.outputs.mailDnsZone as string;
      expect(zone).to.include(`${mc.domain}. 3600 IN MX 10 ${hostname}.`);
      expect(zone).to.include(`${mc.postfix.dkim.selector}._domainkey.${mc.domain}. 3600 IN TXT "v=DKIM1; k=rsa; p=`);
      expect(ev.secretOutputs).not.to.include("mailDnsRecords");
    });

    it("gives each Postfix replica its own queue volume and Dovecot one mailbox volume per replica (RWO)", () => {
      const postfix = findObject(ev, "StatefulSet", "postfix", ns).spec;
      expect(postfix.replicas).to.equal(mc.postfix.replicas);
      expect(postfix.volumeClaimTemplates).to.have.length(1);
      const q = postfix.volumeClaimTemplates[0];
      expect(q.spec.accessModes).to.deep.equal(["ReadWriteOnce"]);
      expect(q.spec.resources.requests.storage).to.equal(mc.postfix.storage.size);
      expect(container(postfix.template.spec, "postfix").volumeMounts.find((v: any) => v.name === q.metadata.name).mountPath).to.equal("/var/spool/postfix");
      expect(postfix.persistentVolumeClaimRetentionPolicy).to.deep.equal({ whenDeleted: "Retain", whenScaled: "Retain" });
      const dovecot = findObject(ev, "StatefulSet", "dovecot", ns).spec;
      expect(dovecot.replicas).to.equal(1);
      expect(dovecot.volumeClaimTemplates[0].spec.accessModes).to.deep.equal(["ReadWriteOnce"]);
      expect(dovecot.volumeClaimTemplates[0].spec.resources.requests.storage).to.equal(mc.dovecot.storage.size);
      // The only standalone claim is the mailbox backup's (components/mail/backup.ts).
      expect(objectsOfKind(ev, "PersistentVolumeClaim").filter((p: any) => p.metadata.namespace === ns).map((p: any) => p.metadata.name)).to.deep.equal(mc.backup.enabled ? ["mailbox-backup"] : []);
      for (const s of ["postfix", "dovecot"]) expect(recordOf(ev, "StatefulSet", s).options.protect).to.equal(stack === "prod");
    });

    it("allows exactly the declared mail traffic in the generated NetworkPolicies", () => {
      const pol = (n: string) => findObject(ev, "NetworkPolicy", `allow-${n}`, ns).spec;
      const postfixSel = findObject(ev, "StatefulSet", "postfix", ns).spec.selector.matchLabels;
      const ports = (rule: any) => rule.ports.map((p: any) => p.port).sort((a: number, b: number) => a - b);
      const dovecotIn = pol("dovecot").ingress;
      const fromPods = (rules: any[], selector: Record<string, string>) =>
        rules.filter((r: any) => r.from[0].podSelector && !r.from[0].namespaceSelector && JSON.stringify(r.from[0].podSelector.matchLabels) === JSON.stringify(selector));
      const inPods = dovecotIn.filter((r: any) => r.from[0].podSelector && !r.from[0].namespaceSelector);
      expect(fromPods(dovecotIn, postfixSel).flatMap(ports).sort()).to.deep.equal([DOVECOT_PORTS.lmtp, DOVECOT_PORTS.auth].sort());
      // With monitoring, the blackbox exporter probes the client ports (each replica's own address, so container ports).
      const blackbox = configOf(stack).monitoring.enabled ? findObject(ev, "Deployment", "blackbox-exporter", ns).spec.selector.matchLabels : undefined;
      const probed = (pods: any[]) => pods.flatMap(ports).sort((a: number, b: number) => a - b);
      expect(probed(blackbox ? fromPods(dovecotIn, blackbox) : [])).to.deep.equal(blackbox ? [DOVECOT_PORTS.pop3, DOVECOT_PORTS.imap, DOVECOT_PORTS.imaps, DOVECOT_PORTS.pop3s] : []);
      expect(inPods.length).to.equal(fromPods(dovecotIn, postfixSel).length + (blackbox ? fromPods(dovecotIn, blackbox).length : 0));
      const internetIn = dovecotIn.filter((r: any) => r.from[0].ipBlock);
      expect(internetIn.flatMap(ports)).to.deep.equal([DOVECOT_PORTS.pop3, DOVECOT_PORTS.imap, DOVECOT_PORTS.imaps, DOVECOT_PORTS.pop3s]);
      expect(internetIn[0].from[0].ipBlock.except).to.deep.equal(PRIVATE_RANGES);
      expect(pol("dovecot").egress).to.be.undefined;
      const postfix = pol("postfix");
      expect(postfix.ingress.filter((r: any) => r.from[0].ipBlock).flatMap(ports)).to.deep.equal([25, 465, 587]);
      expect(postfix.egress.filter((r: any) => r.to[0].ipBlock).flatMap(ports)).to.deep.equal([25, 465, 587]);
      expect(postfix.egress.filter((r: any) => r.to[0].podSelector).flatMap(ports).sort()).to.deep.equal([DOVECOT_PORTS.lmtp, DOVECOT_PORTS.auth].sort());
      expect(probed(blackbox ? fromPods(postfix.ingress, blackbox) : [])).to.deep.equal(blackbox ? [25, 465, 587] : []);
    });

    it("runs only Postfix's master as root (baseline, justified capabilities); every other mail container and the whole Dovecot pod pass restricted", () => {
      expect(findObject(ev, "Namespace", ns).metadata.labels["pod-security.kubernetes.io/enforce"]).to.equal("baseline");
      for (const name of ["postfix", "dovecot"]) {
        const spec = podOf(ev, name, stack);
        expect(podSecurityViolations(spec, "baseline"), name).to.deep.equal([]);
        expect(spec.automountServiceAccountToken).to.equal(false);
        expect(spec.serviceAccountName).to.equal(name);
        expect(spec.securityContext.seccompProfile.type).to.equal("RuntimeDefault");
        for (const c of spec.containers) {
          const sc = c.securityContext;
          expect(sc.allowPrivilegeEscalation, c.name).to.equal(false);
          expect(sc.privileged).to.equal(false);
          expect(sc.capabilities.drop).to.deep.equal(["ALL"]);
          expect(sc.seccompProfile.type).to.equal("RuntimeDefault");
          if (c.name === "postfix") {
            expect(sc.capabilities.add).to.have.members(Object.keys(CAPABILITIES.postfix));
          } else {
            expect(sc.capabilities.add, c.name).to.be.undefined;
            expect(sc.runAsNonRoot, c.name).to.equal(true);
            expect(sc.runAsUser, c.name).to.be.above(0);
            expect(sc.readOnlyRootFilesystem, c.name).to.equal(true);
          }
        }
      }
      // Dovecot runs without root: its pod passes restricted as a whole, not just baseline.
      expect(podSecurityViolations(podOf(ev, "dovecot", stack), "restricted")).to.deep.equal([]);
      const postfixPod = podOf(ev, "postfix", stack);
      expect(podSecurityViolations({ ...postfixPod, containers: postfixPod.containers.filter((c: any) => c.name !== "postfix") }, "restricted")).to.deep.equal([]);
      // Neither pod may pick up a host mount or a privileged sidecar later without this failing.
      expect(podSecurityViolations({ containers: [{ name: "x", securityContext: { capabilities: { add: ["NET_ADMIN"] } } }], volumes: [{ name: "h", hostPath: { path: "/" } }] }, "baseline")).to.have.length(2);
    });

    it("probes speak the protocols: an SMTP 220 banner and an IMAP * OK greeting", () => {
      const postfix = container(podOf(ev, "postfix", stack), "postfix");
      const dovecot = container(podOf(ev, "dovecot", stack), "dovecot");
      for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
        expect(postfix[probe].exec.command.join(" "), probe).to.include("/dev/tcp/127.0.0.1/25").and.include('"220 "');
        expect(dovecot[probe].exec.command.join(" "), probe).to.include(`/dev/tcp/127.0.0.1/${DOVECOT_PORTS.imap}`).and.include('"* OK"');
      }
    });

    it("provisions the configured users: bcrypt hashes in Dovecot's passwd-file, passwords only as secret outputs", () => {
      const users = findObject(ev, "Secret", "dovecot-users", ns).stringData.users.trim().split("\n");
      expect(users.map((l: string) => l.split(":")[0])).to.deep.equal(mc.users.map((u: string) => `${u}@${mc.domain}`));
      for (const l of users) expect(l).to.match(/^[^:]+:\{BLF-CRYPT\}\$2[aby]\$\d\d\$[^:]+::::::$/);
      expect(isSecretAt(recordOf(ev, "Secret", "dovecot-users"), "stringData.users")).to.equal(true);
      expect(ev.secretOutputs).to.include("mailUserPasswords");
      expect(Object.keys(ev.outputs.mailUserPasswords as object)).to.deep.equal(mc.users);
      const vmailbox = findObject(ev, "ConfigMap", "postfix-config", ns).data.vmailbox;
      for (const u of mc.users) expect(vmailbox).to.include(`${u}@${mc.domain} OK`);
      // The app's submission credentials land in the app namespace, as Pulumi secrets.
      const sub = findObject(ev, "Secret", "mail-submission", `email-platform-${stack}`);
      expect(sub.stringData.SMTP_HOST).to.equal(`postfix.${ns}.svc.cluster.local`);
      expect(sub.stringData.SMTP_PORT).to.equal("587");
      expect(sub.stringData.SMTP_PASSWORD).to.equal((ev.outputs.mailUserPasswords as any)[mc.appSender]);
      expect(isSecretAt(recordOf(ev, "Secret", "mail-submission"), "stringData.SMTP_PASSWORD")).to.equal(true);
    });

    it("sizes both workloads per environment and keeps the inventory in sync with the pods", () => {
      const postfix = podOf(ev, "postfix", stack);
      expect(container(postfix, "postfix").resources).to.deep.equal(mc.postfix.resources);
      expect(container(postfix, "rspamd").resources).to.deep.equal(mc.rspamd.resources);
      expect(container(postfix, "redis").resources).to.deep.equal(mc.rspamd.redis.resources);
      expect(container(postfix, "exporter").resources).to.deep.equal(mc.postfix.exporter.resources);
      expect(container(podOf(ev, "dovecot", stack), "dovecot").resources).to.deep.equal(mc.dovecot.resources);
      const cfg = parseConfig(Object.fromEntries(Object.entries(ev.config).map(([k, v]) => [k.split(":")[1], tryJson(v)])), { stack });
      const groups = inventory(cfg).filter((g) => g.namespace === "mail");
      expect(groups.map((g) => g.name)).to.deep.equal(["postfix", "dovecot", ...(cfg.mail.backup.enabled ? ["mailbox-backup"] : []), ...(cfg.monitoring.enabled ? ["blackbox-exporter"] : [])]);
      expect(groups[0].containers).to.deep.equal(postfix.containers.map((c: any) => c.resources));
      expect(groups[0].maxPods).to.equal(mc.postfix.replicas);
    });

    it("points the exporter at the log file run.sh creates (waiting for it, as both containers start together) and at master.cf's loopback showq", () => {
      const spec = podOf(ev, "postfix", stack);
      const args: string[] = container(spec, "exporter").args;
      const arg = (name: string) => args.find((a) => a.startsWith(`--postfix.${name}=`))?.split("=")[1];
      const logMount = container(spec, "exporter").volumeMounts.find((v: any) => v.name === "maillog").mountPath;
      expect(arg("logfile_path")).to.equal(`${logMount}/mail.log`);
      expect(container(spec, "postfix").volumeMounts.find((v: any) => v.name === "maillog").mountPath).to.equal(logMount);
      const cm = findObject(ev, "ConfigMap", "postfix-config", ns).data;
      expect(cm["run.sh"]).to.include(`log=${logMount}/mail.log`).and.include('touch "$log"');
      expect(arg("logfile_must_exist")).to.equal("false");
      expect(arg("showq_network")).to.equal("tcp");
      expect(cm["master.cf"]).to.match(new RegExp(`^127\\.0\\.0\\.1:${arg("showq_port")} +inet .* showq$`, "m"));
    });

    it("registers objects that validate against the Kubernetes schema", async () => {
      for (const kind of ["StatefulSet", "Service", "ConfigMap"]) {
        for (const o of objectsOfKind(ev, kind).filter((x: any) => x.metadata.namespace === ns)) await validateObject(o);
      }
    });
  });
}

function tryJson(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}
