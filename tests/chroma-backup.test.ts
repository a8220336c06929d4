// ChromaDB's backup and restore, run for real with python3: the rendered scripts against an
// in-memory stand-in of the chromadb 0.6 client API (tests/chroma-standin/chromadb, on PYTHONPATH),
// not a real Chroma, which is packaged neither here nor on PyPI's reach. A populated stand-in
// server is exported, the file restored into an empty one, and both must hold the same
// collections, metadata and records (several pages' worth, and an empty collection). Then the
// pipeline as deployed: the rendered CronJob's backup container (backup.ts's script around the
// export) and docs/data.md's chroma-restore Job (its jq program applied to that CronJob).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import { expect } from "chai";
import { CHROMA_BACKUP_SCRIPTS, CHROMA_PAGE } from "../components/data/chroma-scripts";
import { storeStack } from "./data-helpers";
import { docJobs, jobFromCronJob } from "./docjobs";
import type { Evaluation, K8sObject } from "./harness";
import { ROOT, evaluate, findObject, ok, podSpec } from "./harness";
import { requireTools } from "./tools";

const STANDIN = path.join(ROOT, "tests", "chroma-standin");
const ADDRESS = { host: "chroma", port: "8000" };
const TOKEN = "standin-token-0123456789abcdefghij";
/** Records in populated(): more than two export pages of "samples", and three "notes". */
const TOTAL = 2 * CHROMA_PAGE + 120;

interface StandinRecord {
  id: string;
  embedding: number[];
  document: string | null;
  metadata: Record<string, string | number | boolean> | null;
}
interface StandinCollection {
  name: string;
  id: string;
  metadata: Record<string, string | number | boolean> | null;
  records: StandinRecord[];
}
interface StandinState {
  collections: StandinCollection[];
  log?: Record<string, unknown>[];
}

/** A server with more records than several export pages, documents and metadata sometimes absent, and an empty collection. */
function populated(): StandinState {
  const records = (prefix: string, n: number, dim: number): StandinRecord[] =>
    Array.from({ length: n }, (_, i) => ({
      id: `${prefix}-${i}`,
      embedding: Array.from({ length: dim }, (_, d) => Math.round(Math.sin(i * 7 + d) * 1e6) / 1e6),
      document: i % 5 === 0 ? null : `${prefix} document ${i} — naïve ✓`,
      metadata: i % 3 === 0 ? null : { n: i, ratio: i / 8, tag: `t${i % 4}`, even: i % 2 === 0 },
    }));
  return {
    collections: [
      { name: "samples", id: "c1", metadata: { "hnsw:space": "cosine", owner: "backend" }, records: records("s", 2 * CHROMA_PAGE + 117, 8) },
      { name: "empty", id: "c2", metadata: null, records: [] },
      { name: "notes", id: "c3", metadata: { kind: "notes" }, records: records("n", 3, 4) },
    ],
  };
}

/** What must survive: names, metadata and records in order (ids, embeddings, documents, metadatas). */
function content(state: StandinState) {
  return state.collections.map((c) => ({ name: c.name, metadata: c.metadata, records: c.records }));
}

function readState(file: string): StandinState {
  return JSON.parse(fs.readFileSync(file, "utf8"));
}

function readBackup(file: string): Record<string, unknown>[] {
  return zlib
    .gunzipSync(fs.readFileSync(file))
    .toString("utf8")
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l));
}

describe("chroma backup and restore scripts (python3, against a stand-in of the chromadb client)", () => {
  let dir: string;
  const standinEnv = (state: string, extra: Record<string, string> = {}) => ({
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    PYTHONPATH: STANDIN,
    PYTHONDONTWRITEBYTECODE: "1",
    CHROMA_HOST: ADDRESS.host,
    CHROMA_PORT: ADDRESS.port,
    CHROMA_AUTH_TOKEN: TOKEN,
    CHROMA_STANDIN_ADDRESS: `${ADDRESS.host}:${ADDRESS.port}`,
    CHROMA_STANDIN_TOKEN: TOKEN,
    CHROMA_STANDIN_STATE: state,
    CHROMA_STANDIN_MAX_BATCH: "200",
    ...extra,
  });
  const py = (script: string, args: string[], env: Record<string, string>) => spawnSync("python3", [path.join(dir, "scripts", script), ...args], { env, encoding: "utf8" });
  const server = (name: string, state?: StandinState) => {
    const file = path.join(dir, `${name}.json`);
    if (state) fs.writeFileSync(file, JSON.stringify(state));
    return file;
  };

  before(function () {
    requireTools("python3");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "chroma-backup-"));
    fs.mkdirSync(path.join(dir, "scripts"));
    for (const [name, text] of Object.entries(CHROMA_BACKUP_SCRIPTS)) fs.writeFileSync(path.join(dir, "scripts", name), text);
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("exports every collection page by page, and a restore into an empty server gives back the same collections and records", () => {
    const source = server("source", populated());
    const file = path.join(dir, "full.jsonl.gz");
    const exported = py("chroma_export.py", [file], standinEnv(source));
    expect(exported.stderr).to.equal("");
    expect(exported.status).to.equal(0);
    expect(exported.stdout).to.equal(`chroma export: 3 collections, ${TOTAL} records into ${file}\n`);
    // Read in pages of CHROMA_PAGE: two full pages and the rest of "samples", one short page each for the others.
    const reads = (readState(source).log ?? []).filter((l) => "get" in l);
    expect(reads).to.deep.equal([
      { get: "samples", limit: CHROMA_PAGE, offset: 0 },
      { get: "samples", limit: CHROMA_PAGE, offset: CHROMA_PAGE },
      { get: "samples", limit: CHROMA_PAGE, offset: 2 * CHROMA_PAGE },
      { get: "empty", limit: CHROMA_PAGE, offset: 0 },
      { get: "notes", limit: CHROMA_PAGE, offset: 0 },
    ]);

    const target = server("target", { collections: [] });
    const restored = py("chroma_restore.py", [file], standinEnv(target));
    expect(restored.stderr).to.equal("");
    expect(restored.status).to.equal(0);
    expect(restored.stdout).to.equal(`chroma restore: 3 collections, ${TOTAL} records from ${file}\n`);
    expect(content(readState(target))).to.deep.equal(content(populated()));
    // Added in batches the server accepts (CHROMA_STANDIN_MAX_BATCH 200 is below the scripts' 500).
    const adds = (readState(target).log ?? []).filter((l) => "add" in l).map((l) => l.records as number);
    expect(Math.max(...adds)).to.equal(200);
    expect(adds.reduce((a, b) => a + b, 0)).to.equal(TOTAL);
  });

  it("writes gzip JSON lines: a header, each collection with its records and count, and an end marker", () => {
    const file = path.join(dir, "layout.jsonl.gz");
    expect(py("chroma_export.py", ["--page", "2", file], standinEnv(server("layout", { collections: populated().collections.slice(1) }))).status).to.equal(0);
    const lines = readBackup(file);
    expect(lines[0]).to.deep.equal({ kind: "header", format: "app-platform/chroma-backup", version: 1, chroma: "0.6.3", tenant: "default_tenant", database: "default_database" });
    expect(lines.slice(1).map((l) => [l.kind, l.name ?? l.collection, (l.ids as string[] | undefined)?.length ?? l.count])).to.deep.equal([
      ["collection", "empty", undefined],
      ["collection_end", "empty", 0],
      ["collection", "notes", undefined],
      ["records", "notes", 2],
      ["records", "notes", 1],
      ["collection_end", "notes", 3],
      ["end", undefined, undefined],
    ]);
    expect(lines[lines.length - 1]).to.deep.equal({ kind: "end", collections: 2, records: 3 });
    // Embeddings as plain numbers (the client's numpy array converted), the absent values as null.
    expect(lines[4]).to.deep.include({ ids: ["n-0", "n-1"], documents: [null, "n document 1 — naïve ✓"], metadatas: [null, { n: 1, ratio: 0.125, tag: "t1", even: false }] });
    expect((lines[4].embeddings as number[][])[1]).to.deep.equal(populated().collections[2].records[1].embedding);
  });

  it("refuses to overwrite existing collections unless --drop, which replaces them", () => {
    const file = path.join(dir, "again.jsonl.gz");
    expect(py("chroma_export.py", [file], standinEnv(server("again-source", populated()))).status).to.equal(0);
    const changed: StandinState = { collections: [{ name: "notes", id: "x", metadata: { kind: "newer" }, records: [{ id: "other", embedding: [1, 2, 3, 4], document: "kept?", metadata: null }] }] };
    const target = server("again-target", changed);
    const refused = py("chroma_restore.py", [file], standinEnv(target));
    expect(refused.status).to.equal(1);
    expect(refused.stderr.trim()).to.equal("collections already exist: notes; rerun with --drop to replace them");
    expect(content(readState(target))).to.deep.equal(content(changed));
    const dropped = py("chroma_restore.py", ["--drop", file], standinEnv(target));
    expect(dropped.status, dropped.stderr).to.equal(0);
    expect(content(readState(target)).sort((a, b) => a.name.localeCompare(b.name))).to.deep.equal(content(populated()).sort((a, b) => a.name.localeCompare(b.name)));
  });

  it("refuses an incomplete file (no end marker) before changing anything", () => {
    const file = path.join(dir, "cut.jsonl.gz");
    expect(py("chroma_export.py", [file], standinEnv(server("cut-source", populated()))).status).to.equal(0);
    const lines = zlib.gunzipSync(fs.readFileSync(file)).toString("utf8").trimEnd().split("\n");
    fs.writeFileSync(file, zlib.gzipSync(lines.slice(0, -1).join("\n") + "\n"));
    const target = server("cut-target", { collections: [] });
    const r = py("chroma_restore.py", [file], standinEnv(target));
    expect(r.status).to.equal(1);
    expect(r.stderr.trim()).to.equal(`${file} has no end marker: the backup is incomplete; nothing restored`);
    expect(readState(target)).to.deep.equal({ collections: [] }); // untouched: the file is checked before the server is contacted
  });

  it("fails without the server's token or at another address, and writes no complete file", () => {
    const source = server("auth", populated());
    const cases = [
      ["a wrong token", { CHROMA_AUTH_TOKEN: "not-the-token" }],
      ["another host", { CHROMA_HOST: "elsewhere" }],
    ] as const;
    for (const [i, [what, env]] of cases.entries()) {
      const file = path.join(dir, `auth-${i}.jsonl.gz`);
      const r = py("chroma_export.py", [file], standinEnv(source, env));
      expect(r.status, what).to.not.equal(0);
      expect(r.stderr, what).to.match(what === "a wrong token" ? /AuthorizationError: Unauthorized/ : /ConnectionError: Could not connect/);
      expect(fs.existsSync(file), what).to.equal(false);
    }
  });
});

/**
 * Runs one rendered container locally, the way the kubelet would with its volumes: each mount path
 * in its command and env is replaced by a directory here (ConfigMaps written out, the claim and
 * scratch volumes empty directories that persist per name), env from literal values and the
 * rendered Secrets. `swap` replaces env values that point into the image (the chromadb package).
 */
function runContainer(ev: Evaluation, pod: K8sObject, c: K8sObject, root: string, extraEnv: Record<string, string>, swap: Record<string, string>) {
  const volumes = new Map<string, string>();
  for (const m of c.volumeMounts ?? []) {
    const v = pod.volumes.find((x: K8sObject) => x.name === m.name);
    const local = path.join(root, "volumes", v.persistentVolumeClaim ? `claim-${v.persistentVolumeClaim.claimName}` : v.configMap ? `configmap-${v.configMap.name}` : `scratch-${m.name}`);
    if (!fs.existsSync(local)) {
      fs.mkdirSync(local, { recursive: true });
      if (v.configMap) for (const [k, text] of Object.entries(findObject(ev, "ConfigMap", v.configMap.name).data as Record<string, string>)) fs.writeFileSync(path.join(local, k), text);
    }
    volumes.set(m.mountPath, local);
  }
  // One pass, longest mount path first: a replaced path is never rewritten again.
  const paths = [...volumes.keys()].sort((a, b) => b.length - a.length).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(paths.join("|"), "g");
  const local = (s: string) => (paths.length ? s.replace(pattern, (m) => volumes.get(m)!) : s);
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
  for (const e of c.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    env[e.name] = ref ? findObject(ev, "Secret", ref.name).stringData[ref.key] : local(e.value);
    if (swap[e.name] !== undefined) env[e.name] = swap[e.name];
  }
  const [cmd, ...args] = [...(c.command ?? []), ...(c.args ?? [])].map(local);
  return { result: spawnSync(cmd, args, { env: { ...env, ...extraEnv }, encoding: "utf8", cwd: root }), volumes };
}

describe("chroma backup as deployed: the CronJob's backup container, then docs/data.md's restore Job", () => {
  let root: string;
  let ev: Evaluation;
  before(async function () {
    requireTools("python3", "jq");
    root = fs.mkdtempSync(path.join(os.tmpdir(), "chroma-job-"));
    ev = ok(await storeStack("staging", "chroma").load());
  });
  after(() => {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it("the CronJob writes a timestamped export, and the docs' chroma-restore Job restores the newest into an empty server", () => {
    const cron = findObject(ev, "CronJob", "chroma-backup");
    const pod = podSpec(cron);
    const backup = pod.containers.find((x: K8sObject) => x.name === "backup");
    const image = { PYTHONPATH: STANDIN };
    expect(backup.env.find((e: K8sObject) => e.name === "PYTHONPATH").value).to.equal("/chroma"); // the image's chromadb, replaced by the stand-in here
    const source = path.join(root, "source.json");
    fs.writeFileSync(source, JSON.stringify(populated()));
    const token = findObject(ev, "Secret", "chroma-credentials").stringData.CHROMA_SERVER_AUTHN_CREDENTIALS;
    // The stand-in server answers where the rendered env points (the chroma Service, port 8000) and only to the rendered token.
    const serverEnv = (state: string) => ({ CHROMA_STANDIN_ADDRESS: "chroma:8000", CHROMA_STANDIN_TOKEN: token, CHROMA_STANDIN_STATE: state });

    const { result, volumes } = runContainer(ev, pod, backup, root, serverEnv(source), image);
    expect(result.status, result.stderr).to.equal(0);
    const file = String.raw`chroma-\d{8}T\d{6}Z\.jsonl\.gz`;
    expect(result.stdout).to.match(new RegExp(String.raw`^chroma export: 3 collections, ${TOTAL} records into .*/${file}\.partial\nbackup written: .*/${file}; kept: 1\n$`));
    const files = fs.readdirSync(volumes.get("/backup")!);
    expect(files).to.have.length(1);
    expect(files[0]).to.match(/^chroma-\d{8}T\d{6}Z\.jsonl\.gz$/);

    const restore = docJobs("data.md").get("chroma-restore");
    expect(restore, "docs/data.md has a chroma-restore Job").to.not.equal(undefined);
    expect(restore!.cronJob).to.equal("chroma-backup");
    const job = jobFromCronJob(cron, "chroma-restore", restore!.program);
    const jobPod = job.spec.template.spec;
    expect(jobPod.containers).to.have.length(1);
    const target = path.join(root, "target.json");
    fs.writeFileSync(target, JSON.stringify({ collections: [] }));
    const restored = runContainer(ev, jobPod, jobPod.containers[0], root, serverEnv(target), image).result;
    expect(restored.status, restored.stderr).to.equal(0);
    expect(restored.stdout).to.match(new RegExp(String.raw`^chroma restore: 3 collections, ${TOTAL} records from .*/${file}\n$`));
    expect(content(readState(target))).to.deep.equal(content(populated()));
  });

  it("with an object store, the docs' chroma-fetch Job downloads the newest copy and chroma-restore still takes the export container", async () => {
    const store = { endpoint: "https://minio.example.com:9000", bucket: "platform-backups", prefix: "email-platform/staging", cidrs: ["203.0.113.7/32"], pathStyle: true, region: "eu-west-1" };
    const offsite = ok(
      await evaluate({ stack: "staging", set: { "chroma.enabled": true, "backups.objectStore": store }, secrets: { objectStoreAccessKeyId: "AKID", objectStoreSecretAccessKey: "secret" } }),
    );
    const cron = findObject(offsite, "CronJob", "chroma-backup");
    expect(podSpec(cron).initContainers.map((c: K8sObject) => c.name)).to.deep.equal(["backup"]);
    const jobs = docJobs("data.md");
    const fetch = jobFromCronJob(cron, "chroma-fetch", jobs.get("chroma-fetch")!.program).spec.template.spec;
    expect(fetch.initContainers).to.equal(undefined);
    expect(fetch.containers.map((c: K8sObject) => [c.name, c.args])).to.deep.equal([["upload", ["fetch", "latest"]]]);
    const restore = jobFromCronJob(cron, "chroma-restore", jobs.get("chroma-restore")!.program).spec.template.spec;
    expect(restore.initContainers).to.equal(undefined);
    expect(restore.containers).to.have.length(1);
    expect(restore.containers[0].name).to.equal("backup");
    expect(restore.containers[0].command.join(" ")).to.include("/opt/chroma-backup/chroma_restore.py");
  });
});
