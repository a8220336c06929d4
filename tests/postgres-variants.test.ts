// Postgres variants: a restore (point-in-time) bootstrap, a managed database (postgres.external),
// the one-shot import of a dump (moving a single-pod stack), every refused contradiction with its
// key path, and the helpers they rest on (cron gaps, the YAML writer).
import { expect } from "chai";
import { parse } from "yaml";
import { cronMaxGapSeconds, parseCron } from "../config/cron";
import { toYaml } from "../components/lib/yaml";
import { rolloutTargets } from "../components/rollout";
import { smokeChecks } from "../components/smoke";
import { importScript } from "../components/data/backup";
import type { Evaluation, K8sObject } from "./harness";
import { configOf, container, evaluate, findObject, objectsOfKind, ok, podSpec, rejection } from "./harness";
import { envOf } from "./data-helpers";
import { objectChecks } from "./object-checks";
import { diff, reachabilityMatrix } from "./reachability";
import { OBJECT_STORE, S3_SECRETS, prodWithArchive } from "./postgres-helpers";

const TARGET = "2026-11-30T14:05:00Z";

describe("postgres.restore: a new cluster from the object store", () => {
  let ev: Evaluation;
  before(async () => {
    ev = ok(await prodWithArchive({ "postgres.restore": { targetTime: TARGET, sourcePrefix: "email-platform/prod-old" } }));
  });

  it("bootstraps with pgBackRest, replays WAL to the target time (as Postgres reads it) and promotes", () => {
    const yml = parse(findObject(ev, "ConfigMap", "postgres-patroni").data["patroni.yml"]);
    expect(yml.bootstrap.method).to.equal("pgbackrest");
    const b = yml.bootstrap.pgbackrest;
    expect(b).to.deep.include({ command: "python3 /etc/patroni/restore.py", no_params: true, keep_existing_recovery_conf: false });
    // Postgres refuses "Z" in recovery_target_time: the same instant as +00:00.
    expect(b.recovery_conf).to.deep.equal({
      restore_command: 'pgbackrest --stanza=db --repo1-path=/email-platform/prod-old/postgres archive-get %f "%p"',
      recovery_target_timeline: "latest",
      recovery_target_action: "promote",
      recovery_target_time: "2026-11-30T14:05:00+00:00",
    });
    expect(Date.parse(b.recovery_conf.recovery_target_time)).to.equal(Date.parse(TARGET));
    // The restored cluster archives into its own path, not into the source's.
    expect(yml.bootstrap.dcs.postgresql.parameters.archive_command).to.equal('pgbackrest --stanza=db archive-push "%p"');
    expect(yml.postgresql.recovery_conf.restore_command).to.equal('pgbackrest --stanza=db archive-get %f "%p"');
  });

  it("restore.py picks the newest backup that ends before the target, from the source path", () => {
    const script = findObject(ev, "ConfigMap", "postgres-patroni").data["restore.py"];
    expect(script).to.include(`TARGET = ${Date.parse(TARGET) / 1000}`);
    expect(script).to.include('STANZA = ["--stanza=db", "--repo1-path=/email-platform/prod-old/postgres"]');
    expect(script).to.include('"--type=none", "restore"');
  });

  it("without a target: to the end of the archive, from the stack's own path", async () => {
    const latest = ok(await prodWithArchive({ "postgres.restore": {} }));
    const yml = parse(findObject(latest, "ConfigMap", "postgres-patroni").data["patroni.yml"]);
    expect(yml.bootstrap.pgbackrest.recovery_conf).to.deep.equal({ restore_command: 'pgbackrest --stanza=db archive-get %f "%p"', recovery_target_timeline: "latest", recovery_target_action: "promote" });
    expect(findObject(latest, "ConfigMap", "postgres-patroni").data["restore.py"]).to.include("TARGET = None").and.include('STANZA = ["--stanza=db"]');
  });

  it("a restore with archiving off still reads the object store (Patroni mode, credentials, egress)", async () => {
    const noArchive = ok(await prodWithArchive({ "postgres.restore": {}, "postgres.archive.enabled": false }));
    const cfg = configOf(noArchive);
    expect([cfg.postgres.mode, cfg.postgres.archive.enabled]).to.deep.equal(["patroni", false]);
    expect(objectsOfKind(noArchive, "CronJob").map((c) => c.metadata.name)).to.not.include("postgres-basebackup");
    expect(envOf(container(findObject(noArchive, "StatefulSet", "postgres"), "postgres")).PGBACKREST_REPO1_S3_KEY).to.deep.equal({ secret: "object-store-credentials", key: "ACCESS_KEY_ID" });
    const { actual, expected } = reachabilityMatrix(noArchive);
    expect(diff(actual, expected)).to.deep.equal({ missing: [], extra: [] });
    // Postgres reads the archive; the dump jobs copy their files; no base backup job.
    expect(actual.filter((t) => t.endsWith(" 9000/TCP") && t.includes("postgres"))).to.deep.equal([`${cfg.platform.namespace}/postgres -> cidr:object-store-203.0.113.7/32 9000/TCP`, `${cfg.platform.namespace}/postgres-backup -> cidr:object-store-203.0.113.7/32 9000/TCP`]);
  });

  objectChecks("prod restoring to a point in time", () => prodWithArchive({ "postgres.restore": { targetTime: TARGET } }));
});

const EXTERNAL = { host: "db.example.net", database: "mail", user: "mailapp", cidrs: ["198.51.100.10/32", "198.51.100.11/32"] };
const externalEval = (set: Record<string, unknown> = {}) =>
  evaluate({ stack: "prod", set: { "postgres.external": EXTERNAL, ...set }, secrets: { postgresExternalPassword: "managed-db-password-0001" } });

describe("postgres.external: a managed database", () => {
  let ev: Evaluation;
  before(async () => {
    ev = ok(await externalEval());
  });

  it("runs no Postgres pod, Service, Role or exporter; keeps the pg_dump job; the rollout report skips it", () => {
    const cfg = configOf(ev);
    expect(cfg.postgres).to.deep.include({ mode: "external", replicas: 1, synchronous: "off" });
    expect(cfg.postgres.exporter.enabled).to.equal(false);
    expect(objectsOfKind(ev, "StatefulSet").map((s) => s.metadata.name)).to.not.include("postgres");
    expect(objectsOfKind(ev, "Service").map((s) => s.metadata.name).filter((n) => n.startsWith("postgres"))).to.deep.equal([]);
    expect(objectsOfKind(ev, "Role")).to.deep.equal([]);
    expect(objectsOfKind(ev, "ServiceMonitor").map((s) => s.metadata.name)).to.not.include("postgres");
    expect(rolloutTargets(cfg).map((t) => t.name)).to.not.include("postgres");
    const dump = container(findObject(ev, "CronJob", "postgres-backup"), "backup");
    expect(envOf(dump)).to.deep.include({ PGHOST: EXTERNAL.host, PGPORT: "5432", PGSSLMODE: "require" });
  });

  it("the apps' connection Secret and app-secrets point at it, over TLS, with the given password", () => {
    const d = findObject(ev, "Secret", "app-connections").stringData;
    expect(d.DATABASE_URL).to.equal(`postgresql://${EXTERNAL.user}:managed-db-password-0001@${EXTERNAL.host}:5432/${EXTERNAL.database}?sslmode=require`);
    expect(d).to.include({ DB_HOST: EXTERNAL.host, DB_PORT: "5432", DB_NAME: EXTERNAL.database });
    expect(findObject(ev, "Secret", "app-secrets").stringData).to.include({ DB_USER: EXTERNAL.user, DB_PASSWORD: "managed-db-password-0001" });
    expect(findObject(ev, "Secret", "postgres-credentials").stringData).to.deep.equal({ POSTGRES_DB: EXTERNAL.database, APP_DB_USER: EXTERNAL.user, APP_DB_PASSWORD: "managed-db-password-0001" });
    expect(ev.outputs.dataStores).to.deep.include({ postgres: `${EXTERNAL.host}:5432` });
  });

  it("the smoke check and the egress follow it: its addresses on its port, from the apps, workers, dump job and smoke test only", () => {
    const cfg = configOf(ev);
    const check = smokeChecks(cfg).find((c) => c.name === "postgres")!;
    expect(check.container!.env).to.include({ PGHOST: EXTERNAL.host, PGPORT: "5432", PGSSLMODE: "require" });
    const { actual, expected } = reachabilityMatrix(ev);
    expect(diff(actual, expected)).to.deep.equal({ missing: [], extra: [] });
    const ns = cfg.platform.namespace;
    const toDb = actual.filter((t) => / -> cidr:postgres-external-/.test(t) && t.startsWith(`${ns}/`)).sort();
    const from = [...new Set(toDb.map((t) => t.split(" ")[0]))].sort();
    expect(from).to.deep.equal([`${ns}/api`, `${ns}/postgres-backup`, `${ns}/smoke-${/smoke-([0-9a-f]+)/.exec(JSON.stringify(ev.outputs.smokeTest))![1]}`, `${ns}/worker-default`].sort());
    expect(toDb.every((t) => t.endsWith(" 5432/TCP"))).to.equal(true);
    // Nothing else of the platform reaches those addresses (the mail tier's internet egress is on mail ports only).
    expect(actual.filter((t) => / -> cidr:postgres-external-/.test(t) && !t.startsWith(`${ns}/`)).every((t) => / (25|465|587)\/TCP$/.test(t))).to.equal(true);
    expect(new Set(toDb.map((t) => t.split(" ")[2])).size).to.equal(EXTERNAL.cidrs.length);
  });

  it("a non-default port and sslmode reach the URL, the smoke check and the egress", async () => {
    const custom = ok(await externalEval({ "postgres.external": { ...EXTERNAL, port: 6432, sslmode: "verify-full" } }));
    expect(findObject(custom, "Secret", "app-connections").stringData.DATABASE_URL).to.match(/@db\.example\.net:6432\/mail\?sslmode=verify-full$/);
    const policy = findObject(custom, "NetworkPolicy", "allow-api");
    const rule = policy.spec.egress.find((r: K8sObject) => r.to.some((p: K8sObject) => p.ipBlock?.cidr === EXTERNAL.cidrs[0]));
    expect(rule.ports).to.deep.equal([{ port: 6432, protocol: "TCP" }]);
  });

  objectChecks("prod with an external Postgres", () => externalEval());
});

describe("postgres.import: moving a single-pod stack to the replicated one", () => {
  let ev: Evaluation;
  before(async () => {
    ev = ok(await evaluate({ stack: "prod", set: { "postgres.import": { dump: "latest" } } }));
  });

  it("a Job restores the newest dump from the backup volume into the new leader, as the application role", () => {
    const job = objectsOfKind(ev, "Job").find((j) => j.metadata.name.startsWith("postgres-import-"))!;
    expect(job.metadata.name).to.match(/^postgres-import-[0-9a-f]{8}$/);
    const spec = podSpec(job);
    const vol = spec.volumes.find((v: K8sObject) => v.persistentVolumeClaim);
    expect(vol.persistentVolumeClaim).to.deep.equal({ claimName: "postgres-backup", readOnly: true });
    const c = container(job, "import");
    expect(envOf(c)).to.deep.include({ PGHOST: "postgres", PGUSER: { secret: "postgres-credentials", key: "APP_DB_USER" } });
    expect(c.command[2]).to.equal(importScript("latest"));
    expect(spec.automountServiceAccountToken).to.equal(false);
    const { actual, expected } = reachabilityMatrix(ev);
    expect(diff(actual, expected)).to.deep.equal({ missing: [], extra: [] });
    expect(actual).to.include(`${configOf(ev).platform.namespace}/${job.metadata.name} -> ${configOf(ev).platform.namespace}/postgres 5432/TCP`);
  });

  it("imports only into an empty database, in one transaction, and a named dump is a new Job", async () => {
    const s = importScript("postgres-20261130T021500Z.dump");
    expect(s).to.include('FILE="/backup/postgres-20261130T021500Z.dump"').and.include("--single-transaction").and.include('[ "$n" = 0 ]');
    const named = ok(await evaluate({ stack: "prod", set: { "postgres.import": { dump: "postgres-20261130T021500Z.dump" } } }));
    const name = (e: Evaluation) => objectsOfKind(e, "Job").find((j) => j.metadata.name.startsWith("postgres-import-"))!.metadata.name;
    expect(name(named)).to.not.equal(name(ev));
  });
});

describe("postgres: refused contradictions, each naming its key path, nothing registered", () => {
  const apiServer = { "cluster.apiServer": { cidrs: ["172.18.0.2/32"] } };
  const cases: [string, string, Record<string, unknown>, RegExp, Record<string, string>?][] = [
    ["dev", "synchronous with one replica", { "postgres.synchronous": "on" }, /postgres\.synchronous: must be "off" while postgres\.replicas is 1 \(a synchronous commit needs a standby to confirm it; set replicas >= 2\), got "on"/],
    ["prod", "strict synchronous with one replica", { "postgres.replicas": 1, "postgres.synchronous": "strict" }, /postgres\.synchronous: must be "off" while postgres\.replicas is 1/],
    ["prod", "WAL archiving without an object store", { "postgres.archive.enabled": true }, /postgres\.archive\.enabled: requires backups\.objectStore .*, got true/],
    ["prod", "a restore without an object store", { "postgres.restore": { targetTime: TARGET } }, /postgres\.restore: requires backups\.objectStore/],
    ["prod", "a restore time without a zone", { "backups.objectStore": OBJECT_STORE, "postgres.restore": { targetTime: "2026-11-30 14:05" } }, /postgres\.restore\.targetTime: must be an ISO 8601 time with its zone/, S3_SECRETS],
    ["prod", "a restore time that is no date", { "backups.objectStore": OBJECT_STORE, "postgres.restore": { targetTime: "2026-13-45T99:00:00Z" } }, /postgres\.restore\.targetTime: must be a real date and time/, S3_SECRETS],
    ["prod", "an import without the dump job", { "postgres.import": { dump: "latest" }, "postgres.backup.enabled": false }, /postgres\.import: requires postgres\.backup\.enabled/],
    ["prod", "an import and a restore", { "backups.objectStore": OBJECT_STORE, "postgres.import": { dump: "latest" }, "postgres.restore": {} }, /postgres\.import: must not be combined with postgres\.restore/, S3_SECRETS],
    ["prod", "an import of a file the job never writes", { "postgres.import": { dump: "../etc/passwd" } }, /postgres\.import\.dump: must be latest or a dump file name/],
    ["prod", "replicas with an external database", { "postgres.external": EXTERNAL, "postgres.replicas": 3 }, /postgres\.replicas: must not be set with postgres\.external/, { postgresExternalPassword: "x" }],
    ["prod", "synchronous with an external database", { "postgres.external": EXTERNAL, "postgres.synchronous": "on" }, /postgres\.synchronous: must not be set with postgres\.external/, { postgresExternalPassword: "x" }],
    ["prod", "archiving with an external database", { "postgres.external": EXTERNAL, "postgres.archive.enabled": true, "backups.objectStore": OBJECT_STORE }, /postgres\.archive\.enabled: must not be set with postgres\.external/, { postgresExternalPassword: "x", ...S3_SECRETS }],
    ["prod", "an exporter with an external database", { "postgres.external": EXTERNAL, "postgres.exporter.enabled": true }, /postgres\.exporter\.enabled: must not be set with postgres\.external/, { postgresExternalPassword: "x" }],
    ["prod", "an external database without addresses", { "postgres.external": { ...EXTERNAL, cidrs: [] } }, /postgres\.external\.cidrs: must list the database's addresses/, { postgresExternalPassword: "x" }],
    ["prod", "an external database in plain text", { "postgres.external": { ...EXTERNAL, sslmode: "disable" } }, /postgres\.external\.sslmode: .*require/, { postgresExternalPassword: "x" }],
    ["prod", "an external database without its password", { "postgres.external": EXTERNAL }, /postgresExternalPassword: is a required secret \(asked for by postgres\.external\.passwordSecret\)/],
    ["dev", "Patroni without the API server's addresses", { "postgres.replicas": 2 }, /cluster\.apiServer: is required while Postgres runs Patroni/],
    ["prod", "Patroni on the official image", { "postgres.image": "postgres:16.4-alpine" }, /postgres\.image: must be an image with Patroni and pgBackRest/],
    ["prod", "a Patroni ttl too short for its retries", { "postgres.patroni.ttl": 20 }, /postgres\.patroni\.ttl: must be >= loopWait \+ 2 x retryTimeout \(30\)/],
    ["prod", "a retention of no backup", { "postgres.archive.retention": { type: "count", full: 0 } }, /postgres\.archive\.retention\.full: must be >= 1/],
    ["prod", "a base backup schedule that is no cron", { "postgres.archive.schedule": "nightly" }, /postgres\.archive\.schedule: must be a cron schedule/],
    ["prod", "more replicas than supported", { "postgres.replicas": 9 }, /postgres\.replicas: .*7/],
    ["prod", "an unknown synchronous mode", { "postgres.synchronous": "sometimes" }, /postgres\.synchronous: .*"off".*"on".*"strict"/],
    ["prod", "API server addresses that are no CIDR", { "cluster.apiServer": { cidrs: ["kubernetes.default"] } }, /cluster\.apiServer\.cidrs\.0: must be a CIDR/],
  ];
  for (const [stack, what, set, message, secrets] of cases) {
    it(`rejects ${what} (${stack})`, async () => {
      expect(await rejection({ stack, set: { ...(stack === "dev" && !("cluster.apiServer" in set) && what !== "Patroni without the API server's addresses" ? apiServer : {}), ...set }, secrets })).to.match(message);
    });
  }

  it("accepts true/false for synchronous, and Patroni in dev once the API server is named", async () => {
    const cfg = configOf("dev", { postgres: { replicas: 2, synchronous: true }, cluster: { apiServer: { cidrs: ["172.18.0.2/32"] } } });
    expect([cfg.postgres.mode, cfg.postgres.synchronous]).to.deep.equal(["patroni", "on"]);
    expect(cfg.cluster.apiServer!.ports).to.deep.equal([443, 6443]);
    expect(configOf("prod", { postgres: { synchronous: false } }).postgres.synchronous).to.equal("off");
  });
});

describe("helpers: cron gaps and the YAML writer", () => {
  it("finds the longest gap of a schedule (daily, weekly, monthly, weekdays, lists, names)", () => {
    const h = 3600;
    expect(cronMaxGapSeconds("15 2 * * *")).to.equal(24 * h);
    expect(cronMaxGapSeconds("@weekly")).to.equal(7 * 24 * h);
    expect(cronMaxGapSeconds("0 */6 * * *")).to.equal(6 * h);
    expect(cronMaxGapSeconds("30 2 * * MON-FRI")).to.equal(3 * 24 * h);
    expect(cronMaxGapSeconds("0 3 1 * *")).to.equal(31 * 24 * h);
    expect(cronMaxGapSeconds("0 1,13 * * *")).to.equal(12 * h);
    // Day of month or day of week, as cron reads both restricted.
    expect(cronMaxGapSeconds("0 0 1 * 0")).to.be.at.most(7 * 24 * h);
    for (const bad of ["nightly", "61 * * * *", "* * * *", "0 0 31-1 * *", "0 0 * * FUNDAY"]) expect(parseCron(bad), bad).to.equal(undefined);
  });

  it("writes YAML that PyYAML-style readers cannot misread: every string quoted, reserved keys quoted", () => {
    const doc = { mode: "off", on: "yes", n: "0123", list: [{ checkpoint: "fast" }, "data-checksums"], empty: {}, none: [], flag: true, num: 30, multi: "a\nb" };
    const text = toYaml(doc, "header");
    expect(text.split("\n")[0]).to.equal("# header");
    expect(text).to.include('mode: "off"').and.include('"on": "yes"').and.include('"n": "0123"');
    expect(parse(text)).to.deep.equal(doc);
  });
});
