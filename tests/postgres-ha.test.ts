// Postgres by mode: the single pod in dev (as light as before), Patroni in staging and prod (the
// rendered patroni.yml, Services, the one API token and its Role, placement, network), and
// pgBackRest once an object store is set (archive, base backups, TLS, egress, alerts).
// Expectations come from the config (configOf) and the rules, never from the output.
import { expect } from "chai";
import { parse } from "yaml";
import { IMAGE_USERS, PATRONI_IMAGE, SINGLE_IMAGE } from "../config/postgres";
import { objectStoreAddress } from "../config/backups";
import { cronMaxGapSeconds } from "../config/cron";
import { inventory } from "../config/inventory";
import { alertGroups, backupCronJobs, baseBackupMaxAgeSeconds } from "../components/monitoring/rules";
import { PORTS, serviceHost } from "../components/lib/ports";
import type { Evaluation, K8sObject } from "./harness";
import { STACKS, configOf, container, evaluate, evaluateStack, findObject, generatedValues, isSecretAt, k8sObjects, objectsOfKind, ok, podSpec, recordOf } from "./harness";
import { envOf, probeCommand, sts } from "./data-helpers";
import { podSpecs } from "./checks";
import { objectChecks } from "./object-checks";
import { OBJECT_STORE, S3_SECRETS, ini, prodWithArchive } from "./postgres-helpers";
import type { Endpoint } from "./reachability";
import { allowed, diff, reachabilityMatrix } from "./reachability";

const patroniYml = (ev: Evaluation) => parse(findObject(ev, "ConfigMap", "postgres-patroni").data["patroni.yml"]);

const EXPECTED_MODE = { dev: "single", staging: "patroni", prod: "patroni" } as const;

describe("postgres: the mode follows the settings", () => {
  for (const stack of STACKS) {
    const cfg = configOf(stack);
    it(`${stack}: ${EXPECTED_MODE[stack]}, ${cfg.postgres.replicas} replica(s), synchronous ${cfg.postgres.synchronous}`, async () => {
      const ev = ok(await evaluateStack(stack));
      expect(cfg.postgres.mode).to.equal(EXPECTED_MODE[stack]);
      expect(cfg.postgres.synchronous).to.equal({ dev: "off", staging: "off", prod: "on" }[stack]);
      const set = sts(ev, "postgres");
      const patroni = cfg.postgres.mode === "patroni";
      expect(container(set, "postgres").image).to.equal(patroni ? PATRONI_IMAGE : SINGLE_IMAGE);
      expect(podSpec(set).securityContext.runAsUser).to.equal(IMAGE_USERS[patroni ? "patroni" : "single"].uid);
      expect(objectsOfKind(ev, "Role").map((r) => r.metadata.name)).to.deep.equal(patroni ? ["postgres-patroni"] : []);
      expect(objectsOfKind(ev, "PodDisruptionBudget").some((p) => p.metadata.name === "postgres")).to.equal(cfg.postgres.replicas > 1);
      const names = podSpec(set).containers.map((c: K8sObject) => c.name);
      if (patroni) expect(names).to.include("patroni-sync").and.not.include("credential-sync");
      else expect(names.filter((n: string) => n !== "exporter")).to.deep.equal(["postgres", "credential-sync"]);
    });
  }

  it("dev stays the light single pod: no Patroni, no token, no affinity, one replica, pg_isready probes", async () => {
    const ev = ok(await evaluateStack("dev"));
    const spec = podSpec(sts(ev, "postgres"));
    expect(spec.affinity).to.equal(undefined);
    expect(spec.volumes.some((v: K8sObject) => v.projected)).to.equal(false);
    expect(probeCommand(container(sts(ev, "postgres"), "postgres").readinessProbe)).to.match(/pg_isready/);
    expect(objectsOfKind(ev, "ConfigMap").map((c) => c.metadata.name)).to.include("postgres-init").and.not.include("postgres-patroni");
    expect(Object.keys(findObject(ev, "Secret", "postgres-credentials").stringData)).to.not.include("REPLICATION_PASSWORD");
  });

  it("an object store alone keeps dev's single light pod (it may be there for the other stores' copies)", async () => {
    const ev = ok(await evaluate({ stack: "dev", set: { "backups.objectStore": OBJECT_STORE }, secrets: S3_SECRETS }));
    const cfg = configOf(ev);
    expect([cfg.postgres.mode, cfg.postgres.replicas, cfg.postgres.archive.enabled]).to.deep.equal(["single", 1, false]);
  });

  it("a single replica still runs Patroni when WAL archiving needs pgBackRest (dev with an object store, archiving asked for)", async () => {
    const ev = ok(await evaluate({ stack: "dev", set: { "backups.objectStore": OBJECT_STORE, "postgres.archive.enabled": true, "cluster.apiServer": { cidrs: ["172.18.0.2/32"], ports: [6443] } }, secrets: S3_SECRETS }));
    const cfg = configOf(ev);
    expect([cfg.postgres.mode, cfg.postgres.replicas, cfg.postgres.archive.enabled, cfg.postgres.synchronous]).to.deep.equal(["patroni", 1, true, "off"]);
    expect(container(sts(ev, "postgres"), "postgres").command).to.deep.equal(["patroni", "/etc/patroni/patroni.yml"]);
    // One member: nothing to spread, no budget that would block every drain.
    expect(podSpec(sts(ev, "postgres")).affinity).to.equal(undefined);
    expect(objectsOfKind(ev, "PodDisruptionBudget").map((p) => p.metadata.name)).to.not.include("postgres");
    // No replica, no replication alert; the leader and the archive are still watched.
    const alerts = alertGroups(configOf(ev, { monitoring: { enabled: true }, postgres: { exporter: { enabled: true } } })).flatMap((g) => g.rules.map((r) => r.alert));
    expect(alerts).to.include.members(["PostgresNoLeader", "PostgresWalArchivingFailing", "PostgresBaseBackupTooOld"]);
    expect(alerts).to.not.include.members(["PostgresReplicationLagHigh"]);
    expect(alerts).to.not.include("PostgresReplicasMissing");
  });
});

for (const stack of ["staging", "prod"] as const) {
  describe(`postgres with Patroni: ${stack}`, () => {
    const cfg = configOf(stack);
    const pg = cfg.postgres;
    const ns = cfg.platform.namespace;

    it("every member runs Patroni with its name, addresses and credentials from the pod and the Secret", async () => {
      const ev = ok(await evaluateStack(stack));
      const c = container(sts(ev, "postgres"), "postgres");
      expect(c.command).to.deep.equal(["patroni", "/etc/patroni/patroni.yml"]);
      expect(c.ports.map((p: K8sObject) => [p.name, p.containerPort])).to.deep.equal([
        ["postgres", PORTS.postgres.sql],
        ["patroni", PORTS.postgres.patroni],
      ]);
      const env = envOf(c);
      const fields = Object.fromEntries(c.env.filter((e: K8sObject) => e.valueFrom?.fieldRef).map((e: K8sObject) => [e.name, e.valueFrom.fieldRef.fieldPath]));
      expect(fields).to.deep.equal({ PATRONI_NAME: "metadata.name", PATRONI_KUBERNETES_NAMESPACE: "metadata.namespace", POD_IP: "status.podIP" });
      expect(env.PATRONI_POSTGRESQL_CONNECT_ADDRESS).to.equal(`$(POD_IP):${PORTS.postgres.sql}`);
      expect(env.PATRONI_RESTAPI_CONNECT_ADDRESS).to.equal(`$(POD_IP):${PORTS.postgres.patroni}`);
      const secret = "postgres-credentials";
      for (const [name, key] of [
        ["PATRONI_SUPERUSER_USERNAME", "POSTGRES_USER"],
        ["PATRONI_SUPERUSER_PASSWORD", "POSTGRES_PASSWORD"],
        ["PATRONI_REPLICATION_USERNAME", "REPLICATION_USER"],
        ["PATRONI_REPLICATION_PASSWORD", "REPLICATION_PASSWORD"],
        ["PATRONI_RESTAPI_USERNAME", "PATRONI_API_USER"],
        ["PATRONI_RESTAPI_PASSWORD", "PATRONI_API_PASSWORD"],
        ["APP_DB_PASSWORD", "APP_DB_PASSWORD"],
      ]) {
        expect(env[name], name).to.deep.equal({ secret, key });
      }
      // Health from Patroni: ready as leader or running replica; alive while its loop runs.
      expect(c.readinessProbe.httpGet).to.deep.equal({ path: "/readiness", port: "patroni" });
      expect(c.livenessProbe.httpGet).to.deep.equal({ path: "/liveness", port: "patroni" });
      // The leader hands over before it stops, within the grace period.
      expect(c.lifecycle.preStop.exec.command).to.deep.equal(["python3", "/etc/patroni/pre-stop.py"]);
      expect(podSpec(sts(ev, "postgres")).terminationGracePeriodSeconds).to.be.at.least(60 + 30);
      const pre = findObject(ev, "ConfigMap", "postgres-patroni").data["pre-stop.py"];
      expect(pre).to.include('call("/switchover", {"leader": name})').and.include('("master", "primary")').and.include('os.environ.get("PATRONI_NAME")');
    });

    it(`patroni.yml: the Kubernetes API as DCS on the StatefulSet's own labels, the leader lock in the client Service's Endpoints, ttl ${pg.patroni.ttl} / loop_wait ${pg.patroni.loopWait} / retry_timeout ${pg.patroni.retryTimeout}, synchronous ${pg.synchronous}`, async () => {
      const ev = ok(await evaluateStack(stack));
      const yml = patroniYml(ev);
      const set = sts(ev, "postgres");
      expect(yml.scope).to.equal(findObject(ev, "Service", "postgres", ns).metadata.name);
      const k = yml.kubernetes;
      expect({ ...k.labels, [k.scope_label]: yml.scope }).to.deep.equal(set.spec.selector.matchLabels);
      expect(k).to.deep.include({ use_endpoints: true, role_label: "role", ports: [{ name: "postgres", port: PORTS.postgres.sql }] });
      const dcs = yml.bootstrap.dcs;
      expect(dcs).to.deep.include({ ttl: pg.patroni.ttl, loop_wait: pg.patroni.loopWait, retry_timeout: pg.patroni.retryTimeout, maximum_lag_on_failover: pg.patroni.maximumLagOnFailover });
      expect(dcs).to.deep.include({ synchronous_mode: pg.synchronous !== "off", synchronous_mode_strict: pg.synchronous === "strict", synchronous_node_count: 1 });
      expect(dcs.postgresql.parameters.max_connections).to.equal(pg.settings.maxConnections);
      expect(dcs.postgresql.use_pg_rewind).to.equal(true);
      // The sidecar applies the same settings to a running cluster.
      expect(JSON.parse(findObject(ev, "ConfigMap", "postgres-patroni").data["dynamic.json"])).to.deep.equal(dcs);
      // The data directory is on the data volume; the old single-pod directory (pgdata/) is not it.
      const dataMount = container(set, "postgres").volumeMounts.find((m: K8sObject) => m.name === "data").mountPath;
      expect(yml.postgresql.data_dir.startsWith(`${dataMount}/`)).to.equal(true);
      expect(yml.postgresql.data_dir).to.not.equal(`${dataMount}/pgdata`);
      // Only the pod's socket is trusted; every TCP connection needs a password.
      expect(yml.postgresql.pg_hba.filter((l: string) => / trust$/.test(l))).to.deep.equal(["local all all trust"]);
      expect(yml.postgresql.pg_hba.filter((l: string) => l.startsWith("host")).every((l: string) => l.endsWith("scram-sha-256"))).to.equal(true);
      expect(yml.bootstrap.post_bootstrap).to.equal("/etc/patroni/post-bootstrap.sh");
      // No generated credential anywhere in the ConfigMap.
      const text = JSON.stringify(findObject(ev, "ConfigMap", "postgres-patroni").data);
      for (const g of generatedValues(ev)) expect(text).to.not.include(g);
    });

    it("only the Postgres container holds an API token, and its Role grants endpoints and pods of its namespace, nothing more", async () => {
      const ev = ok(await evaluateStack(stack));
      const tokens: string[] = [];
      for (const { obj } of k8sObjects(ev)) {
        for (const { spec } of podSpecs(obj)) {
          expect(spec.automountServiceAccountToken, `${obj.kind} ${obj.metadata.name}`).to.equal(false);
          const volumes = (spec.volumes ?? []).filter((v: K8sObject) => (v.projected?.sources ?? []).some((s: K8sObject) => s.serviceAccountToken));
          for (const v of volumes) {
            for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
              if ((c.volumeMounts ?? []).some((m: K8sObject) => m.name === v.name)) tokens.push(`${obj.kind}/${obj.metadata.name}/${c.name}:${c.volumeMounts.find((m: K8sObject) => m.name === v.name).mountPath}`);
            }
          }
        }
      }
      expect(tokens).to.deep.equal(["StatefulSet/postgres/postgres:/var/run/secrets/kubernetes.io/serviceaccount"]);
      expect(objectsOfKind(ev, "ClusterRole").concat(objectsOfKind(ev, "ClusterRoleBinding"))).to.deep.equal([]);
      const role = findObject(ev, "Role", "postgres-patroni", ns);
      expect(role.rules).to.deep.equal([
        { apiGroups: [""], resources: ["endpoints"], verbs: ["get", "list", "watch", "create", "update", "patch"] },
        { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch", "update", "patch"] },
      ]);
      const binding = findObject(ev, "RoleBinding", "postgres-patroni", ns);
      expect(binding.roleRef).to.deep.equal({ apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "postgres-patroni" });
      expect(binding.subjects).to.deep.equal([{ kind: "ServiceAccount", name: podSpec(sts(ev, "postgres")).serviceAccountName, namespace: ns }]);
      expect(objectsOfKind(ev, "RoleBinding")).to.have.length(1);
    });

    it("Services: the leader (no selector: Patroni keeps its Endpoints) is what the apps use, the replicas by role, the config Endpoints' keeper", async () => {
      const ev = ok(await evaluateStack(stack));
      const selector = sts(ev, "postgres").spec.selector.matchLabels;
      const leader = findObject(ev, "Service", "postgres", ns);
      expect(leader.spec.selector).to.equal(undefined);
      expect(leader.spec.ports).to.deep.equal([{ name: "postgres", port: PORTS.postgres.sql, targetPort: PORTS.postgres.sql, protocol: "TCP" }]);
      // Patroni's Endpoints carry the port named like patroni.yml's kubernetes.ports: the Service's port name must match it.
      expect(patroniYml(ev).kubernetes.ports[0].name).to.equal(leader.spec.ports[0].name);
      const replicas = findObject(ev, "Service", "postgres-replicas", ns);
      expect(replicas.spec.selector).to.deep.equal({ ...selector, role: "replica" });
      expect(replicas.metadata.annotations["platform/runtime-labels"]).to.equal("role");
      const config = findObject(ev, "Service", "postgres-config", ns);
      expect(config.spec).to.deep.equal({ clusterIP: "None" });
      expect(findObject(ev, "Secret", "app-connections", ns).stringData.DB_HOST).to.equal(serviceHost(leader.metadata.name, ns));
    });

    it(`members are never two on a node, spread over zones (${stack === "prod" ? "required" : "preferred"}), and a drain takes one at a time`, async () => {
      const ev = ok(await evaluateStack(stack));
      const set = sts(ev, "postgres");
      const selector = set.spec.selector.matchLabels;
      const spec = podSpec(set);
      expect(spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution).to.deep.equal([{ labelSelector: { matchLabels: selector }, topologyKey: "kubernetes.io/hostname" }]);
      expect(spec.topologySpreadConstraints).to.deep.equal([
        { maxSkew: 1, topologyKey: "topology.kubernetes.io/zone", whenUnsatisfiable: stack === "prod" ? "DoNotSchedule" : "ScheduleAnyway", labelSelector: { matchLabels: selector } },
      ]);
      expect(findObject(ev, "PodDisruptionBudget", "postgres", ns).spec).to.deep.include({ maxUnavailable: 1, selector: { matchLabels: selector } });
      // Rolling update from the highest ordinal, in order (postgres-0, the bootstrap leader, last);
      // OrderedReady also keeps an existing single-pod StatefulSet's immutable policy (no replacement).
      expect(set.spec.updateStrategy).to.deep.equal({ type: "RollingUpdate" });
      expect(set.spec.podManagementPolicy).to.equal("OrderedReady");
    });

    it("network: members reach each other on 5432 and Patroni's port, the API server on the configured addresses; nobody else reaches the Patroni port", async () => {
      const ev = ok(await evaluateStack(stack));
      const policies = objectsOfKind(ev, "NetworkPolicy");
      const labels = sts(ev, "postgres").spec.template.metadata.labels;
      const member = (ip: string): Endpoint => ({ id: ip, namespace: ns, namespaceLabels: { "kubernetes.io/metadata.name": ns }, labels, ip, ports: [], managed: true });
      for (const port of [PORTS.postgres.sql, PORTS.postgres.patroni]) expect(allowed(policies, member("10.244.9.1"), member("10.244.9.2"), port, "TCP"), String(port)).to.equal(true);
      const api = cfg.cluster.apiServer!;
      const apiEndpoint: Endpoint = { id: "api", namespaceLabels: {}, labels: {}, ip: api.cidrs[0].split("/")[0], ports: [], managed: false };
      for (const port of api.ports) expect(allowed(policies, member("10.244.9.1"), apiEndpoint, port, "TCP"), `api ${port}`).to.equal(true);
      const { actual, expected } = reachabilityMatrix(ev);
      expect(diff(actual, expected)).to.deep.equal({ missing: [], extra: [] });
      expect(actual.filter((t) => t.endsWith(` ${PORTS.postgres.patroni}/TCP`))).to.deep.equal([]);
      // The API server is reached by Postgres only.
      expect(actual.filter((t) => t.includes("kube-apiserver")).every((t) => t.startsWith(`${ns}/postgres -> `))).to.equal(true);
      expect(actual.filter((t) => t.includes("kube-apiserver"))).to.have.length(api.cidrs.length * api.ports.length);
    });

    it("postgres-credentials: the replication role and the REST API user get their own generated passwords", async () => {
      const ev = ok(await evaluateStack(stack));
      const d = findObject(ev, "Secret", "postgres-credentials", ns).stringData;
      expect(d).to.include({ REPLICATION_USER: "replicator", PATRONI_API_USER: "patroni" });
      const passwords = [d.POSTGRES_PASSWORD, d.APP_DB_PASSWORD, d.REPLICATION_PASSWORD, d.PATRONI_API_PASSWORD];
      expect(new Set(passwords).size).to.equal(4);
      for (const p of passwords) expect(generatedValues(ev)).to.include(p);
      const rec = recordOf(ev, "Secret", "postgres-credentials");
      for (const key of ["REPLICATION_PASSWORD", "PATRONI_API_PASSWORD"]) expect(isSecretAt(rec, `stringData.${key}`), key).to.equal(true);
    });

    it("without an object store: no pgBackRest (WAL dropped), no base backup job, no object store Secret", async () => {
      const ev = ok(await evaluateStack(stack));
      expect(cfg.postgres.archive.enabled).to.equal(false);
      expect(patroniYml(ev).bootstrap.dcs.postgresql.parameters).to.include({ archive_mode: "on", archive_command: "/bin/true" });
      expect(objectsOfKind(ev, "CronJob").map((c) => c.metadata.name)).to.not.include("postgres-basebackup");
      expect(objectsOfKind(ev, "ConfigMap").map((c) => c.metadata.name)).to.not.include("postgres-pgbackrest");
      expect(objectsOfKind(ev, "Secret").map((c) => c.metadata.name)).to.not.include.members(["object-store-credentials", "postgres-pgbackrest-tls"]);
      expect(podSpec(sts(ev, "postgres")).containers.map((c: K8sObject) => c.name)).to.not.include("pgbackrest");
    });
  });
}

describe("postgres with Patroni: WAL archiving and base backups in the object store (prod + backups.objectStore)", () => {
  let ev: Evaluation;
  let cfg: ReturnType<typeof configOf>;
  before(async () => {
    ev = ok(await prodWithArchive());
    cfg = configOf(ev);
  });
  const ns = () => cfg.platform.namespace;
  const store = () => cfg.backups.objectStore!;

  it("pgbackrest.conf (members): the repository below <prefix>/postgres/, the store's endpoint, bucket, region, path style; the TLS server", () => {
    const conf = findObject(ev, "ConfigMap", "postgres-pgbackrest", ns()).data["member.conf"];
    const g = ini(conf, "global");
    const { host, port } = objectStoreAddress(store());
    expect(g).to.include({
      "repo1-type": "s3",
      "repo1-path": `/${store().prefix}/postgres`,
      "repo1-s3-endpoint": host,
      "repo1-storage-port": String(port),
      "repo1-s3-bucket": store().bucket,
      "repo1-s3-region": store().region,
      "repo1-s3-uri-style": store().pathStyle ? "path" : "host",
      "repo1-retention-full-type": cfg.postgres.archive.retention.type === "days" ? "time" : "count",
      "repo1-retention-full": String(cfg.postgres.archive.retention.full),
      "tls-server-port": String(PORTS.postgres.pgbackrest),
      "tls-server-auth": "pgbackrest-client=db",
    });
    // The key pair is never in the file: it comes from the object store's Secret.
    expect(conf).to.not.match(/s3-key|AKIA|secret-access/);
    expect(ini(conf, "db")["pg1-path"]).to.equal(patroniYml(ev).postgresql.data_dir);
  });

  it("archives every WAL segment from the primary and fetches from the archive for replicas; the key pair from object-store-credentials", () => {
    const yml = patroniYml(ev);
    expect(yml.bootstrap.dcs.postgresql.parameters).to.include({ archive_mode: "on", archive_command: 'pgbackrest --stanza=db archive-push "%p"', archive_timeout: cfg.postgres.archive.archiveTimeoutSeconds });
    expect(yml.postgresql.recovery_conf.restore_command).to.equal('pgbackrest --stanza=db archive-get %f "%p"');
    const secret = findObject(ev, "Secret", "object-store-credentials", ns());
    expect(secret.stringData).to.deep.equal({ ACCESS_KEY_ID: S3_SECRETS.objectStoreAccessKeyId, SECRET_ACCESS_KEY: S3_SECRETS.objectStoreSecretAccessKey });
    for (const key of ["ACCESS_KEY_ID", "SECRET_ACCESS_KEY"]) expect(isSecretAt(recordOf(ev, "Secret", "object-store-credentials"), `stringData.${key}`)).to.equal(true);
    const users = [...podSpec(sts(ev, "postgres")).containers, ...podSpec(findObject(ev, "CronJob", "postgres-basebackup", ns())).containers].filter((c: K8sObject) => c.name !== "exporter");
    expect(users.map((c: K8sObject) => c.name)).to.deep.equal(["postgres", "patroni-sync", "pgbackrest", "basebackup"]);
    for (const c of users) {
      expect(envOf(c).PGBACKREST_REPO1_S3_KEY, c.name).to.deep.equal({ secret: "object-store-credentials", key: "ACCESS_KEY_ID" });
      expect(envOf(c).PGBACKREST_REPO1_S3_KEY_SECRET, c.name).to.deep.equal({ secret: "object-store-credentials", key: "SECRET_ACCESS_KEY" });
    }
  });

  it("the base backup CronJob runs on the configured schedule and reaches every member's TLS server by its StatefulSet name", () => {
    const a = cfg.postgres.archive;
    const job = findObject(ev, "CronJob", "postgres-basebackup", ns());
    expect(job.spec).to.include({ schedule: a.schedule, timeZone: a.timeZone, concurrencyPolicy: "Forbid" });
    expect(job.spec.jobTemplate.spec.activeDeadlineSeconds).to.equal(a.activeDeadlineSeconds);
    const c = container(job, "basebackup");
    expect(c.image).to.equal(cfg.postgres.image);
    expect(c.command[2]).to.include(`--type=${a.type} backup`).and.include("stanza-create");
    const set = sts(ev, "postgres");
    const hosts = Array.from({ length: cfg.postgres.replicas }, (_, i) => `${set.metadata.name}-${i}.${set.spec.serviceName}.${ns()}.svc.cluster.local`);
    const repo = ini(findObject(ev, "ConfigMap", "postgres-pgbackrest", ns()).data["repo.conf"], "db");
    expect(hosts.map((_, i) => repo[`pg${i + 1}-host`])).to.deep.equal(hosts);
    expect(hosts.every((_, i) => repo[`pg${i + 1}-host-type`] === "tls" && repo[`pg${i + 1}-host-port`] === String(PORTS.postgres.pgbackrest))).to.equal(true);
    expect(repo[`pg${hosts.length + 1}-host`]).to.equal(undefined);
    // The server certificate names exactly those hosts; the client's CN is the one the members admit.
    const certs = ev.resources.filter((r) => r.type === "tls:index/selfSignedCert:SelfSignedCert" && r.name.startsWith("postgres-pgbackrest"));
    expect(certs.find((r) => r.name.includes("server"))!.inputs.dnsNames).to.deep.equal(hosts);
    expect(certs.find((r) => r.name.includes("client"))!.inputs.subject.commonName).to.equal("pgbackrest-client");
    const tls = findObject(ev, "Secret", "postgres-pgbackrest-tls", ns());
    expect(Object.keys(tls.stringData).sort()).to.deep.equal(["client.crt", "client.key", "server.crt", "server.key"]);
    // The job mounts the client key, never the server's; the members the server key, never the client's.
    const keysOf = (spec: K8sObject) => spec.volumes.find((v: K8sObject) => v.name === "pgbackrest-tls").secret.items.map((i: K8sObject) => i.key).sort();
    expect(keysOf(podSpec(job))).to.deep.equal(["client.crt", "client.key", "server.crt"]);
    expect(keysOf(podSpec(set))).to.deep.equal(["client.crt", "server.crt", "server.key"]);
  });

  it("network: the primary and the backup job reach the object store's addresses on its port; the job reaches the members' TLS servers; the graph is exact", () => {
    const { actual, expected } = reachabilityMatrix(ev);
    expect(diff(actual, expected)).to.deep.equal({ missing: [], extra: [] });
    const { port } = objectStoreAddress(store());
    const toStore = actual.filter((t) => t.endsWith(` ${port}/TCP`));
    // Postgres' own (WAL archive, base backups) and every dump copy, nothing else.
    const uploaders = [`${ns()}/postgres`, `${ns()}/postgres-basebackup`, ...backupCronJobs(cfg).map((j) => `${j === "mailbox-backup" ? cfg.platform.mailNamespace : ns()}/${j}`)];
    expect(toStore.sort()).to.deep.equal(uploaders.map((u) => `${u} -> cidr:object-store-203.0.113.7/32 ${port}/TCP`).sort());
    expect(actual.filter((t) => t.endsWith(` ${PORTS.postgres.pgbackrest}/TCP`))).to.deep.equal([`${ns()}/postgres-basebackup -> ${ns()}/postgres ${PORTS.postgres.pgbackrest}/TCP`]);
    expect(inventory(cfg).find((g) => g.name === "postgres-basebackup")).to.deep.include({ maxPods: 1, serviceAccount: "backup", volumes: 0 });
  });

  it("alerts on failing WAL archiving and on a base backup older than its schedule allows", () => {
    const alerts = alertGroups(cfg).flatMap((g) => g.rules);
    const base = alerts.find((a) => a.alert === "PostgresBaseBackupTooOld")!;
    const limit = cronMaxGapSeconds(cfg.postgres.archive.schedule) + cfg.postgres.archive.activeDeadlineSeconds + 3600;
    expect(baseBackupMaxAgeSeconds(cfg)).to.equal(limit);
    expect(base.expr).to.equal(`time() - kube_cronjob_status_last_successful_time{namespace="${ns()}",cronjob="postgres-basebackup"} > ${limit}`);
    expect(alerts.find((a) => a.alert === "PostgresWalArchivingFailing")!.expr).to.contain("pg_stat_archiver_failed_count").and.contain("unless");
    // The logical dumps keep their own alert, which no longer matches the base backup job.
    expect(alerts.find((a) => a.alert === "BackupTooOld")!.expr).to.contain(`cronjob=~"${backupCronJobs(cfg).join("|")}"`).and.not.contain("basebackup");
  });

  it("a change of the synchronous mode does not restart the members (patroni-sync applies it live); a change of memory does", async () => {
    const annotation = (e: Evaluation) => sts(e, "postgres").spec.template.metadata.annotations["checksum/config"];
    const strict = ok(await prodWithArchive({ "postgres.synchronous": "strict" }));
    expect(JSON.parse(findObject(strict, "ConfigMap", "postgres-patroni").data["dynamic.json"]).synchronous_mode_strict).to.equal(true);
    expect(annotation(strict)).to.equal(annotation(ev));
    const bigger = ok(await prodWithArchive({ "postgres.resources.limits.memory": "8Gi" }));
    expect(annotation(bigger)).to.not.equal(annotation(ev));
  });

  objectChecks("prod with WAL archiving", () => prodWithArchive());
});
