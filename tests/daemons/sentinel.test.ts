// Redis with Sentinel from the rendered prod stack: three members started from the StatefulSet's
// pod template (the start script, redis.conf and sentinel.conf from the ConfigMap), a Celery worker
// and producer (Debian's python3-celery) configured only by the rendered app-connections Secret,
// running the dev stack's demo Celery app; then the master is killed, and later the new master is
// cut off (a lost node: no TCP reset). Measured and printed: the seconds until the Sentinels name a
// new master, the publish outage, how long until tasks run again, and the acknowledged tasks lost
// (bounded by min-replicas-max-lag).
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { REDIS_DB } from "../../components/data/connections";
import { demoCelery } from "../../components/lib/demo";
import { configOf } from "../harness";
import type { Evaluation, K8sObject } from "../harness";
import { useSandbox, versionOf } from "./lib/group";
import { object, renderReal, secretData, startPod, waitReady } from "./lib/kube";
import type { RunningPod } from "./lib/kube";
import type { Container, Pod } from "./lib/sandbox";
import { waitFor } from "./lib/sandbox";

const CLIENTS = path.join(__dirname, "clients");
const cfg = configOf("prod");
const r = cfg.redis;
const ns = cfg.platform.namespace;
const host = (i: number) => `redis-${i}.redis-headless.${ns}.svc.cluster.local`;

describe(`sentinel: ${versionOf(r.image)}, Celery from Debian's python3-celery`, () => {
  const ctx = useSandbox("sentinel");
  let ev: Evaluation;
  let sts: K8sObject;
  let password: string;
  let sentinelPassword: string;
  const members: RunningPod[] = [];
  let master = 0;

  const cli = (pod: Pod, args: string[], auth: string, port = 6379, h = "127.0.0.1") =>
    pod.exec(["timeout", "5", "redis-cli", "--no-auth-warning", "-h", h, "-p", String(port), ...args], { env: { REDISCLI_AUTH: auth } });
  const role = async (i: number) => (await cli(members[i].pod, ["role"], password)).stdout.trim().split("\n");
  /** SENTINEL MASTER <name> as a map (redis-cli prints alternating key and value lines). */
  const sentinelMaster = async (i: number) => {
    const lines = (await cli(members[i].pod, ["sentinel", "master", r.sentinel.masterName], sentinelPassword, 26379)).stdout.trim().split("\n");
    return Object.fromEntries(lines.flatMap((l, j) => (j % 2 === 0 ? [[l, lines[j + 1]]] : [])));
  };
  const masterByName = async (i: number) => (await cli(members[i].pod, ["sentinel", "get-master-addr-by-name", r.sentinel.masterName], sentinelPassword, 26379)).stdout.trim().split("\n")[0];

  before(async () => {
    expect(r.sentinel.enabled && r.replicas >= 3, "prod runs Sentinel").to.equal(true);
    ev = await renderReal({ stack: "prod" });
    sts = object(ev, "StatefulSet", "redis");
    const creds = secretData(ev, "redis-credentials");
    password = creds.REDIS_PASSWORD;
    sentinelPassword = creds.REDIS_SENTINEL_PASSWORD;
    // OrderedReady: each member starts once the previous one is ready.
    for (let i = 0; i < r.replicas; i++) {
      members[i] = await startPod(ctx.sb, ev, sts, { ordinal: i, skip: ["exporter"] });
      await waitReady(members[i], "redis", 30_000);
      await waitReady(members[i], "sentinel", 30_000);
    }
  });

  it(`starts member 0 as the master and the other ${r.replicas - 1} as its replicas, known by their headless-Service names`, async () => {
    expect((await role(0))[0]).to.equal("master");
    for (let i = 1; i < r.replicas; i++) {
      await waitFor(`redis-${i} to replicate`, async () => {
        const ro = await role(i);
        return ro[0] === "slave" && ro[1] === host(0) && ro[3] === "connected";
      }, 30_000);
    }
    // The master lists its replicas by the names they announce, not by pod IPs.
    const info = (await cli(members[0].pod, ["info", "replication"], password)).stdout;
    for (let i = 1; i < r.replicas; i++) expect(info).to.include(`ip=${host(i)},port=6379,state=online`);
  });

  it(`runs ${r.replicas} Sentinels that know each other and every replica, with the rendered quorum and timings`, async () => {
    for (let i = 0; i < r.replicas; i++) {
      const m = await waitFor(`sentinel ${i} to discover the others`, async () => {
        const x = await sentinelMaster(i);
        return Number(x["num-other-sentinels"]) === r.replicas - 1 && Number(x["num-slaves"]) === r.replicas - 1 ? x : undefined;
      }, 30_000);
      expect(m).to.include({ name: r.sentinel.masterName, ip: host(0), port: "6379", quorum: String(r.sentinel.quorum) });
      expect(m["down-after-milliseconds"]).to.equal(String(r.sentinel.downAfterMilliseconds));
      expect(m["failover-timeout"]).to.equal(String(r.sentinel.failoverTimeoutMilliseconds));
    }
  });

  it("refuses clients without the generated passwords: Sentinel's differs from Redis's", async () => {
    const pod = members[1].pod;
    const noAuth = await pod.exec(["redis-cli", "-h", host(0), "-p", "26379", "ping"]);
    expect(noAuth.stdout + noAuth.stderr).to.match(/NOAUTH/);
    const refused = async (auth: string, port: number) => {
      const x = await cli(pod, ["ping"], auth, port, host(0));
      expect(x.stdout.trim(), `port ${port}`).to.not.equal("PONG");
      expect(x.stdout + x.stderr, `port ${port}`).to.match(/WRONGPASS|NOAUTH/);
    };
    await refused(password, 26379);
    await refused(sentinelPassword, 6379);
    expect((await cli(pod, ["ping"], sentinelPassword, 26379, host(0))).stdout.trim()).to.equal("PONG");
  });

  it(`guards writes on the master: min-replicas-to-write ${r.settings.minReplicasToWrite}, max lag ${r.settings.minReplicasMaxLag} s`, async () => {
    const get = async (k: string) => (await cli(members[0].pod, ["config", "get", k], password)).stdout.trim().split("\n")[1];
    expect(await get("min-replicas-to-write")).to.equal(String(r.settings.minReplicasToWrite));
    expect(await get("min-replicas-max-lag")).to.equal(String(r.settings.minReplicasMaxLag));
  });

  describe("Celery through the Sentinels while the master is killed", () => {
    let client: Pod;
    let worker: Container;
    let work: string;
    let env: Record<string, string>;
    const acked = () => path.join(work, "acked.txt");
    const recorded = () => path.join(work, "record.txt");
    const produce = (first: number, count: number, interval: number) =>
      client.exec(["/usr/bin/python3", path.join(CLIENTS, "celery_failover.py"), "produce", String(first), String(count), String(interval), acked()], { env, timeoutMs: 120_000 });
    const ackedNumbers = () => fs.readFileSync(acked(), "utf8").trim().split("\n").map((l) => l.split(" ").map(Number) as [number, number]);
    const executed = () => new Set(fs.existsSync(recorded()) ? fs.readFileSync(recorded(), "utf8").trim().split("\n").map(Number) : []);
    /** Waits for tasks to run; fails at once, with its log, when the worker has exited (nothing would run them). */
    const ran = <T>(what: string, check: () => T | undefined | false, timeoutMs: number) =>
      Promise.race([
        waitFor(what, check, timeoutMs),
        worker.exited.then((code) => {
          throw new Error(`the Celery worker exited (${code}) while waiting for ${what}:\n${worker.tail(30)}`);
        }),
      ]);
    /** Task numbers in kombu's hash of messages handed to a worker and not yet acknowledged, on the master. */
    const unackedTasks = async (): Promise<Set<number>> => {
      const out = await cli(members[master].pod, ["-n", String(REDIS_DB.broker), "hvals", "unacked"], password);
      const numbers = out.stdout.split("\n").flatMap((l) => {
        try {
          const [message] = JSON.parse(l);
          const [args] = JSON.parse(Buffer.from(message.body, "base64").toString());
          return [Number(args[0])];
        } catch {
          return [];
        }
      });
      return new Set(numbers);
    };
    const reconnects = () => worker.log.filter((l) => /consumer: (Connection to broker lost|Cannot connect to)/.test(l)).length;

    before(async () => {
      work = path.join(ctx.sb.dir, "celery");
      const demoDir = path.join(work, "demo");
      fs.mkdirSync(demoDir, { recursive: true });
      // The demo app exactly as the dev stack renders it, for the queue the prod pools consume.
      const queue = Object.values(cfg.workers.pools)[0].queues[0];
      const demo = demoCelery(cfg.workers.celeryApp, queue);
      for (const item of (demo.volume.configMap as { items: { key: string; path: string }[] }).items) {
        fs.mkdirSync(path.dirname(path.join(demoDir, item.path)), { recursive: true });
        fs.writeFileSync(path.join(demoDir, item.path), demo.data[item.key]);
      }
      const celeryApp = cfg.workers.celeryApp.includes(":") ? cfg.workers.celeryApp : cfg.workers.celeryApp.replace(/\.([^.]+)$/, ":$1");
      // Only the rendered connection settings: URLs, transport options, passwords.
      const connections = secretData(ev, "app-connections");
      const base = { PATH: "/usr/bin:/bin", HOME: "/tmp", PYTHONDONTWRITEBYTECODE: "1", DEMO_APP: celeryApp };
      env = { ...connections, ...base, DEMO_DIR: demoDir, RECORD_FILE: recorded() };
      client = ctx.sb.pod("celery", { namespace: ns });
      worker = client.start({
        name: "worker",
        argv: ["/usr/bin/python3", "-m", "celery", "-A", "celery_failover:app", "worker", "--loglevel", "info", "--concurrency", "2", "--queues", queue, "--without-gossip", "--without-mingle"],
        env: { ...connections, ...base, DEMO_DIR: "/demo", RECORD_FILE: "/work/record.txt", PYTHONPATH: "/clients" },
        mounts: [
          { src: CLIENTS, dst: "/clients", readOnly: true },
          { src: demoDir, dst: "/demo", readOnly: true },
          { src: work, dst: "/work" },
        ],
        workdir: "/work",
      });
      await worker.waitLog(/celery@\S+ ready/, 60_000);
    });

    it("runs tasks sent before the failover", async () => {
      const out = await produce(1, 200, 0);
      expect(out.code, out.stderr).to.equal(0);
      await ran("the first 200 tasks to run", () => [...Array(200).keys()].every((i) => executed().has(i + 1)), 30_000);
    });

    it("keeps the worker through a master that refuses writes for want of replicas (NOREPLICAS, as a new master does until its replicas attach): it reconnects, tasks sent meanwhile run", async () => {
      // Stands in for the moment after a promotion: asking for more good replicas than the master has
      // makes it answer every write (BRPOP included) with NOREPLICAS, as the rendered setting does then.
      const minReplicas = (n: number) => cli(members[master].pod, ["config", "set", "min-replicas-to-write", String(n)], password);
      expect((await minReplicas(r.replicas)).stdout.trim()).to.equal("OK");
      const reconnectsBefore = reconnects();
      const during = produce(5_000, 50, 0.02);
      try {
        await worker.waitLog(/Not enough good replicas/, 10_000);
        await new Promise((res) => setTimeout(res, 3000));
        expect(worker.running, `the worker exited:\n${worker.tail(30)}`).to.equal(true);
      } finally {
        expect((await minReplicas(r.settings.minReplicasToWrite)).stdout.trim()).to.equal("OK");
      }
      const p = await during;
      expect(p.code, p.stderr).to.equal(0);
      await ran("the tasks sent while the master refused writes to run", () => [...Array(50).keys()].every((i) => executed().has(5_000 + i)), 30_000);
      console.log(`      measured: the worker tried ${reconnects() - reconnectsBefore} reconnects before the master took writes again; ${JSON.parse(p.stdout.trim().split("\n").pop()!).publish_failures} refused publish attempts retried`);
    });

    it(`kills the master: a new master within down-after + failover-timeout (${(r.sentinel.downAfterMilliseconds + r.sentinel.failoverTimeoutMilliseconds) / 1000} s), every task sent before and after runs, acknowledged tasks lost only within min-replicas-max-lag`, async () => {
      // Publishing goes on through the kill: one task every 20 ms for 15 s.
      const during = produce(10_000, 750, 0.02);
      await new Promise((res) => setTimeout(res, 3000));
      const killedAt = Date.now() / 1000;
      await members[master].pod.kill();
      const survivors = [...members.keys()].filter((i) => i !== master);
      const next = await waitFor("a Sentinel to name a new master", async () => {
        const m = await masterByName(survivors[0]);
        return m && m !== host(master) ? m : undefined;
      }, (r.sentinel.downAfterMilliseconds + r.sentinel.failoverTimeoutMilliseconds) * 2, 100);
      const failoverSeconds = Date.now() / 1000 - killedAt;
      const newMaster = survivors.find((i) => host(i) === next)!;
      expect(newMaster, next).to.not.equal(undefined);
      await waitFor("the new master to say so", async () => (await role(newMaster))[0] === "master", 20_000);
      const p = await during;
      expect(p.code, p.stderr).to.equal(0);
      const summary = JSON.parse(p.stdout.trim().split("\n").pop()!);

      // After the failover: more tasks, and results read back through the Sentinel result backend.
      const after = await produce(20_000, 200, 0);
      expect(after.code, after.stderr).to.equal(0);
      const results = await client.exec(["/usr/bin/python3", path.join(CLIENTS, "celery_failover.py"), "results", "30000", "5"], { env, timeoutMs: 120_000 });
      expect(results.code, results.stderr).to.equal(0);
      expect(JSON.parse(results.stdout.trim().split("\n").pop()!).results).to.deep.equal([30000, 30001, 30002, 30003, 30004]);

      const all = ackedNumbers();
      const wanted = (lo: number, hi: number) => all.filter(([n]) => n >= lo && n < hi).map(([n]) => n);
      // Every task acknowledged before the kill or after the failover must run; those acknowledged
      // around the kill may be lost only if acknowledged in the last min-replicas-max-lag seconds.
      await ran("every task sent before and after the failover to run", () => [...wanted(1, 201), ...wanted(20_000, 20_200)].every((n) => executed().has(n)), 60_000).catch((e: Error) => {
        if (!worker.running) throw e;
      });
      await new Promise((res) => setTimeout(res, 3000));
      const done = executed();
      const lostBefore = wanted(1, 201).filter((n) => !done.has(n));
      const lostAfter = wanted(20_000, 20_200).filter((n) => !done.has(n));
      const lostDuring = all.filter(([n]) => n >= 10_000 && n < 20_000 && !done.has(n));
      const lastAckBeforeKill = all.filter(([, t]) => t < killedAt).length;
      console.log(
        `      measured: new master ${next} ${failoverSeconds.toFixed(1)} s after the kill (down-after ${r.sentinel.downAfterMilliseconds} ms);` +
          ` longest publish ${summary.longest_publish_seconds} s, ${summary.publish_failures} failed publish attempts retried;` +
          ` ${all.length} tasks acknowledged (${lastAckBeforeKill} before the kill), lost: ${lostBefore.length + lostDuring.length + lostAfter.length}` +
          (lostDuring.length ? ` (${lostDuring.map(([n, t]) => `${n} acked ${(killedAt - t).toFixed(2)} s before the kill`).join(", ")})` : ""),
      );
      expect(failoverSeconds).to.be.below((r.sentinel.downAfterMilliseconds + r.sentinel.failoverTimeoutMilliseconds) / 1000);
      expect(lostBefore, "tasks acknowledged before the failover window").to.deep.equal([]);
      expect(lostAfter, "tasks acknowledged after the failover").to.deep.equal([]);
      for (const [n, t] of lostDuring) expect(killedAt - t, `task ${n}`).to.be.below(r.settings.minReplicasMaxLag);
      master = newMaster;
    });

    it("restarts the killed member as a replica of the new master: its start script asks the Sentinels, and every Sentinel knows it again", async () => {
      const old = [...members.keys()].find((i) => !members[i].containers.redis.running)!;
      members[old] = await startPod(ctx.sb, ev, sts, { ordinal: old, pod: members[old].pod, skip: ["exporter"] });
      await waitReady(members[old], "redis", 30_000);
      expect(members[old].containers.redis.log.join("\n")).to.include(`current master: ${host(master)}`);
      await waitFor(`redis-${old} to replicate from ${host(master)}`, async () => {
        const ro = await role(old);
        return ro[0] === "slave" && ro[1] === host(master) && ro[3] === "connected";
      }, 30_000);
      await waitReady(members[old], "sentinel", 30_000);
      const m = await waitFor("its Sentinel to rejoin", async () => {
        const x = await sentinelMaster(old);
        return x.ip === host(master) && Number(x["num-other-sentinels"]) === r.replicas - 1 ? x : undefined;
      }, 30_000);
      expect(m.flags).to.equal("master");
      // Rejoined means every Sentinel knows every replica again, as before the first failover. A new
      // Sentinel learns them from the master's INFO, every 10 s: one that leads a failover before then
      // leaves the replica it does not know following the lost master until another Sentinel fixes
      // it (20 s later in the run that showed it), and the new master refuses writes meanwhile.
      for (let i = 0; i < r.replicas; i++) {
        await waitFor(`sentinel ${i} to know every replica of ${host(master)}`, async () => {
          const x = await sentinelMaster(i);
          return x.ip === host(master) && Number(x["num-slaves"]) === r.replicas - 1 && Number(x["num-other-sentinels"]) === r.replicas - 1;
        }, 30_000);
      }
    });

    it("cuts the master off (its node unreachable, no TCP reset): a new master, tasks run again within twice the failover budget, acknowledged tasks lost only from the moment of the cut", async () => {
      const old = master;
      const during = produce(40_000, 300, 0.02);
      await new Promise((res) => setTimeout(res, 2000));
      const cutAt = Date.now() / 1000;
      members[old].pod.disconnect();
      const survivors = [...members.keys()].filter((i) => i !== old);
      const next = await waitFor("a Sentinel to name a new master", async () => {
        const m = await masterByName(survivors[0]);
        return m && m !== host(old) ? m : undefined;
      }, 60_000, 100);
      const failoverSeconds = Date.now() / 1000 - cutAt;
      master = survivors.find((i) => host(i) === next)!;
      const p = await during;
      const publishedBy = Date.now() / 1000 - cutAt;
      expect(p.code, p.stderr).to.equal(0);
      const after = await produce(50_000, 100, 0);
      expect(after.code, after.stderr).to.equal(0);
      const want = ackedNumbers().filter(([n]) => n >= 50_000).map(([n]) => n);
      const ranAfter = await ran("the tasks sent after the partition to run", () => want.every((n) => executed().has(n)) && Date.now() / 1000 - cutAt, 120_000);
      const lost = ackedNumbers().filter(([n]) => n >= 40_000 && n < 50_000 && !executed().has(n));
      // A lost task is either still in kombu's unacknowledged hash (the worker had taken it when its
      // connection died and could not put it back on the lost node; kombu does after the visibility
      // timeout, an hour by default) or gone (its write or its delivery was on the wire at the cut).
      const held = lost.length ? await unackedTasks() : new Set<number>();
      expect(failoverSeconds).to.be.below((r.sentinel.downAfterMilliseconds + r.sentinel.failoverTimeoutMilliseconds) / 1000);
      console.log(
        `      measured (partition): new master ${next} ${failoverSeconds.toFixed(1)} s after the cut; the producer's 300 tasks were published ${publishedBy.toFixed(1)} s after it;` +
          ` tasks sent afterwards all ran ${(ranAfter as number).toFixed(1)} s after the cut; acknowledged tasks lost: ${lost.length}` +
          (lost.length ? ` (${lost.map(([n, t]) => `${n} acked ${Math.abs(cutAt - t).toFixed(2)} s ${t < cutAt ? "before" : "after"} the link went down, ${held.has(n) ? "held as unacknowledged" : "gone"}`).join("; ")})` : ""),
      );
      // Consumers find the lost node within the failover budget again (TCP keepalive), not after minutes.
      const budget = (r.sentinel.downAfterMilliseconds + r.sentinel.failoverTimeoutMilliseconds) / 1000;
      expect(ranAfter as number, "seconds until tasks sent after the cut ran").to.be.below(2 * budget);
      // Replication is asynchronous, so a task acknowledged in the moment before the cut can be lost,
      // as before a kill; one acknowledged by the new master (seconds after the cut) never.
      for (const [n, t] of lost) {
        expect(t - cutAt, `task ${n}: acknowledged after the cut`).to.be.below(1);
        expect(cutAt - t, `task ${n}: acknowledged before the cut`).to.be.below(r.settings.minReplicasMaxLag);
      }
      members[old].pod.reconnect();
    });

    after(async () => {
      await worker?.stop(5000);
    });
  });
});
