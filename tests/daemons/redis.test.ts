// Redis from the rendered dev and prod stacks: the StatefulSet's pod with its redis.conf, args and
// probes; the generated password enforced; memory policy and persistence in effect; the backup
// CronJob's retention; and the single-server restore procedure of docs/data.md, run step by step
// (on dev with backups on; prod's three members with Sentinel and their off-cluster copies are the
// sentinel and backups groups).
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { redisBytes } from "../../config/data";
import { configOf } from "../harness";
import type { Evaluation } from "../harness";
import { useSandbox, versionOf } from "./lib/group";
import { object, renderReal, runJob, secretData, startPod, waitReady } from "./lib/kube";
import type { RunningPod } from "./lib/kube";

const CLIENTS = path.join(__dirname, "clients");
const prod = configOf("prod");

describe(`redis: ${versionOf(prod.redis.image)}`, () => {
  for (const stack of ["dev", "prod"] as const) {
    describe(`${stack} stack`, () => {
      const ctx = useSandbox(`redis-${stack}`);
      const cfg = configOf(stack);
      let ev: Evaluation;
      let redis: RunningPod;
      let password: string;
      const cli = (args: string[], auth?: string) => redis.pod.exec(["redis-cli", "-h", "127.0.0.1", "--no-auth-warning", ...args], { env: auth === undefined ? {} : { REDISCLI_AUTH: auth } });

      before(async () => {
        ev = await renderReal({ stack });
        password = secretData(ev, "redis-credentials").REDIS_PASSWORD;
        redis = await startPod(ctx.sb, ev, object(ev, "StatefulSet", "redis"), { skip: ["exporter"] });
      });

      it("starts from the rendered redis.conf and args, and its readiness probe passes", async () => {
        await waitReady(redis, "redis", 30_000);
      });

      it("refuses every command without the generated password and with a wrong one", async () => {
        expect((await cli(["ping"])).stdout).to.match(/NOAUTH/);
        expect((await cli(["ping"], "wrong-password")).stdout + (await cli(["ping"], "wrong-password")).stderr).to.match(/WRONGPASS|invalid username-password/);
        expect((await cli(["ping"], password)).stdout.trim()).to.equal("PONG");
      });

      it(`runs with the configured maxmemory (${cfg.redis.settings.maxmemory}), eviction policy and persistence`, async () => {
        const get = async (key: string) => (await cli(["config", "get", key], password)).stdout.trim().split("\n")[1];
        expect(Number(await get("maxmemory"))).to.equal(redisBytes(cfg.redis.settings.maxmemory));
        expect(await get("maxmemory-policy")).to.equal(cfg.redis.settings.maxmemoryPolicy);
        expect(await get("appendonly")).to.equal(cfg.redis.settings.appendonly ? "yes" : "no");
        expect(await get("save")).to.equal("3600 1 300 100 60 10000");
        expect(await get("dir")).to.equal("/data");
      });
    });
  }

  describe("single-server backup and restore (dev with backups on)", () => {
    const ctx = useSandbox("redis-backup");
    const variant = { "redis.backup.enabled": true };
    const cfg = configOf("dev", { redis: { backup: { enabled: true } } });
    const retention = cfg.redis.backup.retention;
    let ev: Evaluation;
    let redis: RunningPod;
    let password: string;
    let original: string;
    const backupDir = () => path.join(ctx.sb.dir, "claims", "redis-backup");
    const dumps = () => fs.readdirSync(backupDir()).filter((f) => /^redis-.*\.rdb$/.test(f)).sort();
    const dataset = async (action: "fill" | "digest") => {
      const r = await redis.pod.exec(["/usr/bin/python3", path.join(CLIENTS, "redis_dataset.py"), action, "127.0.0.1", "6379"], { env: { REDISCLI_AUTH: password } });
      expect(r.code, r.stderr).to.equal(0);
      return r.stdout.trim();
    };

    before(async () => {
      ev = await renderReal({ stack: "dev", set: variant });
      password = secretData(ev, "redis-credentials").REDIS_PASSWORD;
      redis = await startPod(ctx.sb, ev, object(ev, "StatefulSet", "redis"), { skip: ["exporter"] });
      await waitReady(redis, "redis", 30_000);
      await dataset("fill");
      original = await dataset("digest");
      expect(original).to.match(/^db0=504 db1=1 db2=1 /);
    });

    it(`the backup job writes a complete snapshot and keeps the newest ${retention}`, async () => {
      // Older dumps from earlier nights (the names sort by time); the job must prune the oldest.
      fs.mkdirSync(backupDir(), { recursive: true });
      const old = Array.from({ length: retention + 2 }, (_, i) => `redis-2026010${Math.floor(i / 10)}T0${i % 10}0000Z.rdb`);
      for (const f of old) fs.writeFileSync(path.join(backupDir(), f), "old");
      const job = await runJob(ctx.sb, ev, object(ev, "CronJob", "redis-backup"), "redis-backup-1");
      expect(job.codes.backup, job.output).to.equal(0);
      const kept = dumps();
      expect(kept).to.have.length(retention);
      expect(kept.slice(0, -1)).to.deep.equal(old.slice(-(retention - 1)));
      const fresh = fs.readFileSync(path.join(backupDir(), kept[kept.length - 1]));
      expect(fresh.subarray(0, 5).toString()).to.equal("REDIS");
      expect(fs.readdirSync(backupDir()).filter((f) => f.endsWith(".partial"))).to.deep.equal([]);
    });

    it("a failed backup (wrong password) prunes nothing and leaves no partial file", async () => {
      const before = dumps();
      const job = await runJob(ctx.sb, ev, object(ev, "CronJob", "redis-backup"), "redis-backup-2", {
        adjust: (c) => ({ ...c, env: { ...c.env, REDISCLI_AUTH: "not-the-password" } }),
      });
      expect(job.codes.backup).to.not.equal(0);
      expect(dumps()).to.deep.equal(before);
      // The next run clears the partial file a failed run leaves behind.
      const next = await runJob(ctx.sb, ev, object(ev, "CronJob", "redis-backup"), "redis-backup-3");
      expect(next.codes.backup, next.output).to.equal(0);
      expect(fs.readdirSync(backupDir()).filter((f) => f.endsWith(".partial"))).to.deep.equal([]);
    });

    it("restores the snapshot into an empty volume with the documented procedure: same dataset", async () => {
      const latest = dumps().pop()!;
      // A new empty volume, as after losing the old one.
      const sts = object(ev, "StatefulSet", "redis");
      await redis.pod.kill();
      const claim = path.join(ctx.sb.dir, "claims", "data-redis-0");
      fs.rmSync(claim, { recursive: true, force: true });
      // docs/data.md: the snapshot goes into the data volume as dump.rdb, owned by the redis user.
      fs.mkdirSync(claim, { recursive: true });
      fs.copyFileSync(path.join(backupDir(), latest), path.join(claim, "dump.rdb"));
      fs.chownSync(path.join(claim, "dump.rdb"), 999, 1000);
      // First start with AOF off (an empty AOF would win over the snapshot), then AOF on at run time.
      const first = await startPod(ctx.sb, ev, sts, { pod: redis.pod, skip: ["exporter"], adjust: (c) => ({ ...c, argv: [...c.argv, "--appendonly", "no"] }) });
      await waitReady(first, "redis", 30_000);
      redis = first;
      expect(await dataset("digest")).to.equal(original);
      const on = await first.containers.redis.exec(["redis-cli", "--no-auth-warning", "config", "set", "appendonly", "yes"], { env: { REDISCLI_AUTH: password } });
      expect(on.stdout.trim(), on.stderr).to.equal("OK");
      await first.containers.redis.waitLog(/Background AOF rewrite finished successfully/, 30_000);
      // Then the rendered pod again (the StatefulSet as Pulumi manages it).
      await first.containers.redis.stop();
      redis = await startPod(ctx.sb, ev, sts, { pod: redis.pod, skip: ["exporter"] });
      await waitReady(redis, "redis", 30_000);
      expect(await dataset("digest")).to.equal(original);
    });
  });
});
