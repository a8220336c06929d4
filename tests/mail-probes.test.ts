// Per-port mail availability: the blackbox exporter in the mail namespace, its rendered modules,
// one Probe per public mail port aimed at every replica, the alerts on probe_success, and the
// policy edges the probes need. The daemon tier runs the same config against the real daemons
// (tests/daemons/mail-abuse.test.ts).
import { expect } from "chai";
import { parse } from "yaml";
import { BLACKBOX, MAIL_PROBES, probeTimeoutSeconds } from "../components/monitoring/blackbox";
import { alertGroups } from "../components/monitoring/rules";
import { MAIL_PROBE_SLACK_SECONDS } from "../config/observability";
import { configOf, evaluate, evaluateStack, findObject, objectsOfKind, ok } from "./harness";
import type { Evaluation, K8sObject } from "./harness";
import { podSecurityViolations, validateObject } from "./checks";
import { matchesSelector } from "./reachability";

const byName = (ev: Evaluation, kind: string, ns: string) => objectsOfKind(ev, kind).filter((o) => o.metadata.namespace === ns);

describe("mail probes (blackbox exporter), prod", () => {
  const cfg = configOf("prod");
  const ns = cfg.platform.mailNamespace;
  let ev: Evaluation;
  before(async () => {
    ev = ok(await evaluateStack("prod"));
  });

  it("probes every port of the public mail Services, once each, with the module that speaks its protocol", () => {
    const probes = byName(ev, "Probe", ns);
    const publicPorts = ["postfix-public", "dovecot-public"].flatMap((s) => findObject(ev, "Service", s, ns).spec.ports.map((p: K8sObject) => `${p.name}/${p.port}`));
    expect(probes.map((p) => `${p.spec.targets.staticConfig.labels.protocol}/${p.spec.targets.staticConfig.labels.port}`).sort()).to.deep.equal(publicPorts.sort());
    const modules = parse(findObject(ev, "ConfigMap", `${BLACKBOX}-config`, ns).data["config.yml"]).modules;
    for (const p of probes) {
      const protocol = p.spec.targets.staticConfig.labels.protocol;
      const m = modules[p.spec.module];
      expect(m, `${protocol}: module ${p.spec.module}`).to.not.equal(undefined);
      expect(m.prober).to.equal("tcp");
      // Implicit TLS exactly on 465/993/995; the others upgrade with STARTTLS/STLS after the greeting.
      const implicit = ["smtps", "imaps", "pop3s"].includes(protocol);
      expect(m.tcp.tls, protocol).to.equal(implicit);
      expect(m.tcp.query_response.some((s: K8sObject) => s.starttls), protocol).to.equal(!implicit);
      expect(m.tcp.query_response[0].expect, protocol).to.equal(protocol.startsWith("imap") ? "^\\* OK" : protocol.startsWith("pop3") ? "^\\+OK" : "^220 ");
      // Submission is only up when AUTH is offered (smtpd asks Dovecot's auth service for mechanisms).
      expect(m.tcp.query_response.some((s: K8sObject) => (s.expect ?? "").startsWith("^250[ -]AUTH")), protocol).to.equal(["submission", "smtps"].includes(protocol));
      // Every line sent ends in CRLF (the exporter adds the LF).
      for (const s of m.tcp.query_response) if (s.send) expect(s.send, protocol).to.match(/\r$/);
      expect(m.tcp.tls_config.server_name).to.equal(`mail.${cfg.mail.domain}`);
    }
  });

  it("aims each Probe at every replica by its own DNS name and container port, through the exporter's Service", () => {
    const exporterSvc = findObject(ev, "Service", BLACKBOX, ns);
    const exporter = findObject(ev, "Deployment", BLACKBOX, ns);
    const exporterPort = exporter.spec.template.spec.containers[0].ports.find((p: K8sObject) => p.name === exporterSvc.spec.ports[0].targetPort).containerPort;
    expect(exporterSvc.spec.selector).to.deep.equal(exporter.spec.selector.matchLabels);
    for (const p of byName(ev, "Probe", ns)) {
      const { labels, static: targets } = p.spec.targets.staticConfig;
      expect(p.spec.prober.url).to.equal(`${BLACKBOX}.${ns}.svc.cluster.local:${exporterSvc.spec.ports[0].port}`);
      expect(exporterPort).to.equal(exporterSvc.spec.ports[0].port);
      const daemon = ["smtp", "submission", "smtps"].includes(labels.protocol) ? "postfix" : "dovecot";
      const sts = findObject(ev, "StatefulSet", daemon, ns);
      const governing = findObject(ev, "Service", sts.spec.serviceName, ns);
      expect(governing.spec.clusterIP).to.equal("None");
      expect(governing.spec.publishNotReadyAddresses).to.equal(true);
      // The container port behind the public Service port the label names.
      const svcPort = findObject(ev, "Service", daemon, ns).spec.ports.find((x: K8sObject) => String(x.port) === labels.port);
      const containerPort = sts.spec.template.spec.containers.flatMap((c: K8sObject) => c.ports ?? []).find((x: K8sObject) => x.name === svcPort.targetPort).containerPort;
      expect(targets).to.deep.equal(Array.from({ length: sts.spec.replicas }, (_, i) => `${daemon}-${i}.${sts.spec.serviceName}.${ns}.svc.cluster.local:${containerPort}`));
      // The pod label comes from the target's first DNS label.
      const relabel = p.spec.targets.staticConfig.relabelingConfigs[0];
      expect(relabel).to.deep.include({ sourceLabels: ["__param_target"], targetLabel: "pod", replacement: "$1" });
      expect(targets.map((t: string) => t.replace(new RegExp(`^${relabel.regex}$`), "$1"))).to.deep.equal(targets.map((_: string, i: number) => `${daemon}-${i}`));
      expect(p.metadata.labels).to.include(cfg.monitoring.selectorLabels);
    }
  });

  it("gives each probe the time postscreen takes to greet a new client, inside the scrape interval", () => {
    const modules = parse(findObject(ev, "ConfigMap", `${BLACKBOX}-config`, ns).data["config.yml"]).modules;
    const timeout = cfg.mail.postscreen.greetWaitSeconds + MAIL_PROBE_SLACK_SECONDS;
    expect(probeTimeoutSeconds(cfg)).to.equal(timeout);
    for (const m of Object.values(modules) as K8sObject[]) expect(m.timeout).to.equal(`${timeout}s`);
    for (const p of byName(ev, "Probe", ns)) {
      expect(p.spec.interval).to.equal(cfg.monitoring.scrapeInterval);
      // The exporter keeps 0.5 s of what Prometheus grants, so the scrape gets one second more than the module.
      expect(p.spec.scrapeTimeout).to.equal(`${timeout + 1}s`);
      expect(parseInt(p.spec.scrapeTimeout, 10)).to.be.at.most(parseInt(p.spec.interval, 10));
    }
  });

  it("runs the exporter as one restricted pod with the rendered config, scraped like every metrics port", async () => {
    const d = findObject(ev, "Deployment", BLACKBOX, ns);
    const spec = d.spec.template.spec;
    expect(podSecurityViolations(spec, "restricted")).to.deep.equal([]);
    expect(spec.automountServiceAccountToken).to.equal(false);
    expect(spec.serviceAccountName).to.equal(BLACKBOX);
    const c = spec.containers[0];
    expect(c.image).to.equal(cfg.monitoring.blackbox.image);
    expect(c.resources).to.deep.equal(cfg.monitoring.blackbox.resources);
    expect(c.securityContext.readOnlyRootFilesystem).to.equal(true);
    expect(c.securityContext.capabilities).to.deep.equal({ drop: ["ALL"] });
    const file = /^--config\.file=(.+)$/.exec(c.args.find((a: string) => a.startsWith("--config.file=")))![1];
    const mount = c.volumeMounts.find((m: K8sObject) => file.startsWith(`${m.mountPath}/`));
    expect(spec.volumes.find((v: K8sObject) => v.name === mount.name).configMap.name).to.equal(`${BLACKBOX}-config`);
    expect(file.slice(mount.mountPath.length + 1)).to.equal("config.yml");
    expect(d.spec.template.metadata.annotations["checksum/config"]).to.match(/^[0-9a-f]{64}$/);
    expect(c.readinessProbe.httpGet).to.deep.equal({ path: "/-/healthy", port: "metrics" });
    const sm = findObject(ev, "ServiceMonitor", BLACKBOX, ns);
    expect(matchesSelector(findObject(ev, "Service", BLACKBOX, ns).metadata.labels, sm.spec.selector)).to.equal(true);
    for (const o of [d, ...byName(ev, "Probe", ns), findObject(ev, "Service", BLACKBOX, ns)]) await validateObject(o);
  });

  it("declares the probes' edges: the exporter to each probed container port, Prometheus to the exporter", () => {
    const graph = ev.outputs.dependencyGraph as { edges: { from: unknown; to: unknown; ports: { port: number }[] }[] };
    const to = (daemon: string) => graph.edges.filter((e) => e.from === BLACKBOX && e.to === daemon).flatMap((e) => e.ports.map((p) => p.port)).sort((a, b) => a - b);
    for (const daemon of ["postfix", "dovecot"]) {
      const targetPorts = byName(ev, "Probe", ns)
        .filter((p) => p.spec.targets.staticConfig.static[0].startsWith(`${daemon}-`))
        .map((p) => Number(p.spec.targets.staticConfig.static[0].split(":")[1]));
      expect(to(daemon), daemon).to.deep.equal(targetPorts.sort((a, b) => a - b));
    }
    expect(graph.edges.filter((e) => e.from === BLACKBOX).map((e) => e.to)).to.have.members(["postfix", "dovecot"]);
  });

  it("alerts per port and pod on probe_success: SMTP, IMAP and POP3 each cover their ports, every probed protocol exactly once", () => {
    const alerts = alertGroups(cfg).flatMap((g) => g.rules);
    const covered = new Map<string, string>();
    for (const name of ["MailSMTPDown", "MailIMAPDown", "MailPOP3Down"]) {
      const a = alerts.find((r) => r.alert === name)!;
      expect(a.expr).to.match(new RegExp(`^probe_success\\{namespace="${ns}",protocol=~"[a-z0-9|]+"\\} == 0$`));
      for (const p of /protocol=~"([^"]+)"/.exec(a.expr)![1].split("|")) {
        expect(covered.has(p), `${p} in ${name} and ${covered.get(p)}`).to.equal(false);
        covered.set(p, name);
      }
      expect(a.annotations.summary).to.include("{{ $labels.port }}").and.include("{{ $labels.pod }}");
      expect(a.annotations.runbook).to.not.equal("");
    }
    expect([...covered.keys()].sort()).to.deep.equal(MAIL_PROBES.map((p) => p.protocol).sort());
    expect(covered.get("smtps")).to.equal("MailSMTPDown");
    expect(covered.get("imaps")).to.equal("MailIMAPDown");
  });
});

describe("mail probes: only with monitoring and mail", () => {
  const none = (ev: Evaluation) => {
    expect(objectsOfKind(ev, "Probe")).to.have.length(0);
    expect(objectsOfKind(ev, "Deployment").map((d) => d.metadata.name)).to.not.include(BLACKBOX);
    expect(objectsOfKind(ev, "NetworkPolicy").map((p) => p.metadata.name)).to.not.include(`allow-${BLACKBOX}`);
  };

  it("dev (no Prometheus Operator) runs no exporter and registers no Probe", async () => {
    none(ok(await evaluateStack("dev")));
  });

  it("prod without mail has nothing to probe", async () => {
    none(ok(await evaluate({ stack: "prod", set: { "mail.enabled": false, "mail.domain": undefined } })));
  });

  it("follows the replica counts and greets without postscreen in the interval's time (a shorter interval is then accepted)", async () => {
    const set = { "mail.postscreen.enabled": false, "monitoring.scrapeInterval": `${MAIL_PROBE_SLACK_SECONDS + 1}s`, "mail.dovecot.replicas": 2, "mail.dovecot.storage.accessMode": "ReadWriteMany", "mail.dovecot.storage.storageClass": "nfs" };
    const ev = ok(await evaluate({ stack: "prod", set }));
    const c = configOf(ev);
    const imap = objectsOfKind(ev, "Probe").find((p) => p.metadata.name === "mail-imap")!;
    expect(imap.spec.targets.staticConfig.static).to.have.length(c.mail.dovecot.replicas);
    expect(imap.spec.scrapeTimeout).to.equal(`${MAIL_PROBE_SLACK_SECONDS + 1}s`);
    expect(parse(objectsOfKind(ev, "ConfigMap").find((m) => m.metadata.name === `${BLACKBOX}-config`)!.data["config.yml"]).modules.smtp_starttls.timeout).to.equal(`${MAIL_PROBE_SLACK_SECONDS}s`);
  });
});
