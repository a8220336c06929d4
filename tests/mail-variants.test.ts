// Mail tier variants (shared mailboxes, PROXY protocol, a relay), bad configs, and the probe
// commands run for real against a fake server.
 
import { expect } from "chai";
import { execFile } from "child_process";
import * as net from "net";
import { CAPABILITIES, IMAP_GREETING, SMTP_GREETING, greetingCheck } from "../components/mail/security";
import { mailDnsRecords, txtStrings, zoneLines } from "../components/mail/dns";
import { mailModel, PROXY_PORTS } from "../components/mail/model";
import { mainCf } from "../components/mail/postfix";
import { parseConfig } from "../config/loader";
import { requiredSecrets } from "../config/schema";
import { evaluate, findObject, objectsOfKind, ok, isSecretAt, rejection } from "./harness";
import { postconf } from "./mailutil";
import { BASELINE_CAPS } from "./checks";

const NS = "email-platform-mail-prod";

describe("mail tier variants (prod)", () => {
  it("runs two Dovecot replicas on one shared ReadWriteMany claim, with NFS-safe settings", async () => {
    const ev = ok(
      await evaluate({ stack: "prod", set: { "mail.dovecot.replicas": 2, "mail.dovecot.storage.accessMode": "ReadWriteMany", "mail.dovecot.storage.storageClass": "nfs-client" } }),
    );
    const sts = findObject(ev, "StatefulSet", "dovecot", NS).spec;
    expect(sts.replicas).to.equal(2);
    expect(sts.volumeClaimTemplates).to.be.undefined;
    const pvc = findObject(ev, "PersistentVolumeClaim", "dovecot-mail", NS);
    expect(pvc.spec.accessModes).to.deep.equal(["ReadWriteMany"]);
    expect(pvc.spec.storageClassName).to.equal("nfs-client");
    expect(pvc.spec.resources.requests.storage).to.equal("10Gi");
    expect(sts.template.spec.volumes.find((v: any) => v.name === "mail").persistentVolumeClaim.claimName).to.equal("dovecot-mail");
    const conf = findObject(ev, "ConfigMap", "dovecot-config", NS).data["dovecot.conf"];
    expect(conf).to.include("mmap_disable = yes").and.include("mail_fsync = always");
    expect(findObject(ev, "PodDisruptionBudget", "dovecot", NS).spec.maxUnavailable).to.equal(1);
    const rec = ev.resources.find((r) => r.inputs?.kind === "PersistentVolumeClaim")!;
    expect(rec.options.protect).to.equal(true);
    expect(rec.options.retainOnDelete).to.equal(true);
  });

  it("with PROXY protocol: separate proxied listeners behind the load balancer, plain ports for in-cluster clients", async () => {
    const ev = ok(await evaluate({ stack: "prod", set: { "mail.exposure.proxyProtocol": { enabled: true, trustedNetworks: ["10.0.0.0/8"], annotations: { "lb.example/proxy": "v2" } } } }));
    const pub = findObject(ev, "Service", "postfix-public", NS);
    expect(pub.metadata.annotations["lb.example/proxy"]).to.equal("v2");
    const pod = findObject(ev, "StatefulSet", "postfix", NS).spec.template.spec.containers[0];
    for (const p of pub.spec.ports) {
      const cp = pod.ports.find((x: any) => x.name === p.targetPort);
      expect(cp.containerPort).to.equal((PROXY_PORTS.postfix as any)[p.name]);
    }
    const master = findObject(ev, "ConfigMap", "postfix-config", NS).data["master.cf"];
    for (const port of Object.values(PROXY_PORTS.postfix)) expect(master).to.match(new RegExp(`^${port} +inet[^]*?smtpd_upstream_proxy_protocol=haproxy`, "m"));
    expect(master).to.match(/^submission +inet/m);
    // In-cluster Service keeps the plain listeners (the api sends no PROXY header).
    expect(findObject(ev, "Service", "postfix", NS).spec.ports.map((p: any) => p.targetPort)).to.deep.equal(["smtp", "smtps", "submission"]);
    const dovecot = findObject(ev, "ConfigMap", "dovecot-config", NS).data["dovecot.conf"];
    expect(dovecot).to.include("haproxy_trusted_networks = 10.0.0.0/8");
    expect(dovecot.match(/haproxy = yes/g)).to.have.length(4);
    const pol = findObject(ev, "NetworkPolicy", "allow-postfix", NS).spec;
    const fromCidr = (cidr: string) => pol.ingress.filter((r: any) => r.from[0].ipBlock?.cidr === cidr).flatMap((r: any) => r.ports.map((p: any) => p.port));
    expect(fromCidr("0.0.0.0/0")).to.deep.equal(Object.values(PROXY_PORTS.postfix));
    // The load balancer's own range may send the proxied connections too.
    expect(fromCidr("10.0.0.0/8")).to.deep.equal(Object.values(PROXY_PORTS.postfix));
    // From outside the cluster only the proxied listeners are open; the app's in-cluster submission stays on 587.
    const fromOutside = pol.ingress.filter((r: any) => r.from.some((f: any) => f.ipBlock)).flatMap((r: any) => r.ports.map((p: any) => p.port));
    for (const plain of [25, 465, 587]) expect(fromOutside).not.to.include(plain);
    const fromApi = pol.ingress.filter((r: any) => r.from.some((f: any) => f.podSelector?.matchLabels?.["app.kubernetes.io/name"] === "api"));
    expect(fromApi.flatMap((r: any) => r.ports.map((p: any) => p.port))).to.deep.equal([587]);
  });

  it("sends through an authenticated relay when configured, with the password from secret config", async () => {
    const ev = ok(
      await evaluate({ stack: "prod", set: { "mail.relay": { host: "smtp.relay.example", port: 2525, username: "apikey" } }, secrets: { smtpRelayPassword: "s3cret" } }),
    );
    const main = postconf(findObject(ev, "ConfigMap", "postfix-config", NS).data["main.cf"]);
    expect(main.relayhost).to.equal("[smtp.relay.example]:2525");
    expect(main.smtp_tls_security_level).to.equal("encrypt");
    expect(main.smtp_sasl_password_maps).to.equal("texthash:/etc/postfix/sasl_passwd");
    const secret = findObject(ev, "Secret", "postfix-relay", NS);
    expect(secret.stringData.sasl_passwd).to.equal("[smtp.relay.example]:2525 apikey:s3cret\n");
    const rec = ev.resources.find((r) => r.inputs?.metadata?.name === "postfix-relay")!;
    expect(isSecretAt(rec, "stringData.sasl_passwd")).to.equal(true);
    expect(objectsOfKind(ev, "ConfigMap").some((c: any) => JSON.stringify(c.data).includes("s3cret"))).to.equal(false);
    const spec = findObject(ev, "StatefulSet", "postfix", NS).spec.template.spec;
    expect(spec.volumes.find((v: any) => v.name === "relay").secret.secretName).to.equal("postfix-relay");
    const egress = findObject(ev, "NetworkPolicy", "allow-postfix", NS).spec.egress.filter((r: any) => r.to[0].ipBlock);
    expect(egress.flatMap((r: any) => r.ports.map((p: any) => p.port))).to.include(2525);
  });
});

describe("mail tier disabled", () => {
  it("creates no mail objects and needs no domain", async () => {
    const ev = ok(await evaluate({ stack: "dev", set: { "mail.enabled": false, "mail.domain": undefined } }));
    expect(ev.resources.some((r) => r.type === "platform:mail:MailTier")).to.equal(false);
    expect(objectsOfKind(ev, "StatefulSet").filter((s: any) => ["postfix", "dovecot"].includes(s.metadata.name))).to.have.length(0);
    expect(ev.outputs.mailDnsRecords).to.be.undefined;
  });
});

describe("mail tier: bad configs are rejected before any resource", () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["two Dovecot replicas on ReadWriteOnce", { "mail.dovecot.replicas": 2 }, /mail\.dovecot\.replicas: must be 1 unless dovecot\.storage\.accessMode is ReadWriteMany.*got 2/],
    ["ReadWriteMany without a storage class", { "mail.dovecot.storage.accessMode": "ReadWriteMany" }, /mail\.dovecot\.storage\.storageClass: is required with ReadWriteMany/],
    ["submission without TLS", { "mail.postfix.submission.tls": "none" }, /mail\.postfix\.submission\.tls: must be "required".*got "none"/],
    ["a missing domain", { "mail.domain": undefined }, /mail\.domain: is required when mail\.enabled is true.*got nothing/],
    ["relay credentials without the password", { "mail.relay": { host: "smtp.relay.example", username: "apikey" } }, /smtpRelayPassword: is a required secret \(asked for by mail\.relay\.username\)/],
    ["a postmaster that is not a user", { "mail.postmaster": "boss" }, /mail\.postmaster: must be one of mail\.users/],
    ["PROXY protocol without trusted networks", { "mail.exposure.proxyProtocol.enabled": true }, /mail\.exposure\.proxyProtocol\.trustedNetworks: must list/],
  ];
  for (const [what, set, message] of cases) {
    it(`rejects ${what}`, async () => {
      expect(await rejection({ stack: "prod", set })).to.match(message);
    });
  }
});

/** Serves one greeting to each connection and records what the client sends back. */
function fakeServer(greeting: string): Promise<{ port: number; received: string[]; close: () => void }> {
  const received: string[] = [];
  const server = net.createServer((sock) => {
    sock.write(greeting);
    sock.on("data", (d) => received.push(d.toString()));
    sock.on("error", () => undefined);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as net.AddressInfo).port, received, close: () => server.close() })),
  );
}

function run(command: string[]): Promise<number> {
  return new Promise((resolve) => execFile(command[0], command.slice(1), { timeout: 10000 }, (err) => resolve(err ? ((err as any).code ?? 1) : 0)));
}

describe("mail probes, run for real", () => {
  it("the SMTP probe passes on a 220 banner, says QUIT, and fails on a 554 banner or a closed port", async () => {
    const good = await fakeServer("220 mail.example.com ESMTP Postfix\r\n");
    const bad = await fakeServer("554 5.3.2 not now\r\n");
    try {
      const cmd = (port: number) => SMTP_GREETING(25).map((a) => a.replace("/25 ", `/${port} `));
      expect(await run(cmd(good.port))).to.equal(0);
      await new Promise((r) => setTimeout(r, 50));
      expect(good.received.join("")).to.equal("QUIT\r\n");
      expect(await run(cmd(bad.port))).not.to.equal(0);
    } finally {
      good.close();
      bad.close();
    }
    const closed = await fakeServer("");
    closed.close();
    expect(await run(greetingCheck(closed.port, "220 ", "QUIT"))).not.to.equal(0);
  });

  it("the IMAP probe passes on '* OK' and fails on '* BYE'", async () => {
    const good = await fakeServer("* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n");
    const bye = await fakeServer("* BYE shutting down\r\n");
    try {
      const cmd = (port: number) => IMAP_GREETING(143).map((a) => a.replace("/143 ", `/${port} `));
      expect(await run(cmd(good.port))).to.equal(0);
      expect(await run(cmd(bye.port))).not.to.equal(0);
    } finally {
      good.close();
      bye.close();
    }
  });
});

describe("mail helpers", () => {
  it("keeps only capabilities Pod Security baseline allows", () => {
    for (const caps of Object.values(CAPABILITIES)) for (const c of Object.keys(caps)) expect(BASELINE_CAPS.has(c), c).to.equal(true);
    expect(Object.keys(CAPABILITIES.dovecot)).not.to.include("DAC_OVERRIDE");
  });

  it("relays without credentials when no relay user is set (no secret asked for)", () => {
    const cfg = parseConfig({ environment: "prod", cluster: { context: "prod", apiServer: { cidrs: ["10.0.0.2/32"] } }, services: { api: { image: "registry.example.com/email-api:1.0.0" } }, workers: { image: "registry.example.com/email-worker:1.0.0" }, mail: { domain: "example.org", hostname: "mx1.example.org", relay: { host: "relay.example.net", port: 25 } } }, { stack: "prod" });
    const main = postconf(mainCf(mailModel(cfg)));
    expect(main.relayhost).to.equal("[relay.example.net]:25");
    expect(main.myhostname).to.equal("mx1.example.org");
    expect(main.smtp_sasl_auth_enable).to.be.undefined;
    expect([...requiredSecrets(cfg).keys()]).not.to.include("smtpRelayPassword");
  });

  it("adds SPF mechanisms from config before -all", () => {
    const r = mailDnsRecords({ domain: "example.org", hostname: "mail.example.org", selector: "s1", publicKeyPem: "-----BEGIN PUBLIC KEY-----\nQUJD\n-----END PUBLIC KEY-----\n", dmarcPolicy: "reject", spfExtra: ["ip4:203.0.113.7"] });
    expect(r.spf.value).to.equal("v=spf1 mx ip4:203.0.113.7 -all");
    expect(r.dkim.value).to.equal("v=DKIM1; k=rsa; p=QUJD");
    expect(r.dmarc.value).to.match(/^v=DMARC1; p=reject;/);
  });

  it("splits long TXT values into 255-character strings for zone files", () => {
    const value = `v=DKIM1; k=rsa; p=${"A".repeat(392)}`;
    const strings = txtStrings(value);
    const parts = strings.match(/"[^"]*"/g)!;
    expect(parts.map((p) => p.length - 2)).to.deep.equal([255, value.length - 255]);
    expect(parts.map((p) => p.slice(1, -1)).join("")).to.equal(value);
    expect(zoneLines({ dkim: { name: "s._domainkey.example.com.", type: "TXT", value, ttl: 300 } })).to.equal(`s._domainkey.example.com. 300 IN TXT ${strings}\n`);
  });
});
