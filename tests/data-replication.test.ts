// Replicated stores under mocks: Redis with Sentinel (pods, start script, Services, passwords,
// budgets, placement, edges) and MongoDB as a replica set (keyfile handling, --replSet, the
// replica-set sidecar). No MongoDB is packaged for the test machines, so the sidecar's rendered
// script runs here against a simulated set (a fake mongosh API): first boot, a member that joins,
// scaling up, a replaced member 0, secondaries, a mongod still initialising or unreachable.
import { expect } from "chai";
import * as vm from "vm";
import { MONGO_MAX_MEMBERS } from "../config/data";
import { selectorLabels } from "../components/lib/labels";
import { replsetScript } from "../components/data/mongo";
import { storeAffinity } from "../components/data/store";
import { envOf, sts } from "./data-helpers";
import { podSecurityViolations } from "./checks";
import { STACKS, configOf, evaluateStack, findObject, objectsOfKind, ok, container, podSpec } from "./harness";
import type { K8sObject } from "./harness";

describe("Redis replication with Sentinel", () => {
  for (const stack of STACKS) {
    const cfg = configOf(stack);
    const r = cfg.redis;
    const ns = cfg.platform.namespace;
    const members = Array.from({ length: r.replicas }, (_, i) => `redis-${i}.redis-headless.${ns}.svc.cluster.local`);

    if (!r.sentinel.enabled) {
      it(`${stack}: one server, no Sentinel, no budget or placement rule`, async () => {
        const ev = ok(await evaluateStack(stack));
        const set = sts(ev, "redis");
        expect(set.spec.replicas).to.equal(1);
        expect(set.spec.minReadySeconds).to.equal(undefined);
        expect(podSpec(set).containers.map((c: K8sObject) => c.name)).to.not.include("sentinel");
        expect(podSpec(set).affinity).to.equal(undefined);
        expect(objectsOfKind(ev, "PodDisruptionBudget").map((p) => p.metadata.name)).to.not.include("redis");
        expect(Object.keys(findObject(ev, "ConfigMap", "redis-config", ns).data)).to.deep.equal(["redis.conf"]);
      });
      continue;
    }

    describe(stack, () => {
      it(`runs ${r.replicas} members, each a server and a Sentinel started by the rendered start script`, async () => {
        const ev = ok(await evaluateStack(stack));
        const set = sts(ev, "redis");
        expect(set.spec.replicas).to.equal(r.replicas);
        // A restarted member's Sentinel learns the replicas from the master's INFO (every 10 s) before the next member stops.
        expect(set.spec.minReadySeconds).to.be.at.least(10);
        const pod = podSpec(set);
        expect(podSecurityViolations(pod, "restricted")).to.deep.equal([]);
        const server = container(set, "redis");
        const sentinel = container(set, "sentinel");
        expect(server.command).to.deep.equal(["sh", "/etc/redis/start.sh", "redis"]);
        expect(sentinel.command).to.deep.equal(["sh", "/etc/redis/start.sh", "sentinel"]);
        expect(sentinel.image).to.equal(r.image);
        expect(sentinel.resources).to.deep.equal(r.sentinel.resources);
        expect(sentinel.ports).to.deep.equal([{ name: "sentinel", containerPort: 26379, protocol: "TCP" }]);
        for (const c of [server, sentinel]) {
          const env = envOf(c);
          expect(env.SENTINEL_PASSWORD, c.name).to.deep.equal({ secret: "redis-credentials", key: "REDIS_SENTINEL_PASSWORD" });
          expect(env.REDIS_PASSWORD, c.name).to.deep.equal({ secret: "redis-credentials", key: "REDIS_PASSWORD" });
          expect(c.env.find((e: K8sObject) => e.name === "POD_NAME").valueFrom.fieldRef.fieldPath).to.equal("metadata.name");
        }
        // The Sentinel's probe authenticates with the Sentinel password.
        expect(envOf(sentinel).REDISCLI_AUTH).to.deep.equal({ secret: "redis-credentials", key: "REDIS_SENTINEL_PASSWORD" });
        expect(sentinel.readinessProbe.exec.command[2]).to.match(/redis-cli -h 127\.0\.0\.1 -p 26379 ping \| grep -q PONG/);
        // Both rewrite their configuration (CONFIG REWRITE, Sentinel's state) into in-memory volumes: passwords stay off disk.
        const vol = (n: string) => pod.volumes.find((v: K8sObject) => v.name === n);
        expect(vol("run").emptyDir.medium).to.equal("Memory");
        expect(vol("sentinel").emptyDir.medium).to.equal("Memory");
        expect(server.volumeMounts).to.deep.include({ name: "run", mountPath: "/run/redis" });
        expect(sentinel.volumeMounts).to.deep.include({ name: "sentinel", mountPath: "/run/sentinel" });
      });

      it("renders the members, quorum, timings and write guard from config into the start script and redis.conf", async () => {
        const ev = ok(await evaluateStack(stack));
        const data = findObject(ev, "ConfigMap", "redis-config", ns).data;
        const script: string = data["start.sh"];
        expect(script).to.include(`MEMBERS="${members.join(" ")}"`);
        expect(script).to.include(`FIRST="${members[0]}"`);
        expect(script).to.include(`SELF="\${POD_NAME}.redis-headless.${ns}.svc.cluster.local"`);
        expect(script).to.include(`MASTER_NAME="${r.sentinel.masterName}"`);
        expect(script).to.include(`sentinel monitor $MASTER_NAME $master 6379 ${r.sentinel.quorum}`);
        expect(script).to.include(`sentinel down-after-milliseconds $MASTER_NAME ${r.sentinel.downAfterMilliseconds}`);
        expect(script).to.include(`sentinel failover-timeout $MASTER_NAME ${r.sentinel.failoverTimeoutMilliseconds}`);
        // The master comes from the other members' Sentinels first, their servers' ROLE next, member 0 last.
        const order = ["sentinel_master \"$m\"", 'server_role "$m"', 'master="$FIRST"'].map((s) => script.indexOf(s));
        expect(order.every((x) => x > 0)).to.equal(true);
        expect([...order].sort((a, b) => a - b)).to.deep.equal(order);
        expect(script).to.include("replica-announce-ip $SELF");
        expect(data["sentinel.conf"].split("\n")).to.include.members(["sentinel resolve-hostnames yes", "sentinel announce-hostnames yes", "port 26379"]);
        const conf = data["redis.conf"].split("\n");
        expect(conf).to.include.members([`min-replicas-to-write ${r.settings.minReplicasToWrite}`, `min-replicas-max-lag ${r.settings.minReplicasMaxLag}`]);
        // No credential in the ConfigMap: passwords come from the Secret at start.
        expect(JSON.stringify(data)).to.not.match(/pw[0-9a-f]{10}/);
      });

      it("publishes the Sentinels on the headless and client Services; a disruption budget and anti-affinity keep a majority", async () => {
        const ev = ok(await evaluateStack(stack));
        const ports = (name: string) => findObject(ev, "Service", name, ns).spec.ports.map((p: K8sObject) => `${p.name}:${p.port}`);
        expect(ports("redis-headless")).to.deep.equal(["redis:6379", "sentinel:26379"]);
        expect(ports("redis")).to.include.members(["redis:6379", "sentinel:26379"]);
        const selector = selectorLabels(cfg, { name: "redis", component: "cache" });
        const pdb = findObject(ev, "PodDisruptionBudget", "redis", ns);
        expect(pdb.spec).to.deep.equal({ maxUnavailable: 1, selector: { matchLabels: selector }, unhealthyPodEvictionPolicy: "AlwaysAllow" });
        const affinity = podSpec(sts(ev, "redis")).affinity.podAntiAffinity;
        expect(r.antiAffinity).to.equal("required");
        expect(affinity.requiredDuringSchedulingIgnoredDuringExecution).to.deep.equal([{ labelSelector: { matchLabels: selector }, topologyKey: "kubernetes.io/hostname" }]);
        // Members replicate and gossip with each other: 6379 and 26379 between redis pods.
        const policy = findObject(ev, "NetworkPolicy", "allow-redis", ns);
        // Peers with the same ports share one selector (name In [...]): find the rule that admits redis pods.
        const names = (peer: K8sObject): string[] => [peer.podSelector?.matchLabels?.["app.kubernetes.io/name"], ...(peer.podSelector?.matchExpressions ?? []).flatMap((e: K8sObject) => (e.key === "app.kubernetes.io/name" ? e.values : []))].filter(Boolean);
        const fromRedis = policy.spec.ingress.find((rule: K8sObject) => names(rule.from[0]).includes("redis"));
        expect(fromRedis.ports.map((p: K8sObject) => p.port)).to.deep.equal([6379, 26379]);
      });

      it("backs up from a connected replica when there is one, else from the master", async () => {
        const ev = ok(await evaluateStack(stack));
        const script: string = container(findObject(ev, "CronJob", "redis-backup", ns), "backup").command[2];
        expect(script).to.include(`for m in ${members.join(" ")}; do`);
        expect(script).to.include('"slave "*" connected "*) source="$m"; break');
        expect(script).to.include('redis-cli -h "$source" -p 6379 --rdb "$OUT"');
      });
    });
  }

  it("preferred anti-affinity spreads without requiring a node per member", () => {
    const cfg = configOf("prod", { redis: { antiAffinity: "preferred" } });
    const sel = selectorLabels(cfg, { name: "redis", component: "cache" });
    const soft = storeAffinity(sel, 3, "preferred") as K8sObject;
    expect(soft.affinity.podAntiAffinity).to.have.property("preferredDuringSchedulingIgnoredDuringExecution");
    expect(soft.affinity.podAntiAffinity).to.not.have.property("requiredDuringSchedulingIgnoredDuringExecution");
    expect(storeAffinity(sel, 1, "required")).to.deep.equal({});
  });
});

describe("MongoDB replica set", () => {
  for (const stack of STACKS) {
    const cfg = configOf(stack);
    const m = cfg.mongo;
    const ns = cfg.platform.namespace;
    it(`${stack}: ${m.replicas} member(s) of ${m.settings.replicaSetName}, a keyfile copied to 0400 in memory, the replica-set sidecar`, async () => {
      const ev = ok(await evaluateStack(stack));
      const set = sts(ev, "mongo");
      expect(set.spec.replicas).to.equal(m.replicas);
      const pod = podSpec(set);
      expect(podSecurityViolations(pod, "restricted")).to.deep.equal([]);
      const mongo = container(set, "mongo");
      const arg = (flag: string) => mongo.args[mongo.args.indexOf(flag) + 1];
      expect(arg("--replSet")).to.equal(m.settings.replicaSetName);
      expect(arg("--keyFile")).to.equal("/etc/mongo-keyfile/keyfile");
      // Secret volume (0400, group-readable through fsGroup) -> an in-memory copy owned by mongodb, mode 0400.
      const [init] = pod.initContainers;
      expect(init.name).to.equal("keyfile");
      expect(init.command[2]).to.equal("cp /keyfile-secret/keyfile /etc/mongo-keyfile/keyfile && chmod 0400 /etc/mongo-keyfile/keyfile");
      const vol = (n: string) => pod.volumes.find((v: K8sObject) => v.name === n);
      expect(vol("keyfile-secret").secret).to.deep.include({ items: [{ key: "MONGO_KEYFILE", path: "keyfile" }], defaultMode: 0o400 });
      expect(vol("keyfile").emptyDir.medium).to.equal("Memory");
      expect(mongo.volumeMounts).to.deep.include({ name: "keyfile", mountPath: "/etc/mongo-keyfile", readOnly: true });
      const sidecar = container(set, "replset");
      expect(sidecar.command).to.deep.equal(["mongosh", "--nodb", "--quiet", "--norc", "/etc/mongo-replset/replset.js"]);
      expect(envOf(sidecar).MONGO_INITDB_ROOT_PASSWORD).to.deep.equal({ secret: "mongo-credentials", key: "MONGO_INITDB_ROOT_PASSWORD" });
      expect(findObject(ev, "ConfigMap", "mongo-replset", ns).data["replset.js"]).to.equal(replsetScript(cfg));
      const pdbs = objectsOfKind(ev, "PodDisruptionBudget").filter((p) => p.metadata.name === "mongo");
      expect(pdbs).to.have.length(m.replicas > 1 ? 1 : 0);
      expect(pod.affinity !== undefined).to.equal(m.replicas > 1);
      if (m.exporter.enabled) expect(container(set, "exporter").args).to.include.members(["--compatible-mode", "--collector.diagnosticdata", "--collector.replicasetstatus"]);
    });
  }
});

// ---- The replica-set sidecar's script against a simulated set (a fake of the mongosh API it uses).

interface FakeMember {
  up: boolean;
  /** "standalone" (first-boot initdb mongod), "uninitialized" (--replSet, no config), or in the set. */
  mode: "standalone" | "uninitialized" | "member";
  primary?: boolean;
  setName?: string;
  config?: { _id: string; version: number; members: { _id: number; host: string }[] };
}

class Stop extends Error {}

/** Runs the rendered script for `pod` for `iterations` loops against `members` (by host:port); returns the commands it sent and what it printed. */
function runSidecar(script: string, pod: string, members: Record<string, FakeMember>, opts: { iterations?: number; throwing?: boolean; password?: string } = {}) {
  const sent: { host: string; cmd: Record<string, unknown> }[] = [];
  const printed: string[] = [];
  let loops = 0;
  let open = 0;
  class Mongo {
    private host: string;
    private closed = false;
    close() {
      expect(this.closed, "closed twice").to.equal(false);
      this.closed = true;
      open--;
    }
    constructor(uri: string) {
      const m = /^mongodb:\/\/(?:([^:]+):([^@]+)@)?([^/]+)\//.exec(uri);
      if (!m) throw new Error(`bad uri ${uri}`);
      this.host = m[3] === "127.0.0.1:27017" ? local : m[3];
      const member = members[this.host];
      if (!member?.up) throw new Error(`connect ECONNREFUSED ${this.host}`);
      if (m[1] && decodeURIComponent(m[2]) !== (opts.password ?? "root-pw")) throw Object.assign(new Error("Authentication failed."), { code: 18 });
      expect(uri).to.include("directConnection=true");
      open++;
    }
    getDB(name: string) {
      expect(name).to.equal("admin");
      return { runCommand: (cmd: Record<string, unknown>) => this.run(cmd) };
    }
    private run(cmd: Record<string, unknown>) {
      sent.push({ host: this.host, cmd });
      const me = members[this.host];
      const fail = (code: number, errmsg: string) => {
        if (opts.throwing) throw Object.assign(new Error(errmsg), { code });
        return { ok: 0, code, errmsg };
      };
      if ("hello" in cmd) return { ok: 1, isWritablePrimary: !!me.primary, ...(me.mode === "member" ? { setName: me.setName } : {}) };
      if ("replSetGetStatus" in cmd) {
        if (me.mode === "standalone") return fail(76, "not running with --replSet");
        if (me.mode === "uninitialized") return fail(94, "no replset config has been received");
        return { ok: 1, myState: me.primary ? 1 : 2 };
      }
      if ("replSetGetConfig" in cmd) return { ok: 1, config: me.config };
      if ("replSetInitiate" in cmd) {
        const c = cmd.replSetInitiate as FakeMember["config"] & object;
        Object.assign(me, { mode: "member", primary: true, setName: c._id, config: { ...c, version: 1 } });
        return { ok: 1 };
      }
      if ("replSetReconfig" in cmd) {
        me.config = cmd.replSetReconfig as FakeMember["config"];
        return { ok: 1 };
      }
      return fail(59, `no such command ${Object.keys(cmd)[0]}`);
    }
  }
  const local = `${pod}.mongo-headless.app-ns.svc.cluster.local:27017`;
  const context = vm.createContext({
    Mongo,
    print: (s: string) => printed.push(s),
    sleep: () => {
      if (++loops >= (opts.iterations ?? 1)) throw new Stop("done");
    },
    process: { env: { POD_NAME: pod, MONGO_INITDB_ROOT_USERNAME: "root", MONGO_INITDB_ROOT_PASSWORD: "root-pw" } },
    encodeURIComponent,
  });
  expect(() => vm.runInContext(script, context)).to.throw(Stop);
  // Every connection a round opened is closed by its end.
  expect(open, "connections left open").to.equal(0);
  return { sent, printed, commands: sent.filter((s) => !("hello" in s.cmd) && !("replSetGetStatus" in s.cmd) && !("replSetGetConfig" in s.cmd)) };
}

describe("MongoDB replica-set sidecar script (run against a simulated set; no MongoDB here)", () => {
  const cfg = configOf("prod", { platform: { namespace: "app-ns" } });
  const script = replsetScript(cfg, 1);
  const host = (i: number) => `mongo-${i}.mongo-headless.app-ns.svc.cluster.local:27017`;
  const fresh = (n: number): Record<string, FakeMember> => Object.fromEntries(Array.from({ length: n }, (_, i) => [host(i), { up: true, mode: "uninitialized" as const }]));

  it(`knows every member a set may have (${MONGO_MAX_MEMBERS} ordinals), not the replica count: scaling needs no new pod template`, () => {
    for (let i = 0; i < MONGO_MAX_MEMBERS; i++) expect(script).to.include(host(i));
    expect(script).to.not.include(host(MONGO_MAX_MEMBERS));
    expect(replsetScript(configOf("prod", { platform: { namespace: "app-ns" }, mongo: { replicas: 5 } }), 1)).to.equal(script);
  });

  it("first boot: member 0 initiates the set with itself, then (as primary) adds one member per round", () => {
    const members = fresh(3);
    const { commands, printed } = runSidecar(script, "mongo-0", members, { iterations: 4 });
    expect(commands.map((c) => Object.keys(c.cmd)[0])).to.deep.equal(["replSetInitiate", "replSetReconfig", "replSetReconfig"]);
    expect(commands[0].cmd.replSetInitiate).to.deep.equal({ _id: cfg.mongo.settings.replicaSetName, members: [{ _id: 0, host: host(0) }] });
    expect(members[host(0)].config).to.deep.equal({
      _id: cfg.mongo.settings.replicaSetName,
      version: 3,
      members: [0, 1, 2].map((i) => ({ _id: i, host: host(i) })),
    });
    expect(printed).to.include(`initiated replica set ${cfg.mongo.settings.replicaSetName} with ${host(0)}`);
    expect(printed).to.include(`added ${host(2)} to ${cfg.mongo.settings.replicaSetName} as member 2`);
  });

  it("other members never initiate: they wait for the primary to add them", () => {
    const { commands, printed } = runSidecar(script, "mongo-1", fresh(3), { iterations: 3 });
    expect(commands).to.deep.equal([]);
    expect(printed[0]).to.match(/^wait: not in the set yet/);
  });

  it("a member 0 whose volume was replaced waits to be re-synced when another member is in a set (no second set)", () => {
    const members = fresh(3);
    members[host(1)] = { up: true, mode: "member", primary: true, setName: "rs0", config: { _id: "rs0", version: 3, members: [0, 1, 2].map((i) => ({ _id: i, host: host(i) })) } };
    const { commands, printed } = runSidecar(script, "mongo-0", members, { iterations: 2 });
    expect(commands).to.deep.equal([]);
    expect(printed[0]).to.equal(`wait: ${host(1)} belongs to replica set rs0: the primary re-adds this member`);
  });

  it("scaling up: the primary (any member) adds the new reachable members, unreachable ordinals are skipped", () => {
    const config = { _id: "rs0", version: 7, members: [0, 1, 2].map((i) => ({ _id: i, host: host(i) })) };
    const members: Record<string, FakeMember> = {
      [host(0)]: { up: true, mode: "member", setName: "rs0", config },
      [host(1)]: { up: true, mode: "member", primary: true, setName: "rs0", config },
      [host(2)]: { up: false, mode: "member", setName: "rs0", config },
      [host(3)]: { up: true, mode: "uninitialized" },
      [host(4)]: { up: true, mode: "uninitialized" },
    };
    const { commands } = runSidecar(script, "mongo-1", members, { iterations: 3 });
    expect(commands.map((c) => c.host)).to.deep.equal([host(1), host(1)]);
    expect(members[host(1)].config!.version).to.equal(9);
    expect(members[host(1)].config!.members.slice(3)).to.deep.equal([
      { _id: 3, host: host(3) },
      { _id: 4, host: host(4) },
    ]);
  });

  it("secondaries, a mongod still in its first-boot initialisation, a wrong password or no mongod at all: no command, the loop goes on", () => {
    const config = { _id: "rs0", version: 3, members: [0, 1].map((i) => ({ _id: i, host: host(i) })) };
    const secondary = runSidecar(script, "mongo-0", { [host(0)]: { up: true, mode: "member", setName: "rs0", config }, [host(2)]: { up: true, mode: "uninitialized" } }, { iterations: 2 });
    expect(secondary.commands).to.deep.equal([]);
    expect(secondary.printed).to.deep.equal(["ok: member, not the primary"]);
    const initdb = runSidecar(script, "mongo-0", { [host(0)]: { up: true, mode: "standalone" } }, { iterations: 2 });
    expect(initdb.commands).to.deep.equal([]);
    expect(initdb.printed[0]).to.match(/^wait: the local mongod runs without --replSet/);
    const auth = runSidecar(script, "mongo-0", fresh(1), { iterations: 2, password: "another" });
    expect(auth.commands).to.deep.equal([]);
    expect(auth.printed[0]).to.match(/^wait: the local mongod does not answer yet: Authentication failed/);
    const down = runSidecar(script, "mongo-0", { [host(0)]: { up: false, mode: "uninitialized" } }, { iterations: 3 });
    expect(down.sent).to.deep.equal([]);
    expect(down.printed).to.have.length(1);
  });

  it("works whether mongosh throws on a failed command or returns ok: 0 (legacy shell)", () => {
    for (const throwing of [true, false]) {
      const { commands } = runSidecar(script, "mongo-0", fresh(2), { iterations: 2, throwing });
      expect(commands.map((c) => Object.keys(c.cmd)[0]), String(throwing)).to.deep.equal(["replSetInitiate", "replSetReconfig"]);
    }
  });
});
