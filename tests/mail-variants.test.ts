// Mail tier variants (shared mailboxes, PROXY protocol, a relay), bad configs, and the probe
// commands run for real against a fake server.
 
import { expect } from "chai";
import { execFile } from "child_process";
import * as net from "net";
import { CAPABILITIES, IMAP_GREETING, LINT_EXCEPTIONS, SMTP_GREETING, greetingCheck } from "../components/mail/security";
import { mailDnsRecords, txtStrings, zoneLines } from "../components/mail/dns";
import { mailModel, PATHS, PROXY_PORTS } from "../components/mail/model";
import { RATELIMIT_EXEMPT_RCPTS } from "../components/mail/rspamd";
import { mainCf } from "../components/mail/postfix";
import { parseConfig } from "../config/loader";
import { requiredSecrets } from "../config/schema";
import { configOf, evaluate, findObject, objectsOfKind, ok, isSecretAt, rejection } from "./harness";
import { postconf } from "./mailutil";
import { matchesSelector } from "./reachability";
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
    expect(findObject(ev, "Service", "postfix", NS).spec.ports.map((p: any) => p.targetPort)).to.deep.equal(["smtp", "smtps", "submission", "metrics"]);
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
    // Rules whose peers select the api's pods (several workloads may share one selector).
    const apiPods = findObject(ev, "Deployment", "api").spec.template.metadata.labels;
    const fromApi = pol.ingress.filter((r: any) => r.from.some((f: any) => f.podSelector && !f.ipBlock && matchesSelector(apiPods, f.podSelector)));
    expect(fromApi.flatMap((r: any) => r.ports.map((p: any) => p.port))).to.deep.equal([587]);
  });

  it("sends through an authenticated relay when configured, with the password from secret config", async () => {
    const ev = ok(
      await evaluate({ stack: "prod", set: { "mail.relay": { host: "smtp.relay.example", port: 2525, username: "apikey" } }, secrets: { smtpRelayPassword: "s3cret" } }),
    );
    const main = postconf(findObject(ev, "ConfigMap", "postfix-config", NS).data["main.cf"]);
    expect(main.relayhost).to.equal("[smtp.relay.example]:2525");
    // Verified by default: the certificate must chain to the system CAs and name the relay host.
    expect(main.smtp_tls_security_level).to.equal("secure");
    expect(main.smtp_tls_secure_cert_match).to.equal("nexthop");
    expect(findObject(ev, "ConfigMap", "postfix-config", NS).data["main.cf"]).to.match(/^smtp_tls_CAfile = \/etc\/ssl\/certs\/ca-certificates\.crt$/m);
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

describe("mail tier: abuse defences rendered from config", () => {
  const prodCfg = (set: Record<string, unknown> = {}) => configOf("prod", set);
  const mainOf = (ev: any) => findObject(ev, "ConfigMap", "postfix-config", NS).data["main.cf"] as string;

  it("anvil limits: the unit is burst / rate, the message limit is the burst, other per-minute rates are scaled to the unit (seed 003's numbers in prod)", async () => {
    const ev = ok(await evaluate({ stack: "prod" }));
    const l = prodCfg().mail.postfix.limits;
    expect(l.messageRate).to.deep.equal({ perMinute: 100, burst: 20 });
    expect(l.maxConnections).to.equal(10000);
    expect(l.timeoutSeconds).to.equal(300);
    const unit = (60 * l.messageRate.burst) / l.messageRate.perMinute;
    const main = postconf(mainOf(ev));
    expect(main.anvil_rate_time_unit).to.equal(`${unit}s`);
    expect(main.smtpd_client_message_rate_limit).to.equal(String(l.messageRate.burst));
    expect(main.smtpd_client_connection_rate_limit).to.equal(String((l.connectionRatePerMinute * unit) / 60));
    expect(main.smtpd_client_auth_rate_limit).to.equal(String((l.authRatePerMinute * unit) / 60));
    expect(main.smtpd_client_connection_count_limit).to.equal(String(l.connectionsPerClient));
    expect(main.smtpd_timeout).to.equal(`${l.timeoutSeconds}s`);
    expect(main.postscreen_pre_queue_limit).to.equal(String(l.maxConnections));
    // Authenticated submission is limited per user (Rspamd), not per client address.
    const master = findObject(ev, "ConfigMap", "postfix-config", NS).data["master.cf"] as string;
    const block = (svc: string) => master.split(/\n(?=\S)/).find((b: string) => b.startsWith(`${svc} `))!;
    for (const svc of ["submission", "smtps"]) expect(block(svc)).to.include("-o smtpd_client_message_rate_limit=0");
    expect(block("smtpd")).to.match(new RegExp(`^smtpd +pass +- +- +n +- +${l.smtpdProcesses} +smtpd`));
  });

  it("Rspamd limits each authenticated user to the configured bucket: every message counts once, no recipient exempts one, the bucket never adapts", async () => {
    const u = { perHour: 120, burst: 7 };
    const ev = ok(await evaluate({ stack: "prod", set: { "mail.postfix.submission.userRateLimit": u } }));
    const data = findObject(ev, "ConfigMap", "rspamd-config", NS).data;
    const conf = data["ratelimit.conf"] as string;
    expect(conf).to.match(new RegExp(`^rates \\{\n  user = \\{\n    bucket = \\{ burst = ${u.burst}; rate = "${u.perHour} / 1h"; skip_recipients = true; \\}\n  \\}\n\\}$`, "m"));
    // Rspamd's default exempts postmaster@/mailer-daemon@ recipients; the list is replaced by a file the pod mounts, with no entry.
    const exempt = /^whitelisted_rcpts = "([^"]+)";$/m.exec(conf)![1];
    expect(exempt).to.equal(`${PATHS.rspamdLocal}/${RATELIMIT_EXEMPT_RCPTS}`);
    expect(data[RATELIMIT_EXEMPT_RCPTS].split("\n").filter((l: string) => l.trim() && !l.startsWith("#"))).to.deep.equal([]);
    const pod = findObject(ev, "StatefulSet", "postfix", NS).spec.template.spec;
    const local = pod.volumes.find((v: any) => v.name === "rspamd-local");
    expect(local.configMap.items.map((i: any) => i.path)).to.include(RATELIMIT_EXEMPT_RCPTS);
    expect(pod.containers.find((c: any) => c.name === "rspamd").volumeMounts.find((m: any) => m.name === "rspamd-local").mountPath).to.equal(PATHS.rspamdLocal);
    // Neither Rspamd 3.4's always-on multipliers nor 3.9's dynamic mode may grow the bucket.
    expect(conf).to.include("dynamic_rate_limit = false;").and.include("max_rate_mult = 1;").and.include("max_bucket_mult = 1;");
  });

  it("postscreen answers port 25 with the configured DNSBL weights, threshold, pregreet wait and allow/deny table; off puts smtpd back", async () => {
    const set = { "mail.postscreen.allow": ["203.0.113.0/24"], "mail.postscreen.deny": ["198.51.100.7/32"], "mail.postscreen.greetWaitSeconds": 3 };
    const ev = ok(await evaluate({ stack: "prod", set }));
    const p = configOf(ev).mail.postscreen;
    const main = postconf(mainOf(ev));
    expect(main.postscreen_dnsbl_sites).to.equal(p.dnsbl.sites.map((s: any) => `${s.zone}*${s.weight}`).join(", "));
    expect(main.postscreen_dnsbl_threshold).to.equal(String(p.dnsbl.threshold));
    expect(main.postscreen_greet_wait).to.equal("3s");
    expect(main.postscreen_greet_action).to.equal("enforce");
    const cm = findObject(ev, "ConfigMap", "postfix-config", NS).data;
    expect(cm["postscreen_access.cidr"]).to.equal("198.51.100.7/32 reject\n203.0.113.0/24 permit\n");
    expect(cm["run.sh"]).to.include("postscreen_access.cidr");
    expect(cm["master.cf"]).to.match(/^smtp +inet +n +- +n +- +1 +postscreen$/m).and.match(/^dnsblog +unix/m).and.match(/^tlsproxy +unix/m);
    const off = ok(await evaluate({ stack: "prod", set: { "mail.postscreen.enabled": false } }));
    const offCm = findObject(off, "ConfigMap", "postfix-config", NS).data;
    expect(offCm["master.cf"]).to.match(/^smtp +inet .* smtpd$/m).and.not.include("postscreen");
    expect(offCm["main.cf"]).to.not.include("postscreen_");
    expect(offCm["postscreen_access.cidr"]).to.be.undefined;
  });

  it("with PROXY protocol, port 25's twin is a postscreen that reads the PROXY header, sharing the verdict cache", async () => {
    const ev = ok(await evaluate({ stack: "prod", set: { "mail.exposure.proxyProtocol": { enabled: true, trustedNetworks: ["10.0.0.0/8"], annotations: {} } } }));
    const master = findObject(ev, "ConfigMap", "postfix-config", NS).data["master.cf"];
    expect(master).to.match(new RegExp(`^${PROXY_PORTS.postfix.smtp} +inet +n +- +n +- +1 +postscreen\n(  -o .*\n)*  -o postscreen_upstream_proxy_protocol=haproxy`, "m"));
    expect(postconf(mainOf(ev)).postscreen_cache_map).to.match(/^proxy:btree:/);
  });

  it("Rspamd's actions, greylisting and DMARC enforcement come from config; ClamAV is opt-in", async () => {
    const set = { "mail.rspamd.thresholds": { reject: 20, addHeader: 8, greylist: 5 }, "mail.rspamd.greylisting": true };
    const ev = ok(await evaluate({ stack: "prod", set }));
    const data = findObject(ev, "ConfigMap", "rspamd-config", NS).data;
    expect(data["actions.conf"]).to.equal("reject = 20;\nadd_header = 8;\ngreylist = 5;\n");
    expect(data["greylist.conf"]).to.equal("enabled = true;\n");
    expect(data["dmarc.conf"]).to.include('reject = "reject"');
    expect(data["antivirus.conf"]).to.be.undefined;
    const def = findObject(ok(await evaluate({ stack: "prod" })), "ConfigMap", "rspamd-config", NS).data;
    expect(def["actions.conf"]).to.include("greylist = null;");
    const withAv = ok(await evaluate({ stack: "prod", set: { "mail.clamav.enabled": true } }));
    const pod = findObject(withAv, "StatefulSet", "postfix", NS).spec.template.spec;
    const clamd = pod.containers.find((c: any) => c.name === "clamav");
    expect(clamd.image).to.equal(prodCfg().mail.clamav.image);
    expect(clamd.securityContext.runAsNonRoot).to.equal(true);
    expect(findObject(withAv, "ConfigMap", "rspamd-config", NS).data["antivirus.conf"]).to.include('servers = "127.0.0.1:3310"');
    const egress = findObject(withAv, "NetworkPolicy", "allow-postfix", NS).spec.egress.filter((r: any) => r.to[0].ipBlock).flatMap((r: any) => r.ports.map((p: any) => p.port));
    expect(egress).to.include(443);
    expect(pod.containers.map((c: any) => c.name)).to.deep.equal(["postfix", "rspamd", "redis", "exporter", "clamav"]);
  });

  it("relay TLS: an explicit opt-out to encrypt, or a private CA that replaces the system CAs for verification", async () => {
    const enc = ok(await evaluate({ stack: "prod", set: { "mail.relay": { host: "relay.example.net", tls: "encrypt" } } }));
    expect(postconf(mainOf(enc)).smtp_tls_security_level).to.equal("encrypt");
    const pem = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n";
    const ca = ok(await evaluate({ stack: "prod", set: { "mail.relay": { host: "relay.example.net", caPem: pem } } }));
    expect(postconf(mainOf(ca)).smtp_tls_security_level).to.equal("secure");
    expect(mainOf(ca)).to.match(/^smtp_tls_CAfile = \/etc\/postfix-k8s\/relay-ca\.pem$/m);
    expect(findObject(ca, "ConfigMap", "postfix-config", NS).data["relay-ca.pem"]).to.equal(pem);
  });

  it("Dovecot delays every failed login by the configured seconds", async () => {
    const ev = ok(await evaluate({ stack: "prod", set: { "mail.dovecot.authFailureDelaySeconds": 5 } }));
    expect(findObject(ev, "ConfigMap", "dovecot-config", NS).data["dovecot.conf"]).to.include("auth_failure_delay = 5 secs");
  });
});

describe("mail tier: outside-lint findings", () => {
  /** What kube-linter reports for these three checks (its documented rules), per workload. */
  function findings(obj: any): string[] {
    const out = new Set<string>();
    const spec = obj.spec.template.spec;
    for (const c of spec.containers) {
      const sc = c.securityContext ?? {};
      if (!(sc.runAsNonRoot === true || (spec.securityContext?.runAsNonRoot === true && sc.runAsNonRoot !== false)) || sc.runAsUser === 0) out.add("run-as-non-root");
      if (sc.readOnlyRootFilesystem !== true) out.add("no-read-only-root-fs");
      if ((c.ports ?? []).some((p: any) => p.containerPort < 1024)) out.add("privileged-ports");
      if (sc.privileged || sc.allowPrivilegeEscalation !== false) out.add("privilege-escalation-container");
      for (const cap of sc.capabilities?.add ?? []) if (["SYS_ADMIN", "NET_ADMIN", "NET_RAW"].includes(cap)) out.add("dangerous-capabilities");
    }
    return [...out].sort();
  }

  for (const stack of ["dev", "prod"]) {
    it(`${stack}: the only findings left are Postfix's, each annotated on the object with its reason`, async () => {
      const ev = ok(await evaluate({ stack }));
      const ns = `email-platform-mail-${stack}`;
      const workloads = objectsOfKind(ev, "StatefulSet").filter((s: any) => s.metadata.namespace === ns);
      expect(workloads.map((w: any) => w.metadata.name).sort()).to.deep.equal(["dovecot", "postfix"]);
      for (const w of workloads) {
        const annotated = Object.keys(w.metadata.annotations ?? {}).filter((k) => k.startsWith("ignore-check.kube-linter.io/")).map((k) => k.split("/")[1]).sort();
        expect(findings(w), w.metadata.name).to.deep.equal(annotated);
        for (const check of annotated) expect(w.metadata.annotations[`ignore-check.kube-linter.io/${check}`]).to.equal(LINT_EXCEPTIONS[check]);
      }
      expect(findings(workloads.find((w: any) => w.metadata.name === "dovecot"))).to.deep.equal([]);
      expect(Object.keys(LINT_EXCEPTIONS).sort()).to.deep.equal(findings(workloads.find((w: any) => w.metadata.name === "postfix")));
    });
  }
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
    ["a burst larger than the rate", { "mail.postfix.limits.messageRate": { perMinute: 10, burst: 20 } }, /mail\.postfix\.limits\.messageRate\.burst: must not exceed messageRate\.perMinute \(10\).*got 20/],
    ["a burst and rate that give no whole anvil unit", { "mail.postfix.limits.messageRate": { perMinute: 70, burst: 20 } }, /mail\.postfix\.limits\.messageRate\.burst: must make 60 \* burst \/ perMinute a whole number of seconds.*17\.14 s.*got 20/],
    ["a connection rate the anvil unit cannot count", { "mail.postfix.limits.connectionRatePerMinute": 7 }, /mail\.postfix\.limits\.connectionRatePerMinute: must be a multiple of 5 \(Postfix counts per 12 s.*got 7/],
    ["an auth rate the anvil unit cannot count", { "mail.postfix.limits.authRatePerMinute": 12 }, /mail\.postfix\.limits\.authRatePerMinute: must be a multiple of 5.*got 12/],
    ["a network both allowed and denied", { "mail.postscreen.allow": ["198.51.100.0/24"], "mail.postscreen.deny": ["198.51.100.0/24"] }, /mail\.postscreen\.deny\.0: is also in postscreen\.allow.*got "198\.51\.100\.0\/24"/],
    ["a DNSBL zone that is not one", { "mail.postscreen.dnsbl": { sites: [{ zone: "not a zone", weight: 1 }], threshold: 1 } }, /mail\.postscreen\.dnsbl\.sites\.0\.zone: must be a DNSBL zone/],
    ["DNSBL weights that can never reach the threshold", { "mail.postscreen.dnsbl": { sites: [{ zone: "list.example", weight: -1 }], threshold: 1 } }, /mail\.postscreen\.dnsbl\.sites: must give at least one zone a positive weight/],
    ["an add-header score at or above the reject score", { "mail.rspamd.thresholds": { reject: 10, addHeader: 10, greylist: 4 } }, /mail\.rspamd\.thresholds\.addHeader: must be below thresholds\.reject \(10\).*got 10/],
    ["greylisting above the reject score", { "mail.rspamd.greylisting": true, "mail.rspamd.thresholds": { reject: 10, addHeader: 6, greylist: 12 } }, /mail\.rspamd\.thresholds\.greylist: must be below thresholds\.reject/],
    ["a relay CA without verification", { "mail.relay": { host: "relay.example.net", tls: "encrypt", caPem: "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----" } }, /mail\.relay\.caPem: is only used with relay\.tls "secure"/],
    ["a per-user burst of zero", { "mail.postfix.submission.userRateLimit": { perHour: 500, burst: 0 } }, /mail\.postfix\.submission\.userRateLimit\.burst: .*1.*got 0/],
    ["a scrape interval the port 25 probe cannot fit in", { "monitoring.scrapeInterval": "10s" }, /monitoring\.scrapeInterval: must be at least 12s, the mail probes' scrape timeout \(mail\.postscreen\.greetWaitSeconds \(6\) \+ 6 s.*got "10s"/],
    ["a blackbox exporter image without a tag", { "monitoring.blackbox.image": "quay.io/prometheus/blackbox-exporter" }, /monitoring\.blackbox\.image: must pin a tag or digest/],
    ["an auth failure delay above Dovecot's cap", { "mail.dovecot.authFailureDelaySeconds": 60 }, /mail\.dovecot\.authFailureDelaySeconds: .*15.*got 60/],
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
    // Only Postfix keeps any: Rspamd, Redis, the exporter and Dovecot run unprivileged.
    expect(Object.keys(CAPABILITIES)).to.deep.equal(["postfix"]);
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
