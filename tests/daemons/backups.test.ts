// Off-cluster backup copies, end to end, against a local S3-compatible server over TLS (s3rver):
// the rendered backup CronJobs dump, upload and prune by retention; a failed or empty upload
// deletes nothing; then each store is restored with the commands of docs/data.md and docs/mail.md
// (their jq programs are read from the docs and applied to the rendered CronJobs, as
// `kubectl create job --from=cronjob/... | jq ...` would) and the restored data equals the original:
// the Redis dataset digest, the Postgres table digest, the messages IMAP lists (UIDs included).
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { PORTS } from "../../components/lib/ports";
import { configOf } from "../harness";
import type { Evaluation, K8sObject } from "../harness";
import { useSandbox, versionOf } from "./lib/group";
import { docJob, object, renderReal, runJob, secretData, startPod, waitReady } from "./lib/kube";
import type { JobRun, RunningPod, StartOptions } from "./lib/kube";
import type { ContainerSpec, Sandbox } from "./lib/sandbox";
import { waitFor } from "./lib/sandbox";
import type { ObjectStore } from "./lib/s3";
import { startObjectStore } from "./lib/s3";

const CLIENTS = path.join(__dirname, "clients");

describe(`backups: off-cluster copies and restores (${versionOf("rclone/rclone:1.68.2")})`, () => {
  const ctx = useSandbox("backups");
  let s3: ObjectStore;
  const trusting = (opts: StartOptions = {}): StartOptions => ({
    ...opts,
    // The store's certificate comes from the test CA, which an image built for a private CA would trust.
    adjust: (c: ContainerSpec, name: string) => {
      const spec = name === "upload" ? s3.trust(c) : c;
      return opts.adjust ? opts.adjust(spec, name) : spec;
    },
  });
  const job = async (sb: Sandbox, ev: Evaluation, obj: K8sObject, name: string, opts: StartOptions = {}): Promise<JobRun> => runJob(sb, ev, obj, name, trusting(opts));
  const ok = (run: JobRun) => {
    for (const [name, code] of Object.entries(run.codes)) expect(code, `${name}:\n${run.output}`).to.equal(0);
    return run;
  };
  const claim = (name: string) => path.join(ctx.sb.dir, "claims", name);

  before(async () => {
    s3 = await startObjectStore(ctx.sb);
  });

  describe("Redis with Sentinel (prod)", () => {
    const cfg = configOf("prod");
    const prefix = "email-platform/prod";
    const retention = cfg.redis.backup.retention;
    const remote = `${prefix}/redis/`;
    let ev: Evaluation;
    let sts: K8sObject;
    let password: string;
    const members: RunningPod[] = [];
    let original: string;
    const dataset = async (action: "fill" | "digest", member = 0) => {
      const r = await members[member].pod.exec(["/usr/bin/python3", path.join(CLIENTS, "redis_dataset.py"), action, "127.0.0.1", "6379"], { env: { REDISCLI_AUTH: password } });
      expect(r.code, r.stderr).to.equal(0);
      return r.stdout.trim();
    };
    const remoteCopies = () => s3.list(remote).map((k) => k.slice(remote.length));

    before(async () => {
      const { set, secrets } = s3.config(prefix);
      ev = await renderReal({ stack: "prod", set, secrets });
      sts = object(ev, "StatefulSet", "redis");
      password = secretData(ev, "redis-credentials").REDIS_PASSWORD;
      // The master and one replica (the write guard needs one).
      for (const i of [0, 1]) {
        members[i] = await startPod(ctx.sb, ev, sts, { ordinal: i, skip: ["exporter"] });
        await waitReady(members[i], "redis", 30_000);
      }
      await waitFor("the replica to sync", async () => (await members[1].pod.exec(["redis-cli", "--no-auth-warning", "-h", "127.0.0.1", "role"], { env: { REDISCLI_AUTH: password } })).stdout.includes("connected"), 30_000);
      await dataset("fill");
      original = await dataset("digest");
      expect(original).to.match(/^db0=504 db1=1 db2=1 /);
    });

    it(`dumps from the replica, uploads to ${remote} and keeps the newest ${retention} copies there`, async () => {
      // Copies from earlier nights, already in the store: the oldest must go, the rest stay.
      const old = Array.from({ length: retention + 1 }, (_, i) => `redis-2026010${Math.floor(i / 10)}T0${i % 10}0000Z.rdb`);
      const seed = await job(ctx.sb, ev, object(ev, "CronJob", "redis-backup"), "redis-seed", { skip: ["backup"], adjust: (c, name) => (name === "upload" ? { ...c, argv: ["sh", "-c", old.map((f) => `echo old > /tmp/${f} && rclone copyto /tmp/${f} "offsite:backups/${remote}${f}"`).join(" && ")] } : c) });
      ok(seed);
      expect(remoteCopies()).to.deep.equal(old);

      const run = ok(await job(ctx.sb, ev, object(ev, "CronJob", "redis-backup"), "redis-backup-1"));
      expect(run.output).to.include(`snapshot from redis-1.redis-headless.${cfg.platform.namespace}.svc.cluster.local`);
      const local = fs.readdirSync(claim("redis-backup")).filter((f) => f.endsWith(".rdb"));
      expect(local).to.have.length(1);
      const copies = remoteCopies();
      expect(copies).to.have.length(retention);
      expect(copies).to.deep.equal([...old.slice(-(retention - 1)), local[0]]);
      // The uploaded object is the file on the volume, byte for byte.
      const stored = fs.readFileSync(path.join(s3.dataDir, s3.bucket, remote, `${local[0]}._S3rver_object`));
      expect(stored.equals(fs.readFileSync(path.join(claim("redis-backup"), local[0])))).to.equal(true);
    });

    it("a failed upload (a key the store refuses) fails the Job and prunes nothing", async () => {
      const before = remoteCopies();
      const run = await job(ctx.sb, ev, object(ev, "CronJob", "redis-backup"), "redis-backup-2", {
        adjust: (c, name) => (name === "upload" ? { ...c, env: { ...c.env, RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID: "NOT-THE-KEY" } } : c),
      });
      expect(run.codes.upload, run.output).to.not.equal(0);
      expect(remoteCopies()).to.deep.equal(before);
    });

    it("an empty backup volume uploads nothing and deletes nothing remotely (copy, never sync)", async () => {
      const before = remoteCopies();
      for (const f of fs.readdirSync(claim("redis-backup"))) fs.rmSync(path.join(claim("redis-backup"), f), { recursive: true, force: true });
      const run = await job(ctx.sb, ev, object(ev, "CronJob", "redis-backup"), "redis-backup-3", { skip: ["backup"] });
      expect(run.codes.upload, run.output).to.not.equal(0);
      expect(run.output).to.include("no local backup to upload");
      expect(remoteCopies()).to.deep.equal(before);
    });

    it("restores the newest copy with docs/data.md's procedure (scale to 0, fetch into data-redis-0, scale up): same dataset on every member", async () => {
      const newest = remoteCopies().pop()!;
      // kubectl scale statefulset redis --replicas=0
      for (const m of members) await m.containers.redis.stop(5000);
      for (const m of members) await m.pod.kill();
      fs.rmSync(claim("data-redis-0"), { recursive: true, force: true });
      fs.rmSync(claim("data-redis-1"), { recursive: true, force: true });
      const fetch = ok(await job(ctx.sb, ev, docJob(ev, "data.md", "redis-fetch"), "redis-fetch"));
      expect(fetch.output).to.include(`fetched offsite:backups/${remote}${newest} to /restore/restore.rdb`);
      // kubectl scale statefulset redis --replicas=3 (two here): member 0 first, as OrderedReady does.
      for (const i of [0, 1]) {
        members[i] = await startPod(ctx.sb, ev, sts, { ordinal: i, pod: members[i].pod, skip: ["exporter"] });
        await waitReady(members[i], "redis", 30_000);
      }
      expect(members[0].containers.redis.log.join("\n")).to.include("restoring /data/restore.rdb");
      expect(await dataset("digest")).to.equal(original);
      await members[0].containers.redis.waitLog(/restore loaded; AOF on again/, 30_000);
      const aof = await members[0].pod.exec(["redis-cli", "--no-auth-warning", "-h", "127.0.0.1", "config", "get", "appendonly"], { env: { REDISCLI_AUTH: password } });
      expect(aof.stdout.trim().split("\n")[1]).to.equal("yes");
      await waitFor("the replica to resync", async () => (await dataset("digest", 1)) === original, 30_000);
    });
  });

  describe("Postgres dump (prod)", () => {
    const prefix = "email-platform/prod";
    let ev: Evaluation;
    let pg: RunningPod;
    let creds: Record<string, string>;
    let original: string;
    const sql = async (query: string) => {
      const r = await pg.pod.exec(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", creds.APP_DB_USER, "-d", creds.POSTGRES_DB, "-c", query], { env: { PGPASSWORD: creds.APP_DB_PASSWORD } });
      expect(r.code, r.stderr).to.equal(0);
      return r.stdout.trim();
    };
    const digest = () => sql("SELECT count(*) || ' ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM items");

    before(async () => {
      const { set, secrets } = s3.config(prefix);
      // The dump copy of a single-pod Postgres (prod's Patroni set archives WAL itself: the patroni group).
      ev = await renderReal({ stack: "prod", set: { ...set, "postgres.replicas": 1, "postgres.archive.enabled": false }, secrets });
      creds = secretData(ev, "postgres-credentials");
      pg = await startPod(ctx.sb, ev, object(ev, "StatefulSet", "postgres"), { skip: ["exporter"] });
      await waitReady(pg, "postgres", 120_000);
      await waitFor("the application role", async () => (await pg.pod.exec(["psql", "-X", "-qAt", "-h", "127.0.0.1", "-U", creds.APP_DB_USER, "-d", creds.POSTGRES_DB, "-c", "select 1"], { env: { PGPASSWORD: creds.APP_DB_PASSWORD } })).code === 0, 30_000);
      await sql("CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 5000) g");
      original = await digest();
      expect(original).to.match(/^5000 [0-9a-f]{32}$/);
    });

    it(`dumps and uploads to ${prefix}/postgres/`, async () => {
      const run = ok(await job(ctx.sb, ev, object(ev, "CronJob", "postgres-backup"), "postgres-backup-1"));
      expect(run.output).to.match(/uploaded postgres-\d{8}T\d{6}Z\.dump/);
      expect(s3.list(`${prefix}/postgres/`)).to.have.length(1);
    });

    it("restores it with docs/data.md's fetch and restore Jobs after the data and the backup volume are lost: same rows", async () => {
      await sql("DROP TABLE items; CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL); INSERT INTO items VALUES (1, 'changed')");
      expect(await digest()).to.not.equal(original);
      fs.rmSync(claim("postgres-backup"), { recursive: true, force: true });
      ok(await job(ctx.sb, ev, docJob(ev, "data.md", "postgres-fetch"), "postgres-fetch"));
      const restore = ok(await job(ctx.sb, ev, docJob(ev, "data.md", "postgres-restore"), "postgres-restore"));
      expect(restore.codes).to.have.keys(["backup"]);
      expect(await digest()).to.equal(original);
    });
  });

  describe("MongoDB (prod): the docs' Jobs, built from the rendered CronJob (no MongoDB runs here)", () => {
    it("mongo-fetch fetches the newest copy; mongo-restore runs mongorestore --oplogReplay against the set with the dump container's settings", async () => {
      const { set, secrets } = s3.config("email-platform/prod");
      const ev = await renderReal({ stack: "prod", set, secrets });
      const fetch = docJob(ev, "data.md", "mongo-fetch").spec.template.spec;
      expect(fetch.initContainers).to.equal(undefined);
      expect(fetch.containers.map((c: K8sObject) => [c.name, c.args])).to.deep.equal([["upload", ["fetch", "latest"]]]);
      const restore = docJob(ev, "data.md", "mongo-restore").spec.template.spec;
      expect(restore.initContainers).to.equal(undefined);
      expect(restore.containers).to.have.length(1);
      const c = restore.containers[0];
      expect(c.image).to.equal(configOf("prod").mongo.image);
      expect(c.command[2]).to.match(/^mongorestore --host="\$MONGO_HOST" .*--oplogReplay --drop --gzip --archive="\$\(ls -1 \/backup\/mongo-\*\.archive\.gz/);
      expect(c.env.map((e: K8sObject) => e.name)).to.include.members(["MONGO_HOST", "MONGO_USER", "MONGO_PASSWORD"]);
    });
  });

  describe("mailboxes (dev with mail.backup on)", () => {
    const cfg = configOf("dev");
    const prefix = "email-platform/dev";
    const domain = cfg.mail.domain!;
    const users = cfg.mail.users;
    let ev: Evaluation;
    let dovecot: RunningPod;
    let passwords: Record<string, string>;
    let original: Record<string, unknown>;
    const mailNs = cfg.platform.mailNamespace;
    // The client Service and its ports (143, 24), as in-cluster clients use them; the pod listens on the
    // rootless high ports behind them.
    const dovecotHost = `dovecot.${mailNs}.svc.cluster.local`;
    const mailbox = async (user: string) => {
      const r = await dovecot.pod.exec(["/usr/bin/python3", path.join(CLIENTS, "mailbox.py"), "list", dovecotHost, String(PORTS.dovecot.imap), `${user}@${domain}`], { env: { PW: passwords[user] } });
      expect(r.code, r.stderr).to.equal(0);
      return JSON.parse(r.stdout) as { uid: number; headers: string }[];
    };
    const everyMailbox = async () => Object.fromEntries(await Promise.all(users.map(async (u) => [u, await mailbox(u)] as const)));

    before(async () => {
      const { set, secrets } = s3.config(prefix);
      ev = await renderReal({ stack: "dev", set: { ...set, "mail.backup.enabled": true }, secrets });
      passwords = ev.outputs.mailUserPasswords as Record<string, string>;
      dovecot = await startPod(ctx.sb, ev, object(ev, "StatefulSet", "dovecot", mailNs));
      await waitReady(dovecot, "dovecot", 30_000);
      let n = 0;
      for (const user of users) {
        for (let i = 0; i < 2 + users.indexOf(user); i++) {
          const r = await dovecot.pod.exec(["/usr/bin/python3", path.join(CLIENTS, "mailbox.py"), "deliver", dovecotHost, String(PORTS.dovecot.lmtp), `${user}@${domain}`, `backup-test-${user}-${n++}`]);
          expect(r.code, r.stderr).to.equal(0);
        }
      }
      original = await everyMailbox();
      expect(Object.values(original).map((m) => (m as unknown[]).length)).to.deep.equal(users.map((_, i) => 2 + i));
    });

    it(`backs up every mailbox with doveadm while Dovecot runs, as vmail, and uploads to ${prefix}/mailbox/`, async () => {
      const run = ok(await job(ctx.sb, ev, object(ev, "CronJob", "mailbox-backup", mailNs), "mailbox-backup-1"));
      for (const [i, user] of users.entries()) expect(run.output).to.include(`${user}@${domain}: ${2 + i} messages`);
      expect(run.containers.upload).to.not.equal(undefined);
      expect(s3.list(`${prefix}/mailbox/`)).to.have.length(1).and.satisfy((k: string[]) => /mailbox-\d{8}T\d{6}Z\.tar\.gz$/.test(k[0]));
      expect(dovecot.containers.dovecot.running).to.equal(true);
    });

    it("restores them with docs/mail.md's Jobs after the mail volume and the backup volume are lost: IMAP lists the same messages with the same UIDs", async () => {
      // The mail volume is lost: Dovecot comes back on an empty one.
      const sts = object(ev, "StatefulSet", "dovecot", mailNs);
      await dovecot.containers.dovecot.stop(5000);
      fs.rmSync(claim("mail-dovecot-0"), { recursive: true, force: true });
      fs.rmSync(claim("mailbox-backup"), { recursive: true, force: true });
      dovecot = await startPod(ctx.sb, ev, sts, { pod: dovecot.pod });
      await waitReady(dovecot, "dovecot", 30_000);
      for (const user of users) expect(await mailbox(user), user).to.deep.equal([]);
      ok(await job(ctx.sb, ev, docJob(ev, "mail.md", "mailbox-fetch"), "mailbox-fetch"));
      const restore = ok(await job(ctx.sb, ev, docJob(ev, "mail.md", "mailbox-restore"), "mailbox-restore"));
      for (const user of users) expect(restore.output).to.include(`${user}@${domain}: restored from mailbox-`);
      expect(await everyMailbox()).to.deep.equal(original);
    });
  });
});
