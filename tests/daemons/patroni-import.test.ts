// Moving a single-pod stack to the replicated one, with the rendered objects of both: today's
// single Postgres pod (prod with replicas 1) holds data; its pg_dump CronJob writes a dump; the
// StatefulSet becomes the Patroni one on the same claim (the old data directory stays beside the
// new one); the rendered import Job restores the dump into the new leader. Then the leader's
// rendered preStop hands over to the replica before it stops, as in a rolling update: measured as
// the writes' interruption, with no acknowledged commit lost.
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { toYaml } from "../../components/lib/yaml";
import { configOf } from "../harness";
import type { Evaluation } from "../harness";
import { useSandbox, versionOf } from "./lib/group";
import { object, objectsOf, renderReal, runJob, secretData, startPod, waitReady } from "./lib/kube";
import type { RunningPod } from "./lib/kube";
import type { Container, ContainerSpec } from "./lib/sandbox";
import { waitFor } from "./lib/sandbox";

const CLIENTS = path.join(__dirname, "clients");
const PY = "/usr/bin/python3";
const cfg = configOf("prod");
const NS = cfg.platform.namespace;
const DB = cfg.secrets.postgresDatabase;
const USER = cfg.secrets.postgresUser;

async function patroniState(m: RunningPod): Promise<{ role?: string; state?: string } | undefined> {
  const r = await m.pod.exec(["curl", "-s", "-m", "2", `http://${m.pod.ip}:8008/patroni`]);
  try {
    return JSON.parse(r.stdout);
  } catch {
    return undefined;
  }
}
const leads = (s?: { role?: string; state?: string }) => !!s && ["master", "primary"].includes(s.role ?? "") && s.state === "running";

describe(`patroni-import: ${versionOf(cfg.postgres.image).split("\n")[0]}`, () => {
  const ctx = useSandbox("patroni-import");
  let single: Evaluation;
  let patroni: Evaluation;
  let leader: RunningPod;
  let replica: RunningPod;
  let rows: string;

  const psql = (pod: RunningPod, password: string, sql: string) =>
    pod.pod.exec(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-h", pod.pod.ip, "-U", USER, "-d", DB, "-c", sql], { env: { PGPASSWORD: password } });
  /** The DCS section of the rendered patroni.yml pointed at the sandbox's etcd (and its PATRONI_KUBERNETES_* variables left out). */
  const withoutKubernetes = (c: ContainerSpec): ContainerSpec => ({ ...c, env: Object.fromEntries(Object.entries(c.env).filter(([k]) => !k.startsWith("PATRONI_KUBERNETES_"))) });

  before(async () => {
    single = await renderReal({ stack: "prod", set: { "postgres.replicas": 1 } });
    expect(configOf(single).postgres.mode).to.equal("single");
    patroni = await renderReal({ stack: "prod", set: { "postgres.import": { dump: "latest" } } });
    const cm = object(patroni, "ConfigMap", "postgres-patroni");
    const yml = parse(cm.data["patroni.yml"]);
    delete yml.kubernetes;
    yml.etcd3 = { hosts: [`etcd.${NS}.svc.cluster.local:2379`] };
    cm.data["patroni.yml"] = toYaml(yml);
    const etcd = ctx.sb.pod("etcd", { namespace: NS, services: ["etcd"] });
    await ctx.sb.applyDns();
    etcd.start({ name: "etcd", argv: ["etcd", "--data-dir", "/tmp/etcd", "--listen-client-urls", "http://0.0.0.0:2379", "--advertise-client-urls", `http://${etcd.ip}:2379`, "--listen-peer-urls", "http://127.0.0.1:2380"], env: { PATH: "/usr/bin:/bin" }, mounts: [] });
    await etcd.waitTcp(2379);
  });

  it("today's single pod holds the data, and its pg_dump CronJob writes a dump", async () => {
    // The official image's postgresql.conf.sample listens on '*' (its Dockerfile sets it); Debian's
    // says localhost and the postgres shim's initdb keeps that, so the image's default is passed here.
    const listen = (c: ContainerSpec, name: string) => (name === "postgres" ? { ...c, argv: [...c.argv, "-c", "listen_addresses=*"] } : c);
    const old = await startPod(ctx.sb, single, object(single, "StatefulSet", "postgres"), { skip: ["exporter"], adjust: listen });
    await waitReady(old, "postgres", 60_000);
    const password = secretData(single, "postgres-credentials").APP_DB_PASSWORD;
    const created = await psql(old, password, "CREATE TABLE mail (id int PRIMARY KEY, subject text); INSERT INTO mail SELECT g, 'message ' || g FROM generate_series(1, 500) g; CREATE INDEX ON mail (subject)");
    expect(created.code, created.stderr).to.equal(0);
    rows = (await psql(old, password, "SELECT count(*) || ':' || md5(string_agg(subject, ',' ORDER BY id)) FROM mail")).stdout.trim();
    const job = await runJob(ctx.sb, single, object(single, "CronJob", "postgres-backup"), "postgres-backup-1");
    expect(job.codes.backup, job.output).to.equal(0);
    expect(fs.readdirSync(path.join(ctx.sb.dir, "claims", "postgres-backup")).filter((f) => f.endsWith(".dump"))).to.have.length(1);
    // pulumi up replaces the pod: the old one stops, its claim stays.
    await old.containers.postgres.stop();
    await old.pod.kill();
  });

  it("the Patroni StatefulSet starts fresh on the same claim, and the rendered import Job restores the dump into the leader", async () => {
    const sts = object(patroni, "StatefulSet", "postgres");
    leader = await startPod(ctx.sb, patroni, sts, { ordinal: 0, pod: ctx.sb.getPod("postgres-0"), skip: ["exporter"], adjust: withoutKubernetes });
    await waitReady(leader, "postgres", 60_000);
    await waitFor("postgres-0 to lead", async () => leads(await patroniState(leader)), 60_000, 300);
    // The leader Service has no selector: Patroni writes the leader's address into its Endpoints. Here, DNS stands in.
    ctx.sb.addA(`postgres.${NS}.svc.cluster.local`, leader.pod.ip);
    await ctx.sb.applyDns();
    const jobs = objectsOf(patroni, "Job").filter((j) => j.metadata.name.startsWith("postgres-import-"));
    expect(jobs).to.have.length(1);
    const started = Date.now();
    const run = await runJob(ctx.sb, patroni, jobs[0], "postgres-import-1", {}, 120_000);
    expect(run.codes.import, run.output).to.equal(0);
    expect(run.output).to.match(/import: \/backup\/postgres-\d{8}T\d{6}Z\.dump restored into/);
    const password = secretData(patroni, "postgres-credentials").APP_DB_PASSWORD;
    expect((await psql(leader, password, "SELECT count(*) || ':' || md5(string_agg(subject, ',' ORDER BY id)) FROM mail")).stdout.trim()).to.equal(rows);
    // Owned by the application role (--no-owner as that role), the index rebuilt under the new collation.
    expect((await psql(leader, password, "SELECT tableowner FROM pg_tables WHERE tablename = 'mail'")).stdout.trim()).to.equal(USER);
    expect((await psql(leader, password, "SELECT count(*) FROM pg_indexes WHERE tablename = 'mail'")).stdout.trim()).to.equal("2");
    console.log(`      measured: import of ${rows.split(":")[0]} rows in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    // The old data directory is still there, untouched, beside the new one.
    const claim = path.join(ctx.sb.dir, "claims", "data-postgres-0");
    expect(fs.existsSync(path.join(claim, "pgdata", "PG_VERSION"))).to.equal(true);
    expect(fs.existsSync(path.join(claim, "patroni", "PG_VERSION"))).to.equal(true);
    // A second run refuses to import into a database that has data.
    const again = await runJob(ctx.sb, patroni, jobs[0], "postgres-import-2", {}, 120_000);
    expect(again.codes.import).to.not.equal(0);
    expect(again.output).to.match(/is not empty .*nothing imported/);
  });

  it("the leader's rendered preStop switches over to the replica before it stops: writes pause briefly, no acknowledged commit is lost", async () => {
    replica = await startPod(ctx.sb, patroni, object(patroni, "StatefulSet", "postgres"), { ordinal: 1, skip: ["exporter"], adjust: withoutKubernetes });
    await waitReady(replica, "postgres", 90_000);
    await waitFor("postgres-1 streaming", async () => (await patroniState(replica))?.state === "running" && (await patroniState(replica))?.role === "replica", 60_000, 300);
    const password = secretData(patroni, "postgres-credentials").APP_DB_PASSWORD;
    expect((await psql(leader, password, "CREATE TABLE ticks (id bigint PRIMARY KEY)")).code).to.equal(0);
    const writer: Container = ctx.sb.pod("writer", { namespace: NS }).start({
      name: "writer",
      argv: [PY, path.join(CLIENTS, "pg_writer.py"), `${leader.pod.ip},${replica.pod.ip}`, DB, USER],
      env: { PATH: "/usr/bin:/bin", PGPASSWORD: password },
      mounts: [],
    });
    await waitFor("the writer's first commits", () => writer.log.filter((l) => l.startsWith("ack ")).length >= 30, 30_000);
    // What the kubelet does when the StatefulSet controller deletes the leader's pod: preStop, then SIGTERM.
    const hook = object(patroni, "StatefulSet", "postgres").spec.template.spec.containers[0].lifecycle.preStop.exec.command;
    const stoppedAt = Date.now() / 1000;
    const pre = await leader.containers.postgres.exec(hook, { timeoutMs: 90_000 });
    expect(pre.code, pre.stderr).to.equal(0);
    expect(pre.stdout, pre.stdout).to.match(/pre-stop: switchover from postgres-0: 200/);
    expect(leads(await patroniState(replica)), "postgres-1 leads before postgres-0 stops").to.equal(true);
    await leader.containers.postgres.stop(30_000);
    await waitFor("commits on the new leader", () => writer.log.some((l) => l.startsWith("ack ") && Number(l.split(" ")[2]) > Date.now() / 1000 - 0.5), 30_000);
    writer.kill();
    await writer.exited;
    const acks = writer.log.filter((l) => l.startsWith("ack ")).map((l) => ({ id: Number(l.split(" ")[1]), at: Number(l.split(" ")[2]) }));
    let gap = 0;
    for (let i = 1; i < acks.length; i++) if (acks[i].at > stoppedAt) gap = Math.max(gap, acks[i].at - acks[i - 1].at);
    const stored = new Set((await psql(replica, password, "SELECT id FROM ticks")).stdout.trim().split("\n").map(Number));
    const lost = acks.filter((a) => !stored.has(a.id));
    console.log(`      measured: switchover in the leader's preStop: writes paused ${gap.toFixed(1)} s at most; ${acks.length} commits acknowledged, ${lost.length} lost`);
    expect(lost).to.deep.equal([]);
    expect(gap).to.be.below(cfg.postgres.patroni.loopWait);
  });

  it("a rotated password reaches the running leader through the Secret's volume (patroni-sync), without a restart", async () => {
    // The new leader (postgres-1 since the switchover); the kubelet rewrites the Secret's files in place.
    expect(leads(await patroniState(replica))).to.equal(true);
    const old = secretData(patroni, "postgres-credentials").APP_DB_PASSWORD;
    const rotated = "rotated0" + old.slice(8);
    const file = path.join(ctx.sb.dir, "pods", "postgres-1", "volumes", "credentials", "APP_DB_PASSWORD");
    fs.writeFileSync(file, rotated);
    const started = Date.now();
    await waitFor("the rotated password to log in", async () => (await psql(replica, rotated, "SELECT 1")).code === 0, 60_000, 500);
    expect((await psql(replica, old, "SELECT 1")).code).to.not.equal(0);
    expect(replica.containers["patroni-sync"].log.join("\n")).to.match(/role passwords match the Secret/);
    console.log(`      measured: rotated password in effect ${((Date.now() - started) / 1000).toFixed(1)} s after the Secret's file changed`);
  });
});
