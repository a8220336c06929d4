// Post-deploy verification (issue 7), the parts that run real code: the dev demo images (the demo
// server and Celery app run under python3) and the smoke scripts against local stand-ins.
import { execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { expect } from "chai";
import { DEMO_CELERY_IMAGE } from "../config/workers";
import { PYTHON_IMAGE } from "../config/verify";
import { celeryModule, demoCelery } from "../components/lib/demo";
import { SMOKE_PATH, SMOKE_SCRIPTS } from "../components/smoke-scripts";
import { pingCommand } from "../components/workers";
import type { Evaluation, K8sObject } from "./harness";
import { configOf, evaluate, evaluateStack, findObject, objectsOfKind, ok } from "./harness";
import { requireTools } from "./tools";
import { writeCeleryStandIns } from "./apphelpers";

describe("verify: dev converges with public demo images", () => {
  let ev: Evaluation;
  before(async () => {
    ev = ok(await evaluateStack("dev"));
  });

  it("runs public, pinned images only (the app images are the demo's), and staging/prod require the user's", async () => {
    const cfg = configOf("dev");
    expect([cfg.services.api.image, cfg.workers.image]).to.deep.equal([PYTHON_IMAGE, DEMO_CELERY_IMAGE]);
    expect([cfg.services.api.kind === "http" && cfg.services.api.demo, cfg.workers.demo]).to.deep.equal([true, true]);
    const images = new Set<string>();
    for (const kind of ["Deployment", "StatefulSet", "Job", "CronJob"]) {
      for (const o of objectsOfKind(ev, kind)) {
        const t = kind === "CronJob" ? o.spec.jobTemplate.spec.template : o.spec.template;
        for (const c of [...(t.spec.initContainers ?? []), ...t.spec.containers]) images.add(c.image);
      }
    }
    for (const image of images) {
      expect(image, image).to.match(/:[0-9v][\w.-]*$/); // a version tag, never latest
      expect(image, image).not.to.match(/example\.com|ghcr\.io\/example/);
    }
    for (const stack of ["staging", "prod"]) {
      const c = configOf(stack);
      const api = c.services.api;
      expect([api.kind === "http" && api.demo, c.workers.demo]).to.deep.equal([false, false]);
      const bad = await evaluate({ stack, set: { "services.api.image": undefined, "workers.image": undefined } });
      expect(bad.error?.message).to.match(/services\.api\.image: is required: your application's image/).and.match(/workers\.image: is required/);
      expect(bad.resources).to.have.length(0);
    }
  });

  it("does not wait for an ingress controller in dev (a fresh kind cluster has none); staging/prod do", async () => {
    for (const ing of objectsOfKind(ev, "Ingress")) expect(ing.metadata.annotations["pulumi.com/skipAwait"], ing.metadata.name).to.equal("true");
    for (const ing of objectsOfKind(ok(await evaluateStack("staging")), "Ingress")) expect(ing.metadata.annotations, ing.metadata.name).not.to.have.property("pulumi.com/skipAwait");
  });

  it("the demo API serves exactly what its probes and ports ask (run with python3)", async function () {
    const d = findObject(ev, "Deployment", "api");
    const c = d.spec.template.spec.containers[0];
    const cm = findObject(ev, "ConfigMap", "api-config").data;
    const port = (name: string) => c.ports.find((p: K8sObject) => p.name === name).containerPort;
    expect([cm.PORT, cm.HEALTH_PORT, cm.METRICS_PORT].map(Number)).to.deep.equal([port("http"), port("health"), port("metrics")]);
    const env = Object.fromEntries(c.env.filter((e: K8sObject) => e.value !== undefined).map((e: K8sObject) => [e.name, e.value]));
    expect(env.DEMO_LIVENESS_PATH).to.equal(c.livenessProbe.httpGet.path);
    expect(env.DEMO_READINESS_PATH).to.equal(c.readinessProbe.httpGet.path);
    expect([c.livenessProbe.httpGet.port, c.readinessProbe.httpGet.port]).to.deep.equal(["health", "health"]);
    expect(env).to.include({ PYTHONDONTWRITEBYTECODE: "1", PYTHONPATH: "/opt/demo" });
    expect(c.command).to.deep.equal(["python3", "/opt/demo/server.py"]);
    expect(c.volumeMounts.find((m: K8sObject) => m.name === "demo")).to.include({ mountPath: "/opt/demo", readOnly: true });
    const server: string = findObject(ev, "ConfigMap", "api-demo").data["server.py"];

    requireTools("python3");
    // Same script, same env; free local ports stand in for 5000/8080/9090.
    const [httpPort, healthPort, metricsPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "demo-")), "server.py");
    fs.writeFileSync(file, server);
    const proc = spawn("python3", [file], { env: { ...process.env, ...env, PORT: String(httpPort), HEALTH_PORT: String(healthPort), METRICS_PORT: String(metricsPort) } });
    try {
      expect(await get(healthPort, env.DEMO_LIVENESS_PATH)).to.equal(200);
      expect(await get(healthPort, env.DEMO_READINESS_PATH)).to.equal(200);
      expect(await get(healthPort, "/nothing")).to.equal(404);
      expect(await get(httpPort, "/api/messages")).to.equal(200);
      expect(await get(metricsPort, "/metrics")).to.equal(200);
    } finally {
      proc.kill();
    }
  });

  it("the demo Celery app is importable as workers.celeryApp, and ping targets the worker's own node name", function () {
    const cfg = configOf("dev");
    const { module, attribute, path: file } = celeryModule(cfg.workers.celeryApp);
    expect([module, attribute, file]).to.deep.equal(["app", "celery", "app.py"]);
    const cm = findObject(ev, "ConfigMap", "worker-demo");
    const d = findObject(ev, "Deployment", "worker-default");
    const spec = d.spec.template.spec;
    const vol = spec.volumes.find((v: K8sObject) => v.name === "demo");
    expect(vol.configMap.items.map((i: K8sObject) => i.path)).to.deep.equal([file]);
    const c = spec.containers[0];
    expect(c.volumeMounts.find((m: K8sObject) => m.name === "demo")).to.include({ mountPath: "/opt/demo", readOnly: true });
    // The node the worker registers (--hostname) is the one liveness pings.
    const hostname = c.args[c.args.indexOf("--hostname") + 1];
    expect(hostname.replace("$(POD_NAME)", "$POD_NAME")).to.equal("default@$POD_NAME");
    expect(c.livenessProbe.exec.command).to.deep.equal(pingCommand(cfg.workers.celeryApp, "default"));
    expect(c.livenessProbe.exec.command[2]).to.contain(`-A ${cfg.workers.celeryApp} inspect ping --destination "default@$POD_NAME"`);
    expect(findObject(ev, "Deployment", "beat").spec.template.spec.volumes.map((v: K8sObject) => v.name)).to.include("demo");
    // Nested module paths get their packages.
    expect(Object.keys(demoCelery("proj.tasks:app", "q").data).sort()).to.deep.equal(["proj.__init__.py", "proj.tasks.py"]);

    requireTools("python3");
    // Import the module as celery would (`-A app.celery`), against stand-in `celery` and `redis` packages.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "celery-demo-"));
    for (const item of vol.configMap.items) {
      fs.mkdirSync(path.dirname(path.join(dir, item.path)), { recursive: true });
      fs.writeFileSync(path.join(dir, item.path), cm.data[item.key]);
    }
    writeCeleryStandIns(dir);
    const out = execFileSync("python3", ["-c", `import importlib; m = importlib.import_module(${JSON.stringify(module)}); print(type(getattr(m, ${JSON.stringify(attribute)})).__name__)`], {
      env: { ...process.env, PYTHONPATH: dir, PYTHONDONTWRITEBYTECODE: "1" },
      encoding: "utf8",
    });
    expect(out.trim()).to.equal("Celery");
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** GET with retries while the server starts; resolves to the status code. */
async function get(port: number, p: string): Promise<number> {
  for (let i = 0; ; i++) {
    try {
      return await new Promise<number>((resolve, reject) => {
        const req = http.get({ host: "127.0.0.1", port, path: p, timeout: 2000 }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
      });
    } catch (e) {
      if (i >= 50) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe("verify: the smoke scripts print one line per check (run locally against stand-ins)", () => {
  const sh = (dir: string, file: string, env: Record<string, string>) =>
    spawnSync("/bin/sh", [path.join(dir, file)], { env: { PATH: `${dir}/bin:/usr/bin:/bin`, SMOKE_RETRY_SECONDS: "0", ...env }, encoding: "utf8" });
  let dir: string;
  before(function () {
    requireTools("python3");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "smoke-"));
    fs.mkdirSync(path.join(dir, "bin"));
    // The scripts as mounted, with /opt/smoke pointing here.
    for (const [name, text] of Object.entries(SMOKE_SCRIPTS)) fs.writeFileSync(path.join(dir, name), text.split(SMOKE_PATH).join(dir));
  });
  const fake = (name: string, body: string) => fs.writeFileSync(path.join(dir, "bin", name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });

  it("store checks: ok on success, FAIL <check>: <reason> on failure", () => {
    fake("redis-cli", 'echo "$FAKE_REPLY"');
    expect(sh(dir, "redis.sh", { CHECK: "redis", REDIS_HOST: "h", REDIS_PORT: "1", FAKE_REPLY: "PONG" }).stdout).to.equal("ok redis\n");
    const bad = sh(dir, "redis.sh", { CHECK: "redis", REDIS_HOST: "h", REDIS_PORT: "1", FAKE_REPLY: "NOAUTH Authentication required." });
    expect([bad.status, bad.stdout]).to.deep.equal([1, "FAIL redis: NOAUTH Authentication required.\n"]);
    // Multi-line client output stays one line; a client killed by `timeout` (GNU 124, BusyBox 143)
    // and any other silent failure still give a reason.
    fake("redis-cli", 'printf "\\nI/O error\\nError: Protocol error\\n"; exit 1');
    expect(sh(dir, "redis.sh", { CHECK: "redis", REDIS_HOST: "h", REDIS_PORT: "1" }).stdout).to.equal("FAIL redis: I/O error Error: Protocol error\n");
    for (const code of [124, 143]) {
      fake("redis-cli", `exit ${code}`);
      expect(sh(dir, "redis.sh", { CHECK: "redis", REDIS_HOST: "h", REDIS_PORT: "1" }).stdout).to.equal("FAIL redis: no answer within 10 s from h:1\n");
    }
    fake("redis-cli", "exit 1");
    expect(sh(dir, "redis.sh", { CHECK: "redis", REDIS_HOST: "h", REDIS_PORT: "1" }).stdout).to.equal("FAIL redis: no output, exit status 1\n");
    fake("pg_isready", "exit 0");
    fake("psql", 'echo "$FAKE_USER"');
    expect(sh(dir, "postgres.sh", { CHECK: "postgres", PGUSER: "app", FAKE_USER: "app" }).stdout).to.equal("ok postgres\n");
    expect(sh(dir, "postgres.sh", { CHECK: "postgres", PGUSER: "app", FAKE_USER: "postgres" }).stdout).to.match(/^FAIL postgres: query answered 'postgres', not the application role\n$/);
    fake("mongosh", 'echo "$FAKE_OUT"');
    expect(sh(dir, "mongo.sh", { CHECK: "mongo", MONGO_HOST: "h", MONGO_PORT: "1", MONGO_DB: "app", FAKE_OUT: "ping ok" }).stdout).to.equal("ok mongo\n");
  });

  it("network checks (python): HTTP, OTLP, SMTP banner + EHLO with STARTTLS, IMAP greeting", async () => {
    const server = http.createServer((req, res) => {
      res.statusCode = req.url === "/ready" || (req.method === "POST" && req.url === "/v1/traces") ? 200 : 503;
      res.end("{}");
    });
    const smtp = net.createServer((s) => {
      s.write("220 mail.test ESMTP\r\n");
      s.on("data", (d) => {
        const line = d.toString();
        if (/^EHLO/i.test(line)) s.write("250-mail.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
        else if (/^QUIT/i.test(line)) s.end("221 bye\r\n");
      });
    });
    const imap = net.createServer((s) => {
      s.write("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n");
      s.on("data", (d) => {
        const tag = d.toString().split(" ")[0];
        s.write(`* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n${tag} OK done\r\n`);
      });
    });
    const listen = (srv: net.Server) => new Promise<number>((r) => srv.listen(0, "127.0.0.1", () => r((srv.address() as net.AddressInfo).port)));
    const [hp, sp, ip] = [await listen(server), await listen(smtp), await listen(imap)];
    const run = (...args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn("python3", [path.join(dir, "smoke.py"), ...args], { env: { ...process.env, SMOKE_RETRY_SECONDS: "0", PYTHONDONTWRITEBYTECODE: "1" } });
        let out = "";
        p.stdout.on("data", (d) => (out += d));
        p.on("close", (code) => resolve({ code, out }));
      });
    try {
      expect(await run("api-ready", "http", `http://127.0.0.1:${hp}/ready`)).to.deep.equal({ code: 0, out: "ok api-ready\n" });
      const down = await run("api-ready", "http", `http://127.0.0.1:${hp}/health`);
      expect(down.code).to.equal(1);
      expect(down.out).to.match(/^FAIL api-ready: HTTPError: HTTP Error 503/);
      expect(await run("otlp", "otlp", `http://127.0.0.1:${hp}/v1/traces`)).to.deep.equal({ code: 0, out: "ok otlp\n" });
      expect(await run("smtp", "smtp", `127.0.0.1:${sp}`)).to.deep.equal({ code: 0, out: "ok smtp\n" });
      expect(await run("imap", "imap", `127.0.0.1:${ip}`)).to.deep.equal({ code: 0, out: "ok imap\n" });
      const refused = await run("imap", "imap", `127.0.0.1:${await freePort()}`);
      expect([refused.code, refused.out.split(":")[0]]).to.deep.equal([1, "FAIL imap"]);
      // Many checks in one run: each reports its own line, and one failure fails the run without hiding the rest.
      const all = await run("api-ready", "http", `http://127.0.0.1:${hp}/ready`, "smtp", "smtp", `127.0.0.1:${sp}`, "down", "http", `http://127.0.0.1:${hp}/health`, "imap", "imap", `127.0.0.1:${ip}`);
      expect(all.code).to.equal(1);
      const lines = all.out.trim().split("\n").sort();
      expect(lines).to.have.length(4);
      expect(lines.filter((l) => l.startsWith("ok "))).to.deep.equal(["ok api-ready", "ok imap", "ok smtp"]);
      expect(lines.filter((l) => l.startsWith("FAIL "))[0]).to.match(/^FAIL down: HTTPError: HTTP Error 503/);
      // Targets and kinds come in threes; anything else is a usage error, not a silent pass.
      expect((await run("api-ready", "http")).code).to.not.equal(0);
      expect((await run("x", "gopher", "h:1")).code).to.not.equal(0);
    } finally {
      for (const s of [server, smtp, imap]) s.close();
    }
  });

  it("chroma check (python, stdlib): ok when the heartbeat answers and the token is accepted, FAIL with the step otherwise", async () => {
    const token = "chroma-token-in-the-secret";
    const seen: string[] = [];
    const chroma = http.createServer((req, res) => {
      seen.push(`${req.url} ${req.headers.authorization ?? "-"}`);
      const authorized = req.headers.authorization === `Bearer ${token}`;
      res.statusCode = req.url === "/api/v2/heartbeat" ? 200 : req.url === "/api/v2/tenants/default_tenant" ? (authorized ? 200 : 401) : 404;
      res.end(res.statusCode === 200 ? '{"name": "default_tenant"}' : '{"error": "Unauthorized"}');
    });
    const port = await new Promise<number>((r) => chroma.listen(0, "127.0.0.1", () => r((chroma.address() as net.AddressInfo).port)));
    // Asynchronously: the stand-in server answers from this process.
    const check = (env: Record<string, string>) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn("/bin/sh", [path.join(dir, "chroma.sh")], { env: { PATH: `${dir}/bin:${process.env.PATH}`, SMOKE_RETRY_SECONDS: "0", CHECK: "chroma", CHROMA_HOST: "127.0.0.1", CHROMA_PORT: String(port), ...env } });
        let out = "";
        p.stdout.on("data", (d) => (out += d));
        p.on("close", (code) => resolve({ code, out }));
      });
    try {
      expect(await check({ CHROMA_AUTH_TOKEN: token })).to.deep.equal({ code: 0, out: "ok chroma\n" });
      // The heartbeat without a token, the tenant with it.
      expect(seen).to.deep.equal(["/api/v2/heartbeat -", `/api/v2/tenants/default_tenant Bearer ${token}`]);
      expect(await check({ CHROMA_AUTH_TOKEN: "a-wrong-token" })).to.deep.equal({ code: 1, out: "FAIL chroma: call with the token: HTTPError: HTTP Error 401: Unauthorized\n" });
      const down = await check({ CHROMA_AUTH_TOKEN: token, CHROMA_PORT: String(await freePort()) });
      expect(down.code).to.equal(1);
      expect(down.out).to.match(/^FAIL chroma: heartbeat: URLError: .*refused/);
    } finally {
      chroma.close();
    }
  });

  it("network checks run SMOKE_CONCURRENCY at a time, never more, never one by one", async () => {
    let inFlight = 0;
    let most = 0;
    const slow = http.createServer((_req, res) => {
      most = Math.max(most, ++inFlight);
      setTimeout(() => {
        inFlight--;
        res.end("ok");
      }, 300);
    });
    const port = await new Promise<number>((r) => slow.listen(0, "127.0.0.1", () => r((slow.address() as net.AddressInfo).port)));
    const n = 12;
    const concurrency = 4;
    const args = Array.from({ length: n }, (_, i) => [`svc-${i}-ready`, "http", `http://127.0.0.1:${port}/ready`]).flat();
    try {
      const out = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn("python3", [path.join(dir, "smoke.py"), ...args], { env: { ...process.env, SMOKE_RETRY_SECONDS: "0", SMOKE_CONCURRENCY: String(concurrency), PYTHONDONTWRITEBYTECODE: "1" } });
        let text = "";
        p.stdout.on("data", (d) => (text += d));
        p.on("close", (code) => resolve({ code, out: text }));
      });
      expect(out.code).to.equal(0);
      expect(out.out.trim().split("\n").sort()).to.deep.equal(Array.from({ length: n }, (_, i) => `ok svc-${i}-ready`).sort());
      // Requests overlapped (a sequential run never has two in flight), and never more than the bound.
      expect(most).to.equal(concurrency);
    } finally {
      slow.close();
    }
  });
});
