// Postgres from the rendered dev and prod stacks: the StatefulSet's pod (the image's entrypoint
// through its shim, the init script, the `-c` settings, the probes, the credential-sync sidecar),
// a password rotation applied by the sidecar after a restart on the same claim, the backup
// CronJob's retention, and the restore procedure of docs/data.md into a fresh database.
//
// Debian's PostgreSQL 15 stands in for the image's 16. Where that matters: the custom dump format
// is readable only by a pg_restore at least as new as the pg_dump that wrote it (the backup Job
// uses the store's own image, so both are 16 in the cluster and 15 here), and pg_dump since
// 15.14/16.10 writes `\restrict` lines with a random key into plain dumps (the image's 16.4 does
// not), which the schema comparison drops. Role, ownership and pg_settings behave alike.
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { serviceHost } from "../../components/lib/ports";
import { postgresTuning } from "../../config/data";
import { configOf } from "../harness";
import type { Evaluation, K8sObject } from "../harness";
import { useSandbox, versionOf } from "./lib/group";
import { configMapData, docJob, object, podTemplate, renderReal, runJob, secretData, startPod, waitReady } from "./lib/kube";
import type { RunningPod } from "./lib/kube";
import type { ExecResult, Pod } from "./lib/sandbox";

const CLIENTS = path.join(__dirname, "clients");
const DATASET = path.join(CLIENTS, "postgres_dataset.sql");
const DIGEST = path.join(CLIENTS, "postgres_digest.sql");

/** A setting as pg_settings reports it (value times unit) in bytes, or the plain number. */
function settingValue(setting: string, unit: string): number {
  const units: Record<string, number> = { "": 1, B: 1, kB: 1024, "8kB": 8192, MB: 2 ** 20 };
  if (!(unit in units)) throw new Error(`unit ${unit} not handled`);
  return Number(setting) * units[unit];
}

/** postgresTuning's values ("1048576kB", "200") in the same terms. */
function expectedValue(v: string): number {
  const m = /^(\d+)(kB)?$/.exec(v);
  if (!m) throw new Error(`unexpected tuning value ${v}`);
  return Number(m[1]) * (m[2] ? 1024 : 1);
}

/**
 * The single-pod Postgres: dev's default, and prod's settings with one replica (prod defaults to
 * Patroni, which the patroni groups run); everything else as each stack renders it.
 */
const SINGLE = { "postgres.replicas": 1 };

describe(`postgres: ${versionOf(configOf("dev").postgres.image)}`, () => {
  /** Each stack's render and pod start; both run side by side (below): a start is mostly initdb, in other processes. */
  const setups: (() => Promise<void>)[] = [];
  for (const stack of ["dev", "prod"] as const) {
    const ctx = useSandbox(`postgres-${stack}`);
    const cfg = configOf(stack, { postgres: { replicas: 1 } });
    const host = serviceHost("postgres", cfg.platform.namespace);
    let ev: Evaluation;
    let pg: RunningPod;
    let creds: Record<string, string>;
    /** An application pod's view: clients connect through the Service name, as the app does. */
    let client: Pod;

    const psql = (user: string, password: string, args: string[]): Promise<ExecResult> =>
      client.exec(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", host, "-U", user, "-d", creds.POSTGRES_DB, ...args], { env: { PGPASSWORD: password, PGCONNECT_TIMEOUT: "5" } });
    const asSuperuser = async (sql: string) => {
      const r = await psql(creds.POSTGRES_USER, creds.POSTGRES_PASSWORD, ["-c", sql]);
      expect(r.code, r.stderr).to.equal(0);
      return r.stdout.trim();
    };
    const asApp = async (args: string[]) => {
      const r = await psql(creds.APP_DB_USER, creds.APP_DB_PASSWORD, args);
      expect(r.code, r.stderr).to.equal(0);
      return r.stdout.trim();
    };
    const start = async (evaluation: Evaluation, pod?: Pod) => {
      pg = await startPod(ctx.sb, evaluation, object(evaluation, "StatefulSet", "postgres"), { pod, skip: ["exporter"] });
      await waitReady(pg, "postgres", 30_000);
    };

    /** The stack again after `secrets.rotate.postgres` is bumped (real mocks generate new passwords). */
    let rotation: Promise<Evaluation>;

    setups.push(async () => {
      ev = await renderReal({ stack, set: SINGLE });
      creds = secretData(ev, "postgres-credentials");
      client = ctx.sb.pod("client", { namespace: cfg.platform.namespace });
      const starting = start(ev);
      // Rendered while the volume initialises; awaited (and its failure reported) by the rotation test.
      rotation = renderReal({ stack, set: { ...SINGLE, "secrets.rotate.postgres": (cfg.secrets.rotate.postgres ?? 0) + 1 } });
      rotation.catch(() => undefined);
      await starting;
    });

    describe(`${stack} stack`, () => {
      it("initialises the volume through the image's entrypoint and its readiness probe passes", async () => {
        // The setup's waitReady ran the rendered probe; the entrypoint ran the ConfigMap's script.
        const scripts = Object.keys(configMapData(ev, "postgres-init"));
        expect(scripts).to.have.length.greaterThan(0);
        for (const s of scripts) expect(pg.containers.postgres.log).to.include(`running /docker-entrypoint-initdb.d/${s}`);
        expect(pg.containers.postgres.log).to.include("PostgreSQL init process complete; ready for start up.");
      });

      it(`the init script created the application role "${cfg.secrets.postgresUser}": not a superuser, owning database "${cfg.secrets.postgresDatabase}" and its public schema`, async () => {
        const user = cfg.secrets.postgresUser;
        const db = cfg.secrets.postgresDatabase;
        expect([creds.APP_DB_USER, creds.POSTGRES_DB]).to.deep.equal([user, db]);
        expect(await asSuperuser(`SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles WHERE rolname = '${user}'`)).to.equal("t|f|f|f|f");
        expect(await asSuperuser(`SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '${db}'`)).to.equal(user);
        expect(await asSuperuser("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'")).to.equal(user);
        // What the ownership is for: the application creates its own tables, and it is not root.
        expect(await asApp(["-c", "CREATE TABLE owner_probe (id int); DROP TABLE owner_probe; SELECT current_user"])).to.equal(user);
        const su = await psql(creds.APP_DB_USER, creds.APP_DB_PASSWORD, ["-c", "CREATE ROLE intruder SUPERUSER"]);
        expect(su.code).to.not.equal(0);
        // PostgreSQL 15 says "must be superuser to create superusers", 16 "permission denied to create role".
        expect(su.stderr).to.match(/must be superuser|permission denied/);
      });

      it(`runs with the rendered -c settings from postgresTuning (limit ${cfg.postgres.resources.limits.memory}, max_connections ${cfg.postgres.settings.maxConnections})`, async () => {
        const tuning = postgresTuning(cfg.postgres.resources.limits.memory, cfg.postgres.settings.maxConnections);
        const names = Object.keys(tuning);
        const rows = (await asSuperuser(`SELECT name, setting, coalesce(unit, ''), source FROM pg_settings WHERE name IN (${names.map((n) => `'${n}'`).join(", ")}) ORDER BY name`))
          .split("\n")
          .map((l) => l.split("|"));
        expect(rows.map((r) => r[0])).to.deep.equal([...names].sort());
        for (const [name, setting, unit, source] of rows) {
          expect(settingValue(setting, unit), name).to.equal(expectedValue(tuning[name]));
          // From the container's args, not a default that happens to match.
          expect(source, name).to.equal("command line");
        }
      });

      if (stack === "prod") {
        describe("backup and restore", () => {
          const retention = cfg.postgres.backup.retention;
          const backupDir = () => path.join(ctx.sb.dir, "claims", "postgres-backup");
          const dumps = () => fs.readdirSync(backupDir()).filter((f) => /^postgres-.*\.dump$/.test(f)).sort();
          const partials = () => fs.readdirSync(backupDir()).filter((f) => f.endsWith(".partial"));
          const cronJob = () => object(ev, "CronJob", "postgres-backup");
          const digest = () => asApp(["-f", DIGEST]);
          /** The schema as pg_dump prints it; `\restrict` lines carry a per-run random key (see the header). */
          const schema = async () => {
            const r = await client.exec(["pg_dump", "--schema-only", "-h", host, "-U", creds.APP_DB_USER, creds.POSTGRES_DB], { env: { PGPASSWORD: creds.APP_DB_PASSWORD } });
            expect(r.code, r.stderr).to.equal(0);
            return r.stdout.split("\n").filter((l) => !/^\\(un)?restrict /.test(l)).join("\n");
          };
          let original: string;
          let originalSchema: string;

          before(async () => {
            await asApp(["-f", DATASET]);
            original = await digest();
            originalSchema = await schema();
            // Every table the dataset creates is in the digest, each with rows.
            const tables = [...fs.readFileSync(DATASET, "utf8").matchAll(/^CREATE TABLE (\w+)/gm)].map((m) => m[1]).sort();
            const lines = original.split("\n").filter((l) => l.startsWith("table "));
            expect(lines.map((l) => l.split("|")[0].slice("table ".length))).to.deep.equal(tables);
            for (const l of lines) expect(Number(l.split("|")[1]), l).to.be.greaterThan(0);
            expect(original).to.match(/^sequence invoice_number_seq\|\d+\|t$/m);
            expect(originalSchema).to.match(/CREATE TABLE public\.order_items/).and.to.match(/REFERENCES public\.orders\(id\) ON DELETE CASCADE/);
            expect(originalSchema).to.match(/CREATE VIEW public\.customer_totals/).and.to.match(/CREATE INDEX orders_open_idx/);
          });

          it(`the backup job writes a complete dump as the application role and keeps the newest ${retention}`, async () => {
            // Dumps of earlier nights (the names sort by time): the job must prune the oldest.
            fs.mkdirSync(backupDir(), { recursive: true });
            const old = Array.from({ length: retention + 2 }, (_, i) => `postgres-202001${String(i + 1).padStart(2, "0")}T021500Z.dump`);
            for (const f of old) fs.writeFileSync(path.join(backupDir(), f), "old");
            const job = await runJob(ctx.sb, ev, cronJob(), "postgres-backup-1");
            expect(job.codes.backup, job.output).to.equal(0);
            const kept = dumps();
            expect(kept).to.have.length(retention);
            expect(kept.slice(0, -1)).to.deep.equal(old.slice(-(retention - 1)));
            expect(partials()).to.deep.equal([]);
            const list = await client.exec(["pg_restore", "--list", path.join(backupDir(), kept[kept.length - 1])]);
            expect(list.code, list.stderr).to.equal(0);
            expect(list.stdout).to.match(/TABLE DATA public order_items /);
            expect(list.stdout).to.match(/SEQUENCE SET public invoice_number_seq /);
          });

          it("a failed backup (wrong password) prunes nothing; the next run clears its partial file", async () => {
            const before = dumps();
            const job = await runJob(ctx.sb, ev, cronJob(), "postgres-backup-2", { adjust: (c) => ({ ...c, env: { ...c.env, PGPASSWORD: "not-the-password" } }) });
            expect(job.codes.backup).to.not.equal(0);
            expect(job.output).to.match(/password authentication failed/);
            expect(dumps()).to.deep.equal(before);
            const next = await runJob(ctx.sb, ev, cronJob(), "postgres-backup-3");
            expect(next.codes.backup, next.output).to.equal(0);
            expect(partials()).to.deep.equal([]);
            expect(dumps()).to.have.length(retention);
          });

          it("restores the newest dump into a fresh database with docs/data.md's postgres-restore Job (volume only, no object store): same rows, sequences and schema", async () => {
            // The volume is lost: a new empty claim, initialised again by the entrypoint and init script.
            await pg.pod.kill();
            fs.rmSync(path.join(ctx.sb.dir, "claims", "data-postgres-0"), { recursive: true, force: true });
            await start(ev, pg.pod);
            expect(await digest()).to.equal("");

            // The docs' jq program applied to the rendered CronJob, as `kubectl create job --from ... | jq` does.
            const job = docJob(ev, "data.md", "postgres-restore");
            expect(job.spec.template.spec.containers.map((c: K8sObject) => c.name)).to.deep.equal(["backup"]);
            const restore = await runJob(ctx.sb, ev, job, "postgres-restore");
            expect(restore.codes.backup, restore.output).to.equal(0);
            expect(await digest()).to.equal(original);
            expect(await schema()).to.equal(originalSchema);
          });
        });
      }

      describe("credential rotation", () => {
        it("after secrets.rotate.postgres, the restarted pod's credential-sync applies the new passwords: old refused, new accepted for both roles", async () => {
          const rotated = await rotation;
          const next = secretData(rotated, "postgres-credentials");
          expect(next.POSTGRES_PASSWORD).to.not.equal(creds.POSTGRES_PASSWORD);
          expect(next.APP_DB_PASSWORD).to.not.equal(creds.APP_DB_PASSWORD);
          // What rolls the pod in a cluster: the template changes with the credentials.
          const checksum = (e: Evaluation) => podTemplate(object(e, "StatefulSet", "postgres")).metadata.annotations["checksum/credentials"];
          expect(checksum(rotated)).to.not.equal(checksum(ev));

          // A rolling update: the old pod stops gracefully, the new one starts on the same claim.
          for (const c of Object.values(pg.containers)) await c.stop();
          const old = creds;
          await start(rotated, pg.pod);
          creds = next;
          // The data directory is initialised: no initdb, no init script; only the sidecar changes passwords.
          expect(pg.containers.postgres.log.join("\n")).to.not.match(/init process complete|running \/docker-entrypoint-initdb\.d/);
          await pg.containers["credential-sync"].waitLog(/role passwords match the Secret/, 30_000);
          for (const [user, before, now] of [
            [old.POSTGRES_USER, old.POSTGRES_PASSWORD, next.POSTGRES_PASSWORD],
            [old.APP_DB_USER, old.APP_DB_PASSWORD, next.APP_DB_PASSWORD],
          ]) {
            const refused = await psql(user, before, ["-c", "SELECT 1"]);
            expect(refused.code, `${user} with the old password`).to.not.equal(0);
            expect(refused.stderr).to.match(/password authentication failed/);
            const accepted = await psql(user, now, ["-c", "SELECT current_user"]);
            expect(accepted.code, `${user} with the new password: ${accepted.stderr}`).to.equal(0);
            expect(accepted.stdout.trim()).to.equal(user);
          }
        });
      });
    });
  }
  before(() => Promise.all(setups.map((setUp) => setUp())).then(() => undefined));
});
