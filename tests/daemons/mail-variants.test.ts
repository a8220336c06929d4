// The mail tier's variants on the rendered prod stack (tests/daemons/mail.test.ts runs dev and prod
// as rendered): PROXY protocol from the load balancer, an authenticated smarthost, and Dovecot on a
// shared ReadWriteMany volume. A group of its own so that it runs beside `mail`: each variant starts
// the whole Postfix and Dovecot pods again, and Rspamd's start dominates.
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { DOVECOT_PORTS } from "../../components/mail/model";
import { configOf } from "../harness";
import type { K8sObject } from "../harness";
import { testCa } from "./lib/cert-manager";
import { useSandbox, versionOf } from "./lib/group";
import { object } from "./lib/kube";
import { CLIENTS, PY, address, dkimVerify, imapRead, mailClient, queueId, startMail, startsTest, steps, submit, token } from "./lib/mail";
import type { Mail } from "./lib/mail";
import type { Pod } from "./lib/sandbox";
import { waitFor } from "./lib/sandbox";

const prod = configOf("prod");

describe(`mail variants: postfix ${versionOf(prod.mail.postfix.image)}; rspamd ${versionOf(prod.mail.rspamd.image)}; dovecot ${versionOf(prod.mail.dovecot.image)}`, () => {
  describe("prod with PROXY protocol from the load balancer", () => {
    const ctx = useSandbox("mail-proxy");
    // The sandbox's pod network stands for the load balancer's source range.
    const trusted = "10.96.0.0/16";
    let m: Mail;
    before(async () => {
      m = await startMail(ctx.sb, { stack: "prod", set: { "mail.exposure.proxyProtocol.enabled": true, "mail.exposure.proxyProtocol.trustedNetworks": [trusted] } });
    });
    startsTest(() => m);

    /** The container port the public Service sends each of its ports to. */
    const publicTargets = (service: string, workload: string): { name: string; port: number; containerPort: number }[] => {
      const svc = object(m.ev, "Service", service, m.ns);
      const ports: K8sObject[] = object(m.ev, "StatefulSet", workload, m.ns).spec.template.spec.containers[0].ports;
      return svc.spec.ports.map((p: K8sObject) => ({ name: p.name, port: p.port, containerPort: ports.find((c) => c.name === p.targetPort)!.containerPort }));
    };
    const implicitTls = new Set(["smtps", "imaps", "pop3s"]);
    /**
     * A client without a PROXY header: on a plain port it speaks first (a listener without PROXY
     * support would greet at once; one with it fails on the line); on a TLS port it starts the
     * handshake, which only a listener without PROXY support completes.
     */
    const noHeader = (tls: string, line: string) => (tls === "implicit" ? {} : { send_first: line });

    it("Postfix's public ports log the client address from the PROXY header and drop a connection without one", async () => {
      const targets = publicTargets("postfix-public", "postfix");
      expect(targets.map((t) => t.name)).to.have.members(["smtp", "smtps", "submission"]);
      for (const [i, t] of targets.entries()) {
        expect(t.containerPort, `${t.name} goes to the proxy listener`).to.not.equal(t.port);
        const client = `203.0.113.${10 + i}`;
        const tls = implicitTls.has(t.name) ? "implicit" : "none";
        const withHeader = await mailClient(m, "raw", { host: m.postfix.pod.ip, port: t.containerPort, tls, proxy: `PROXY TCP4 ${client} 198.51.100.1 40000 ${t.port}`, send: "QUIT" });
        // Postscreen (port 25) greets with a "220-" teaser; smtpd with "220 ".
        expect(withHeader.greeting, `${t.name}: ${JSON.stringify(withHeader)}`).to.match(t.name === "smtp" ? /^220-/ : /^220 /);
        // smtpd logs "connect from unknown[ip]", postscreen (port 25) "CONNECT from [ip]".
        await m.postfix.containers.postfix.waitLog(new RegExp(`(connect from unknown|CONNECT from )\\[${client.replace(/\./g, "\\.")}\\]`), 10_000);
        // Without the header Postfix never greets: it closes, after a 421 where the session got that far.
        const without = await mailClient(m, "raw", { host: m.postfix.pod.ip, port: t.containerPort, tls, ...noHeader(tls, "EHLO client.test"), send: "QUIT" });
        expect(without.greeting ?? "(closed)", `${t.name} without a PROXY header: ${JSON.stringify(without)}`).to.match(/^(\(closed\)|421 )/);
      }
    });

    it("Dovecot's public ports log the client address (rip) from the PROXY header and give no greeting without one", async () => {
      const targets = publicTargets("dovecot-public", "dovecot");
      expect(targets.map((t) => t.name)).to.have.members(["imap", "imaps", "pop3", "pop3s"]);
      for (const [i, t] of targets.entries()) {
        expect(t.containerPort, `${t.name} goes to the proxy listener`).to.not.equal(t.port);
        const client = `203.0.113.${20 + i}`;
        const tls = implicitTls.has(t.name) ? "implicit" : "none";
        const quit = t.name.startsWith("imap") ? "a LOGOUT" : "QUIT";
        const withHeader = await mailClient(m, "raw", { host: m.dovecot[0].pod.ip, port: t.containerPort, tls, proxy: `PROXY TCP4 ${client} 198.51.100.1 40000 ${t.port}`, send: quit });
        expect(withHeader.greeting, `${t.name}: ${JSON.stringify(withHeader)}`).to.match(/^(\* OK|\+OK)/);
        await m.dovecot[0].containers.dovecot.waitLog(new RegExp(`rip=${client.replace(/\./g, "\\.")},`), 10_000);
        const without = await mailClient(m, "raw", { host: m.dovecot[0].pod.ip, port: t.containerPort, tls, ...noHeader(tls, quit), send: quit });
        expect(without.greeting ?? null, `${t.name} without a PROXY header: ${JSON.stringify(without)}`).to.equal(null);
      }
    });

    it("the in-cluster Services keep the plain listeners: the app submits on 587 without a PROXY header", async () => {
      const user = m.cfg.mail.appSender!;
      const r = await submit(m, { user: address(m, user), password: m.passwords[user], to: [address(m, m.cfg.mail.postmaster)], subject: `plain ${token()}` });
      queueId(steps(r)("data"));
    });
  });

  describe("prod with an authenticated smarthost (mail.relay + smtpRelayPassword)", () => {
    const ctx = useSandbox("mail-relay");
    const relayPassword = crypto.randomBytes(18).toString("base64url");
    // The recipient's domain exists (the relay path still checks recipient domains); its mail goes to the smarthost.
    const outside = "customer.test";
    let m: Mail;
    let smarthost: Pod;
    const events = () =>
      smarthost.containers[0].log.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, any>);
    before(async () => {
      const set = { "mail.relay": { host: "smarthost.relay.test", port: 2525, username: "platform-relay" } };
      // relay.tls is "secure" by default: Postfix verifies the relay's certificate against the
      // system CAs. The provider's certificate comes from a test CA that the postfix container
      // trusts (as the image trusts the public CAs a real provider's certificate chains to).
      const ca = testCa(path.join(ctx.sb.dir, "relay-ca"));
      const bundle = fs.readFileSync("/etc/ssl/certs/ca-certificates.crt", "utf8");
      m = await startMail(ctx.sb, {
        stack: "prod",
        set,
        secrets: { smtpRelayPassword: relayPassword },
        adjustPostfix: (c, name) => (name === "postfix" ? { ...c, files: [...(c.files ?? []), { path: "/etc/ssl/certs/ca-certificates.crt", content: bundle + ca.certPem }] } : c),
      });
      const relay = m.cfg.mail.relay!;
      // The provider's server, in its own pod, with a certificate for its name from that CA.
      const certs = path.join(ctx.sb.dir, "smarthost");
      fs.mkdirSync(certs, { recursive: true });
      spawnSync("openssl", ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${certs}/key.pem`, "-out", `${certs}/req.csr`, "-subj", `/CN=${relay.host}`], { stdio: "ignore" });
      fs.writeFileSync(`${certs}/ext`, `subjectAltName=DNS:${relay.host}\n`);
      spawnSync("openssl", ["x509", "-req", "-in", `${certs}/req.csr`, "-CA", ca.file, "-CAkey", ca.keyFile, "-CAcreateserial", "-out", `${certs}/cert.pem`, "-days", "1", "-extfile", `${certs}/ext`], { stdio: "ignore" });
      smarthost = ctx.sb.pod("smarthost", { namespace: "provider" });
      ctx.sb.addA(relay.host, smarthost.ip);
      ctx.sb.addMx(outside, `mx.${outside}`);
      await ctx.sb.applyDns();
      smarthost.start({
        name: "smarthost",
        argv: [PY, path.join(CLIENTS, "smarthost.py"), String(relay.port), "/certs/cert.pem", "/certs/key.pem"],
        env: { PATH: "/usr/bin:/bin" },
        mounts: [{ src: certs, dst: "/certs", readOnly: true }],
      });
      await smarthost.waitTcp(relay.port, 10_000);
    });
    startsTest(() => m);

    it("sends outbound mail to the configured smarthost over TLS, logged in with the configured user and secret password", async () => {
      const relay = m.cfg.mail.relay!;
      const to = `someone@${outside}`;
      const subject = `relay ${token()}`;
      queueId(steps(await submit(m, { user: m.app.SMTP_USER, password: m.app.SMTP_PASSWORD, to: [to], subject }))("data"));
      const message = await waitFor("the smarthost to receive the message", () => events().find((e) => e.event === "message" && Buffer.from(e.data_b64, "base64").toString().includes(subject)), 20_000);
      const auth = events().find((e) => e.event === "auth");
      expect(auth, JSON.stringify(events())).to.not.equal(undefined);
      expect(auth!.tls).to.match(/^TLSv1\.[23]$/);
      expect(auth!.username).to.equal(relay.username);
      expect(auth!.password).to.equal(relayPassword);
      // Verified, not merely encrypted (smtp_tls_security_level = secure).
      await m.postfix.containers.postfix.waitLog(new RegExp(`Verified TLS connection established to ${relay.host.replace(/\./g, "\\.")}`), 10_000);
      expect(message.tls).to.match(/^TLSv1\.[23]$/);
      expect(message.mail_from).to.equal(m.app.SMTP_FROM);
      expect(message.rcpt).to.deep.equal([to]);
      // What leaves the platform is signed and verifies against the published key.
      const dkim = await dkimVerify(ctx.sb, m, Buffer.from(message.data_b64, "base64"));
      expect(dkim.signature?.s).to.equal(m.cfg.mail.postfix.dkim.selector);
      expect(dkim.verified, dkim.log.join("\n")).to.equal(true);
    });
  });

  describe("prod with Dovecot on a shared ReadWriteMany volume (two replicas)", () => {
    const ctx = useSandbox("mail-rwx");
    let m: Mail;
    before(async () => {
      m = await startMail(ctx.sb, {
        stack: "prod",
        set: { "mail.dovecot.replicas": 2, "mail.dovecot.storage.accessMode": "ReadWriteMany", "mail.dovecot.storage.storageClass": "nfs-client" },
        dovecotReplicas: 2,
      });
    });
    startsTest(() => m);

    it("both replicas mount the one shared claim; mail delivered through either is read through the other", async () => {
      const claim = object(m.ev, "StatefulSet", "dovecot", m.ns).spec.template.spec.volumes.find((v: K8sObject) => v.name === "mail").persistentVolumeClaim.claimName;
      expect(object(m.ev, "PersistentVolumeClaim", claim, m.ns).spec.accessModes).to.deep.equal(["ReadWriteMany"]);
      const user = m.cfg.mail.postmaster;
      // Per-pod names of the headless governing Service; they reach the container ports directly.
      const replica = (i: number) => `dovecot-${i}.dovecot-headless.${m.ns}.svc.cluster.local`;
      const subjects = [`rwx-0 ${token()}`, `rwx-1 ${token()}`];
      // Postfix's route to Dovecot (LMTP), once to each replica.
      for (const i of [0, 1]) {
        const r = await mailClient(m, "smtp", {
          host: replica(i),
          port: DOVECOT_PORTS.lmtp,
          lmtp: true,
          steps: [["ehlo"], ["mail", "sender@example.net"], ["rcpt", address(m, user)], ["data", { from: "sender@example.net", to: address(m, user), subject: subjects[i] }]],
        });
        expect(steps(r)("data").code, JSON.stringify(r)).to.equal(250);
      }
      for (const i of [0, 1]) {
        const other = await imapRead(m, { user, find: subjects[1 - i], host: replica(i), port: DOVECOT_PORTS.imap });
        expect(other.found, `replica ${i} reads what replica ${1 - i} delivered`).to.equal(1);
      }
      const maildir = path.join(ctx.sb.dir, "claims", claim, m.domain, user, "Maildir");
      expect(fs.existsSync(maildir), maildir).to.equal(true);
    });

    it("a message submitted to Postfix reaches the shared mailboxes over LMTP", async () => {
      const user = m.cfg.mail.postmaster;
      const subject = `rwx-postfix ${token()}`;
      queueId(steps(await submit(m, { user: m.app.SMTP_USER, password: m.app.SMTP_PASSWORD, to: [address(m, user)], subject }))("data"));
      for (const i of [0, 1]) expect((await imapRead(m, { user, find: subject, host: `dovecot-${i}.dovecot-headless.${m.ns}.svc.cluster.local`, port: DOVECOT_PORTS.imap })).found).to.equal(1);
    });
  });
});
