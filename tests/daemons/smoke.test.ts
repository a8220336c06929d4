// The smoke test Job of the dev stack, run as the kubelet runs it: one container per store check
// and one Python container for the other checks, side by side (the rendered scripts ConfigMap, env
// and images). Every check passes against a real server and fails, with its one line
// `FAIL <check>: <reason>`, against a wrong password, a closed port and a server speaking another
// protocol, while the other checks still report their own lines. A variant with 40 more services
// renders the same containers and runs the 41 readiness checks concurrently, never more than
// verify.smoke.concurrency at once.
//
// The servers: Postgres and Redis are the rendered StatefulSets, the API is the rendered demo
// Deployment (the dev stack's own HTTP server). SMTP and IMAP are Debian's Postfix and Dovecot
// with a minimal config of their own (submission with STARTTLS on the rendered mail-tls
// certificate; IMAP), because the rendered mail tier is the mail group's subject and needs its
// images' entrypoints; the checks only ask for the greeting, EHLO and STARTTLS. OTLP is a stdlib
// stand-in (clients/otlp_stand_in.py): Debian ships no Jaeger. The dev stack is rendered with
// mongo off (the program's own switch, which drops its check, script and edge): Debian ships no
// MongoDB or mongosh.
import { expect } from "chai";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ENDPOINTS_CONTAINER, smokeChecks } from "../../components/smoke";
import { PORTS, serviceHost } from "../../components/lib/ports";
import type { PlatformConfig } from "../../config/schema";
import { configOf } from "../harness";
import type { Evaluation, K8sObject } from "../harness";
import { useSandbox, versionOf } from "./lib/group";
import { object, objectsOf, podTemplate, renderReal, runJob, secretData, startPod, waitReady } from "./lib/kube";
import type { JobRun } from "./lib/kube";
import type { Container, ContainerSpec, Pod, Sandbox } from "./lib/sandbox";

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const OTLP_STAND_IN = path.join(__dirname, "clients", "otlp_stand_in.py");
const SLOW_READY = path.join(__dirname, "clients", "slow_ready.py");
const dev = configOf("dev", { mongo: { enabled: false } });

/**
 * Debian's Postfix answering on submission (STARTTLS with the given certificate) and smtp; its
 * log is a file in `logDir` (DAEMONS_KEEP=1 keeps it for a look).
 */
function startPostfix(sb: Sandbox, cfg: PlatformConfig, tlsDir: string, logDir: string): Container {
  const pod = sb.pod("postfix-0", { namespace: cfg.platform.mailNamespace, services: ["postfix"] });
  const script = [
    "set -e",
    `postconf -e maillog_file=/var/log/postfix/maillog inet_protocols=ipv4 myhostname=mail.${cfg.mail.domain} mydestination= ` +
      "smtpd_tls_cert_file=/tls/tls.crt smtpd_tls_key_file=/tls/tls.key smtpd_tls_security_level=may",
    `postconf -M submission/inet="submission inet n - n - - smtpd"`,
    // No chroot: the container is the jail, and Debian's init script would have to populate one.
    `postconf -F "*/*/chroot = n"`,
    "postfix check",
    // What `postfix start-fg` execs when it is PID 1 (it runs as the script's child here).
    "exec /usr/lib/postfix/sbin/master -i",
  ].join("\n");
  const mounts = [
    { src: tlsDir, dst: "/tls", readOnly: true },
    { src: logDir, dst: "/var/log/postfix" },
  ];
  return pod.start({ name: "postfix", argv: ["sh", "-c", script], env: { PATH }, mounts });
}

/** Debian's Dovecot answering IMAP on 143 (the checks read the greeting only). */
function startDovecot(sb: Sandbox, cfg: PlatformConfig, confDir: string): Container {
  const pod = sb.pod("dovecot-0", { namespace: cfg.platform.mailNamespace, services: ["dovecot"] });
  fs.writeFileSync(
    path.join(confDir, "dovecot.conf"),
    [
      "protocols = imap",
      "listen = *",
      "ssl = no",
      "log_path = /dev/stderr",
      "base_dir = /run/dovecot",
      "passdb {\n  driver = static\n  args = nopassword=y\n}",
      "userdb {\n  driver = static\n  args = uid=dovecot gid=dovecot home=/tmp/%u\n}",
      "mail_location = maildir:~/Maildir",
      `service imap-login {\n  inet_listener imap {\n    port = ${PORTS.dovecot.imap}\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}`,
      "",
    ].join("\n"),
  );
  return pod.start({ name: "dovecot", argv: ["dovecot", "-F", "-c", "/conf/dovecot.conf"], env: { PATH }, mounts: [{ src: confDir, dst: "/conf", readOnly: true }] });
}

/** The OTLP stand-in, where the Jaeger Service would send it. */
function startOtlp(sb: Sandbox, cfg: PlatformConfig): Container {
  const pod = sb.pod("jaeger-stand-in", { namespace: cfg.platform.namespace, services: ["jaeger"] });
  return pod.start({
    name: "otlp",
    argv: ["python3", "/stand-in/otlp.py", String(PORTS.jaeger.otlpHttp)],
    env: { PATH },
    uid: 10001,
    mounts: [{ src: OTLP_STAND_IN, dst: "/stand-in/otlp.py", readOnly: true }],
  });
}

interface Fault {
  check: string;
  fault: "wrong password" | "closed port" | "wrong protocol";
  change: (c: ContainerSpec) => ContainerSpec;
  /** What the one line must say: the cause, in the client's words. */
  reason: RegExp;
}

const output = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: "utf8" }).trim();
/** Postfix and Dovecot run here as themselves, not as the mail tier's images. */
const mailVersions = [`Postfix ${output("postconf", "-h", "mail_version")}`, `Dovecot ${output("dovecot", "--version")}`];

describe(`smoke: ${[...[dev.postgres.image, dev.redis.image, dev.verify.smoke.image].map(versionOf), ...mailVersions].join(", ")}`, () => {
  const ctx = useSandbox("smoke");
  const cfg = dev;
  const ns = cfg.platform.namespace;
  const mailNs = cfg.platform.mailNamespace;
  const checks = smokeChecks(cfg);
  let ev: Evaluation;
  let job: K8sObject;
  /** The network namespace of every smoke run: they are clients only, and can run side by side. */
  let smokePod: Pod;

  before(async () => {
    ev = await renderReal({ stack: "dev", set: { "mongo.enabled": false } });
    job = objectsOf(ev, "Job").find((j) => j.metadata.name.startsWith("smoke-"));
    expect(job, "the dev stack renders a smoke Job").to.not.equal(undefined);
    const work = path.join(ctx.sb.dir, "servers");
    for (const d of ["tls", "postfix-log"]) fs.mkdirSync(path.join(work, d), { recursive: true });
    const tls = secretData(ev, "mail-tls", mailNs);
    fs.writeFileSync(path.join(work, "tls", "tls.crt"), tls["tls.crt"]);
    fs.writeFileSync(path.join(work, "tls", "tls.key"), tls["tls.key"], { mode: 0o600 });
    smokePod = ctx.sb.pod("smoke", { namespace: ns });
    const servers = [startPostfix(ctx.sb, cfg, path.join(work, "tls"), path.join(work, "postfix-log")), startDovecot(ctx.sb, cfg, work), startOtlp(ctx.sb, cfg)];
    const postgres = await startPod(ctx.sb, ev, object(ev, "StatefulSet", "postgres"), { skip: ["exporter"] });
    const redis = await startPod(ctx.sb, ev, object(ev, "StatefulSet", "redis"), { skip: ["exporter"] });
    const api = await startPod(ctx.sb, ev, object(ev, "Deployment", "api"));
    await ctx.sb.applyDns();
    await Promise.all([waitReady(postgres, "postgres", 30_000), waitReady(redis, "redis", 30_000), waitReady(api, "api", 30_000)]);
    for (const [s, port, host] of [
      [servers[0], PORTS.postfix.submission, "postfix-0"],
      [servers[1], PORTS.dovecot.imap, "dovecot-0"],
      [servers[2], PORTS.jaeger.otlpHttp, "jaeger-stand-in"],
    ] as const) {
      if (!s.running) throw new Error(`${s.name} exited:\n${s.tail()}`);
      await ctx.sb.getPod(host).waitTcp(port, 15_000);
    }
  });

  const stores = checks.filter((c) => c.container);
  const endpoints = checks.filter((c) => c.endpoint);
  const linesOf = (run: JobRun, container: string) => [...run.containers[container].log].sort();

  it(`the rendered Job runs one container per store check (${stores.map((c) => c.name).join(", ")}) and one for the rest (${endpoints.map((c) => c.name).join(", ")})`, () => {
    const spec = podTemplate(job).spec;
    expect(spec.initContainers ?? []).to.deep.equal([]);
    expect(spec.containers.map((c: K8sObject) => c.name)).to.deep.equal([...stores.map((c) => `check-${c.name}`), ENDPOINTS_CONTAINER]);
    expect(spec.restartPolicy).to.equal("Never");
  });

  it("every check passes against the running servers, each with its one line", async () => {
    const run = await runJob(ctx.sb, ev, job, "smoke", { pod: smokePod });
    for (const c of stores) {
      expect(run.codes[`check-${c.name}`], run.output).to.equal(0);
      expect(run.containers[`check-${c.name}`].log).to.deep.equal([`ok ${c.name}`]);
    }
    expect(run.codes[ENDPOINTS_CONTAINER], run.output).to.equal(0);
    expect(linesOf(run, ENDPOINTS_CONTAINER)).to.deep.equal(endpoints.map((c) => `ok ${c.name}`).sort());
  });

  describe("each check fails with its one line, and fails the pod, against", () => {
    const env = (vars: Record<string, string>) => (c: ContainerSpec) => ({ ...c, env: { ...c.env, ...vars } });
    /** An endpoint check's target (the third of its <check> <kind> <target>) pointed elsewhere; the others stay. */
    const target = (check: string, to: string) => (c: ContainerSpec) => {
      const i = c.argv.indexOf(check);
      if (i < 0 || c.argv[i + 2] === undefined) throw new Error(`${check} is not in ${c.argv.join(" ")}`);
      return { ...c, argv: [...c.argv.slice(0, i + 2), to, ...c.argv.slice(i + 3)] };
    };
    const rendered = (check: string) => new URL(checks.find((c) => c.name === check)!.endpoint!.address);
    const url = (check: string, hostPort: string) => `${rendered(check).protocol}//${hostPort}${rendered(check).pathname}`;
    /** The check's own host on the next port up, where nothing listens. */
    const nextPort = (check: string) => url(check, `${rendered(check).hostname}:${Number(rendered(check).port) + 1}`);
    const pg = serviceHost("postgres", ns);
    const redis = serviceHost("redis", ns);
    const postfix = serviceHost("postfix", mailNs);
    const dovecot = serviceHost("dovecot", mailNs);
    const refused = /Connection refused|ConnectionRefusedError|no response/;
    const faults: Fault[] = [
      { check: "postgres", fault: "wrong password", change: env({ PGPASSWORD: "not-the-password" }), reason: /password authentication failed/ },
      { check: "postgres", fault: "closed port", change: env({ PGPORT: String(PORTS.postgres.sql + 1) }), reason: refused },
      // pg_isready cannot tell a foreign server from none: it answers "no response" for both.
      { check: "postgres", fault: "wrong protocol", change: env({ PGHOST: postfix, PGPORT: String(PORTS.postfix.submission) }), reason: /^pg_isready: .* no response$/ },
      { check: "redis", fault: "wrong password", change: env({ REDISCLI_AUTH: "not-the-password" }), reason: /WRONGPASS|invalid username-password/ },
      { check: "redis", fault: "closed port", change: env({ REDIS_PORT: String(PORTS.redis.redis + 1) }), reason: refused },
      { check: "redis", fault: "wrong protocol", change: env({ REDIS_HOST: postfix, REDIS_PORT: String(PORTS.postfix.submission) }), reason: /Protocol error/ },
      { check: "api-ready", fault: "closed port", change: target("api-ready", nextPort("api-ready")), reason: refused },
      { check: "api-ready", fault: "wrong protocol", change: target("api-ready", url("api-ready", `${pg}:${PORTS.postgres.sql}`)), reason: /RemoteDisconnected|BadStatusLine/ },
      { check: "smtp", fault: "closed port", change: target("smtp", `${postfix}:${PORTS.postfix.submission + 1}`), reason: refused },
      { check: "smtp", fault: "wrong protocol", change: target("smtp", `${dovecot}:${PORTS.dovecot.imap}`), reason: /^SMTPConnectError: .*\* OK|^SMTPConnectError: .*IMAP4/ },
      { check: "imap", fault: "closed port", change: target("imap", `${dovecot}:${PORTS.dovecot.imap + 1}`), reason: refused },
      { check: "imap", fault: "wrong protocol", change: target("imap", `${postfix}:${PORTS.postfix.submission}`), reason: /unexpected response: b'220 / },
      { check: "otlp", fault: "closed port", change: target("otlp", nextPort("otlp")), reason: refused },
      { check: "otlp", fault: "wrong protocol", change: target("otlp", url("otlp", `${redis}:${PORTS.redis.redis}`)), reason: /RemoteDisconnected|BadStatusLine/ },
    ];

    // Every faulty run side by side: each retries once, so together they take one retry's time.
    // A store fault runs that store's container; an endpoint fault runs the Python container with
    // one target changed, so the other endpoint checks show that they still report.
    const runs = new Map<Fault, JobRun>();
    const containerOf = (check: string) => (stores.some((c) => c.name === check) ? `check-${check}` : ENDPOINTS_CONTAINER);
    before(async () => {
      await Promise.all(
        faults.map(async (f, i) => {
          const name = containerOf(f.check);
          const run = await runJob(ctx.sb, ev, job, `smoke-fault-${i}`, {
            pod: smokePod,
            skip: podTemplate(job).spec.containers.map((c: K8sObject) => c.name).filter((n: string) => n !== name),
            // One retry (3 s) instead of the rendered two minutes: enough to show that retries
            // print nothing and the check still ends with its one line.
            adjust: (c, n) => (n === name ? f.change(env({ SMOKE_RETRY_SECONDS: "1" })(c)) : c),
          });
          runs.set(f, run);
        }),
      );
    });

    for (const fault of [...new Set(faults.map((f) => f.fault))]) {
      const cases = faults.filter((f) => f.fault === fault);
      it(`${fault}: ${cases.map((f) => f.check).join(", ")}`, () => {
        for (const f of cases) {
          const run = runs.get(f)!;
          const name = containerOf(f.check);
          expect(run.codes[name], `${f.check}: ${run.output}`).to.equal(1);
          expect(Object.keys(run.codes), f.check).to.deep.equal([name]);
          const lines = run.containers[name].log;
          const failed = lines.filter((l) => l.startsWith("FAIL "));
          expect(failed, f.check).to.have.length(1);
          const m = new RegExp(`^FAIL ${f.check}: (.+)$`).exec(failed[0]);
          expect(m, failed[0]).to.not.equal(null);
          expect(m![1].length, failed[0]).to.be.at.most(200);
          expect(m![1], `${f.check} (${f.fault})`).to.match(f.reason);
          // Every other check of the container still ran and reported its own line.
          const others = name === ENDPOINTS_CONTAINER ? endpoints.filter((c) => c.name !== f.check).map((c) => `ok ${c.name}`) : [];
          expect(lines.filter((l) => !l.startsWith("FAIL ")).sort(), f.check).to.deep.equal(others.sort());
        }
      });
    }
  });

  describe("40 more services: the same containers, the readiness checks concurrent and bounded", () => {
    const extra = Array.from({ length: 40 }, (_, i) => `svc-${String(i).padStart(2, "0")}`);
    const delaySeconds = 1;
    let wide: Evaluation;
    let run: JobRun;
    let elapsedMs: number;
    let standIn: Container;
    before(async () => {
      const set: Record<string, unknown> = { "mongo.enabled": false };
      for (const name of extra) set[`services.${name}`] = { image: dev.verify.smoke.image };
      wide = await renderReal({ stack: "dev", set });
      // One stand-in answers every new Service's readiness path, slowly, counting requests in flight.
      const health = configOf("dev", { mongo: { enabled: false }, services: { [extra[0]]: { image: dev.verify.smoke.image } } }).services[extra[0]];
      if (health.kind !== "http" || health.ports.health == null) throw new Error("the http template has a health port");
      const pod = ctx.sb.pod("ready-stand-in", { namespace: ns, services: extra });
      standIn = pod.start({ name: "ready", argv: ["python3", "/stand-in/slow_ready.py", String(health.ports.health), String(delaySeconds)], env: { PATH }, uid: 10001, mounts: [{ src: SLOW_READY, dst: "/stand-in/slow_ready.py", readOnly: true }] });
      await ctx.sb.applyDns();
      await pod.waitTcp(health.ports.health, 15_000);
      const wideJob = objectsOf(wide, "Job").find((j) => j.metadata.name.startsWith("smoke-"));
      const started = Date.now();
      run = await runJob(ctx.sb, wide, wideJob, "smoke-wide", { pod: smokePod, skip: stores.map((c) => `check-${c.name}`) });
      elapsedMs = Date.now() - started;
    });

    it("renders no more containers than the dev stack's Job, and a pod spec far below the object size limit", () => {
      const wideJob = objectsOf(wide, "Job").find((j) => j.metadata.name.startsWith("smoke-"));
      expect(podTemplate(wideJob).spec.containers.map((c: K8sObject) => c.name)).to.deep.equal(podTemplate(job).spec.containers.map((c: K8sObject) => c.name));
      expect(JSON.stringify(wideJob).length).to.be.below(64 * 1024);
    });

    it(`reports one ok line per check (${extra.length + endpoints.length}), at most verify.smoke.concurrency (${dev.verify.smoke.concurrency}) at a time`, () => {
      expect(run.codes[ENDPOINTS_CONTAINER], run.output).to.equal(0);
      expect(linesOf(run, ENDPOINTS_CONTAINER)).to.deep.equal([...extra.map((n) => `ok ${n}-ready`), ...endpoints.map((c) => `ok ${c.name}`)].sort());
      const most = Math.max(...standIn.log.map((l) => Number(/^inflight (\d+)$/.exec(l)?.[1] ?? 0)));
      // Never above the bound; near it, as the other checks hold a slot only briefly.
      expect(most).to.be.at.most(dev.verify.smoke.concurrency).and.at.least(dev.verify.smoke.concurrency - endpoints.length);
      // One by one they would take 40 x the stand-in's delay.
      expect(elapsedMs).to.be.below((extra.length * delaySeconds * 1000) / 2);
    });
  });
});
