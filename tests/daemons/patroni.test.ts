// Replicated Postgres from the rendered prod stack: three members started from the StatefulSet's
// pod template with the rendered patroni.yml, pgbackrest.conf and scripts; only the DCS section is
// swapped (Kubernetes API -> an etcd pod of the sandbox: the kubernetes keys of patroni.yml and the
// PATRONI_KUBERNETES_* variables). The object store is s3rver over TLS in the sandbox.
// Measured and printed: promotion time after the leader's pod is killed, against the rendered
// ttl + loop_wait; commits acknowledged during the test that the new leader lacks (synchronous
// mode: none allowed). Then the old leader rejoins, and a fresh cluster restored to a moment
// between two inserts holds exactly the rows before it.
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { toYaml } from "../../components/lib/yaml";
import { configOf } from "../harness";
import type { Evaluation } from "../harness";
import { useSandbox, versionOf } from "./lib/group";
import { object, renderReal, runJob, secretData, startPod, waitReady } from "./lib/kube";
import type { RunningPod } from "./lib/kube";
import { startObjectStore } from "./lib/s3";
import type { ObjectStore } from "./lib/s3";
import type { Container, ContainerSpec, Pod } from "./lib/sandbox";
import { waitFor } from "./lib/sandbox";

const CLIENTS = path.join(__dirname, "clients");
const PY = "/usr/bin/python3";
const PREFIX = "email-platform/prod";
const cfg = configOf("prod");
const NS = cfg.platform.namespace;
/**
 * prod's synchronous mode, unless PATRONI_SYNCHRONOUS asks for another (scripts/measure-failover.ts
 * measures every mode); no acknowledged commit may be lost unless it is "off".
 */
const SYNCHRONOUS = process.env.PATRONI_SYNCHRONOUS ?? cfg.postgres.synchronous;
const overrides = process.env.PATRONI_SYNCHRONOUS ? { "postgres.synchronous": SYNCHRONOUS } : {};

interface Member {
  ordinal: number;
  running: RunningPod;
}

type PatroniState = { role?: string; state?: string; timeline?: number; patroni?: { name: string } };

/** GET on a member's Patroni REST API from a client next to it (undefined while it does not answer). */
async function rest(pod: Pod, route: string): Promise<any> {
  const py = "import sys,urllib.request as u\ntry:\n  print(u.urlopen(sys.argv[1], timeout=2).read().decode())\nexcept Exception as e:\n  r = getattr(e, 'read', None)\n  print(r().decode() if r else '')";
  const r = await pod.exec([PY, "-c", py, `http://${pod.ip}:8008${route}`]);
  try {
    return JSON.parse(r.stdout);
  } catch {
    return undefined;
  }
}

const isLeader = (s: PatroniState | undefined) => !!s && (s.role === "master" || s.role === "primary") && s.state === "running";

describe(`patroni: ${versionOf(cfg.postgres.image).replace(/\n/g, ", ")}`, () => {
  const ctx = useSandbox("patroni");
  let ev: Evaluation;
  let s3: ObjectStore;
  let etcd: Container;
  const members: Member[] = [];
  let rendered: { ttl: number; loop_wait: number; retry_timeout: number; synchronous_mode: boolean };
  let appPassword: string;
  let pitr: { at: string; before: number[] };

  /** The rendered patroni.yml with its DCS section pointed at the sandbox's etcd. */
  function swapDcs(e: Evaluation): void {
    const cm = object(e, "ConfigMap", "postgres-patroni");
    const yml = parse(cm.data["patroni.yml"]);
    expect(yml.kubernetes, "rendered DCS").to.include({ use_endpoints: true });
    delete yml.kubernetes;
    yml.etcd3 = { hosts: [`etcd.${NS}.svc.cluster.local:2379`] };
    // Written back as the program writes it (every string quoted: "on" stays a string for PyYAML).
    cm.data["patroni.yml"] = toYaml(yml);
  }

  /** Every container as rendered, plus the test CA (the object store's certificate), minus the Kubernetes DCS variables. */
  const adjust = (c: ContainerSpec): ContainerSpec => s3.trust({ ...c, env: Object.fromEntries(Object.entries(c.env).filter(([k]) => !k.startsWith("PATRONI_KUBERNETES_"))) });

  async function startMember(e: Evaluation, ordinal: number, pod?: Pod): Promise<Member> {
    const running = await startPod(ctx.sb, e, object(e, "StatefulSet", "postgres"), { ordinal, pod, skip: ["exporter"], adjust });
    const m = { ordinal, running };
    members[ordinal] = m;
    return m;
  }

  const state = (m: Member) => rest(m.running.pod, "/patroni") as Promise<PatroniState | undefined>;
  /** psql in the member's Postgres container over its socket (superuser, trusted locally as rendered). */
  async function sql(m: Member, query: string, db = cfg.secrets.postgresDatabase): Promise<string> {
    const r = await m.running.containers.postgres.exec(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-h", "/var/run/postgresql", "-U", "postgres", "-d", db, "-c", query]);
    if (r.code !== 0) throw new Error(`psql on postgres-${m.ordinal} failed: ${r.stderr}`);
    return r.stdout.trim();
  }
  async function leader(timeoutMs = 60_000): Promise<Member> {
    return waitFor("a leader", async () => {
      for (const m of members.filter((x) => x && x.running.containers.postgres.running)) if (isLeader(await state(m))) return m;
      return undefined;
    }, timeoutMs, 200);
  }

  before(async () => {
    s3 = await startObjectStore(ctx.sb);
    const c = s3.config(PREFIX);
    ev = await renderReal({ stack: "prod", set: { ...c.set, ...overrides }, secrets: c.secrets });
    rendered = parse(object(ev, "ConfigMap", "postgres-patroni").data["patroni.yml"]).bootstrap.dcs;
    appPassword = secretData(ev, "postgres-credentials").APP_DB_PASSWORD;
    const pod = ctx.sb.pod("etcd", { namespace: NS, services: ["etcd"] });
    await ctx.sb.applyDns();
    etcd = pod.start({
      name: "etcd",
      argv: ["etcd", "--name", "etcd", "--data-dir", "/tmp/etcd", "--listen-client-urls", "http://0.0.0.0:2379", "--advertise-client-urls", `http://${pod.ip}:2379`, "--listen-peer-urls", "http://127.0.0.1:2380"],
      env: { PATH: "/usr/bin:/bin" },
      mounts: [],
    });
    await pod.waitTcp(2379);
    swapDcs(ev);
  });

  it(`bootstraps ${cfg.postgres.replicas} members from the rendered configuration: one leader, streaming replicas${SYNCHRONOUS === "off" ? "" : ", one synchronous"}`, async () => {
    expect(cfg.postgres.replicas).to.equal(3);
    // OrderedReady: postgres-0 bootstraps the cluster, the others clone it.
    const first = await startMember(ev, 0);
    await waitReady(first.running, "postgres", 60_000);
    expect(await leader()).to.equal(first);
    await Promise.all([1, 2].map((i) => startMember(ev, i)));
    await Promise.all([1, 2].map((i) => waitReady(members[i].running, "postgres", 90_000)));
    const cluster = await waitFor("two streaming replicas", async () => {
      const c = await rest(first.running.pod, "/cluster");
      const replicas = (c?.members ?? []).filter((m: any) => ["replica", "sync_standby"].includes(m.role) && ["running", "streaming"].includes(m.state));
      return replicas.length === 2 && c.members.some((m: any) => m.role === "sync_standby") === (SYNCHRONOUS !== "off") ? c : undefined;
    }, 60_000, 500);
    expect(cluster.members.map((m: any) => m.name).sort()).to.deep.equal(["postgres-0", "postgres-1", "postgres-2"]);
    // The cluster-wide settings are the rendered ones (bootstrap.dcs).
    const live = await rest(first.running.pod, "/config");
    expect(live).to.deep.include({ ttl: rendered.ttl, loop_wait: rendered.loop_wait, retry_timeout: rendered.retry_timeout, synchronous_mode: SYNCHRONOUS !== "off" });
    expect(await sql(first, "SHOW synchronous_standby_names")).to.match(SYNCHRONOUS === "off" ? /^$/ : /postgres-[12]/);
  });

  it("archives WAL below <prefix>/postgres/ and takes a base backup through the members' TLS servers (the rendered CronJob)", async () => {
    const repo = `${PREFIX}/postgres/`;
    await waitFor("the stanza in the object store", () => s3.list(repo).some((k) => k.endsWith("archive/db/archive.info")), 30_000);
    const job = await runJob(ctx.sb, ev, object(ev, "CronJob", "postgres-basebackup"), "postgres-basebackup-1", { adjust }, 120_000);
    expect(job.codes.basebackup, job.output).to.equal(0);
    expect(job.output).to.match(/backup command end: completed successfully/);
    const keys = s3.list(repo);
    expect(keys.some((k) => /backup\/db\/\d{8}-\d{6}F\/backup\.manifest$/.test(k)), keys.join("\n")).to.equal(true);
    expect(keys.some((k) => /archive\/db\/\d+-\d+\/[0-9A-F]{16}\/[0-9A-F]{24}-[0-9a-f]{40}\.gz$/.test(k)), "a WAL segment").to.equal(true);
    expect(keys.every((k) => k.startsWith(`${PREFIX}/postgres/`))).to.equal(true);
  });

  it("keeps two inserts apart by a recorded moment, both archived (for the point-in-time restore)", async () => {
    const l = await leader();
    const app = { PGPASSWORD: appPassword };
    const psqlApp = async (q: string) => {
      const r = await l.running.pod.exec(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-h", l.running.pod.ip, "-U", cfg.secrets.postgresUser, "-d", cfg.secrets.postgresDatabase, "-c", q], { env: app });
      if (r.code !== 0) throw new Error(r.stderr);
      return r.stdout.trim();
    };
    // The application role over TCP with the generated password: the rendered pg_hba and post-bootstrap.
    await psqlApp("CREATE TABLE pitr (n int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp()); CREATE TABLE ticks (id bigint PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())");
    await psqlApp("INSERT INTO pitr (n) VALUES (1)");
    await new Promise((r) => setTimeout(r, 1100));
    const at = await psqlApp("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    await new Promise((r) => setTimeout(r, 1100));
    await psqlApp("INSERT INTO pitr (n) VALUES (2)");
    const segment = await sql(l, "SELECT pg_walfile_name(pg_switch_wal())", "postgres");
    await waitFor(`WAL segment ${segment} archived`, async () => (await sql(l, "SELECT last_archived_wal FROM pg_stat_archiver", "postgres")) >= segment, 30_000, 500);
    pitr = { at, before: [1] };
    expect(await psqlApp("SELECT string_agg(n::text, ',' ORDER BY n) FROM pitr")).to.equal("1,2");
  });

  it(`promotes a replica within the rendered ttl + loop_wait (${cfg.postgres.patroni.ttl} + ${cfg.postgres.patroni.loopWait} s) when the leader's pod dies${SYNCHRONOUS === "off" ? "" : ", losing no acknowledged commit"}`, async () => {
    const old = await leader();
    const hosts = members.map((m) => m.running.pod.ip).join(",");
    const client = ctx.sb.pod("writer", { namespace: NS });
    const writer = client.start({
      name: "writer",
      argv: [PY, path.join(CLIENTS, "pg_writer.py"), hosts, cfg.secrets.postgresDatabase, cfg.secrets.postgresUser],
      env: { PATH: "/usr/bin:/bin", PGPASSWORD: appPassword },
      mounts: [],
    });
    await waitFor("the writer's first commits", () => writer.log.filter((l) => l.startsWith("ack ")).length >= 50, 30_000);
    const killedAt = Date.now() / 1000;
    await old.running.pod.kill();
    const others = members.filter((m) => m !== old);
    const promoted = await waitFor("a promoted replica", async () => {
      for (const m of others) if (isLeader(await state(m))) return m;
      return undefined;
    }, (rendered.ttl + rendered.loop_wait + 30) * 1000, 200);
    const promotedAt = Date.now() / 1000;
    await waitFor("commits on the new leader", () => writer.log.some((l) => l.startsWith("ack ") && Number(l.split(" ")[2]) > promotedAt), 30_000);
    writer.kill();
    await writer.exited;
    const acks = writer.log.filter((l) => l.startsWith("ack ")).map((l) => ({ id: Number(l.split(" ")[1]), at: Number(l.split(" ")[2]) }));
    const beforeKill = acks.filter((a) => a.at < killedAt);
    const firstAfter = acks.find((a) => a.at > killedAt);
    const stored = new Set((await sql(promoted, "SELECT id FROM ticks")).split("\n").filter(Boolean).map(Number));
    const lost = acks.filter((a) => !stored.has(a.id));
    const seconds = promotedAt - killedAt;
    const promise = rendered.ttl + rendered.loop_wait;
    console.log(
      `      measured: postgres-${promoted.ordinal} promoted ${seconds.toFixed(1)} s after postgres-${old.ordinal}'s pod was killed (rendered ttl ${rendered.ttl} + loop_wait ${rendered.loop_wait} = ${promise} s); ` +
        `writes resumed after ${firstAfter ? (firstAfter.at - killedAt).toFixed(1) : "?"} s; ${acks.length} commits acknowledged (${beforeKill.length} before the kill), ${lost.length} lost (synchronous ${SYNCHRONOUS})`,
    );
    expect(seconds).to.be.at.most(promise);
    expect(rendered.synchronous_mode).to.equal(SYNCHRONOUS !== "off");
    if (SYNCHRONOUS !== "off") expect(lost, "acknowledged commits missing on the new leader").to.deep.equal([]);
    expect(beforeKill.length).to.be.at.least(50);
  });

  it("the old leader's pod comes back and rejoins as a streaming replica (pg_rewind, or a fresh copy as rendered)", async () => {
    const l = await leader();
    const old = members.find((m) => !m.running.containers.postgres.running)!;
    const started = Date.now();
    const back = await startMember(ev, old.ordinal, old.running.pod);
    await waitFor(`postgres-${old.ordinal} streaming from the new leader`, async () => {
      const s = await state(back);
      const streaming = await sql(l, "SELECT string_agg(application_name, ',') FROM pg_stat_replication WHERE state = 'streaming'", "postgres");
      return s?.role === "replica" && s.state === "running" && streaming.split(",").includes(`postgres-${old.ordinal}`);
    }, 120_000, 500);
    const log = back.running.containers.postgres.log.join("\n");
    const how = /running pg_rewind/.test(log) ? "pg_rewind" : /reinitializ|removing data directory|bootstrap from leader/i.test(log) ? "a fresh copy from the leader" : "no rewind needed";
    console.log(`      measured: postgres-${old.ordinal} rejoined as a replica ${((Date.now() - started) / 1000).toFixed(1)} s after its restart (${how})`);
    expect((await state(back))?.timeline).to.equal((await state(l))?.timeline);
  });

  it("patroni-sync puts a changed cluster setting back to the rendered value", async () => {
    const l = await leader();
    const api = secretData(ev, "postgres-credentials");
    const auth = `${api.PATRONI_API_USER}:${api.PATRONI_API_PASSWORD}`;
    const r = await l.running.pod.exec(["curl", "-sf", "-u", auth, "-X", "PATCH", "-d", JSON.stringify({ maximum_lag_on_failover: 1 }), `http://${l.running.pod.ip}:8008/config`]);
    expect(r.code, r.stderr).to.equal(0);
    await waitFor("the rendered maximum_lag_on_failover back", async () => (await rest(l.running.pod, "/config"))?.maximum_lag_on_failover === cfg.postgres.patroni.maximumLagOnFailover, 40_000, 500);
    expect(l.running.containers["patroni-sync"].log.join("\n")).to.match(/dynamic configuration applied \(maximum_lag_on_failover\)/);
  });

  it("restores a new cluster from the object store to the recorded moment: exactly the rows inserted before it", async () => {
    // The cluster is lost: every pod, every volume, and the DCS state.
    for (const m of members) await m.running.pod.kill();
    loseVolumes(ctx.sb.dir);
    const del = await etcd.exec(["etcdctl", "--endpoints=http://127.0.0.1:2379", "del", "--prefix", "/service/"], { env: { ETCDCTL_API: "3" } });
    expect(del.code, del.stderr).to.equal(0);
    const c = s3.config(PREFIX);
    const restored = await renderReal({ stack: "prod", set: { ...c.set, ...overrides, "postgres.restore": { targetTime: pitr.at } }, secrets: c.secrets });
    swapDcs(restored);
    const started = Date.now();
    const m = await startPod(ctx.sb, restored, object(restored, "StatefulSet", "postgres"), { ordinal: 0, pod: members[0].running.pod, skip: ["exporter"], adjust });
    const member = { ordinal: 0, running: m };
    await waitFor("the restored leader", async () => isLeader(await state(member)) && (await sql(member, "SELECT pg_is_in_recovery()")) === "f", 120_000, 500);
    console.log(`      measured: restored to ${pitr.at} and promoted in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    // Patroni restarts Postgres once after a custom bootstrap, right after post_bootstrap, to run with
    // the rendered configuration: a query in that second is refused ("shutting down"), so it is retried.
    const { rows } = await waitFor("the restored rows", async () => ({ rows: await sql(member, "SELECT string_agg(n::text, ',' ORDER BY n) FROM pitr") }), 60_000, 500);
    expect(rows).to.equal(pitr.before.join(","));
    expect(m.containers.postgres.log.join("\n")).to.match(/restore: backup set \d{8}-\d{6}F/);
  });
});

/** The volumes of a lost cluster are gone with it: its claims are deleted from the sandbox. */
function loseVolumes(dir: string): void {
  const claims = path.join(dir, "claims");
  for (const d of fs.existsSync(claims) ? fs.readdirSync(claims) : []) if (d.startsWith("data-postgres-")) fs.rmSync(path.join(claims, d), { recursive: true, force: true });
}
