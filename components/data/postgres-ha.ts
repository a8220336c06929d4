// The Patroni mode of Postgres: replication and automatic failover inside the StatefulSet, run by
// Patroni with the Kubernetes API as its DCS, never by scripts of ours. What this file adds to the
// shared store skeleton (components/data/store.ts):
// - Services: `postgres` (no selector: Patroni writes the leader's address into its Endpoints, which
//   are also the leader lock), `postgres-replicas` (members Patroni labels role=replica),
//   `postgres-config` (keeps Patroni's config Endpoints from being garbage-collected; created here
//   so Patroni needs no right on Services);
// - the only API token of the platform, for the Postgres container alone, and a Role limited to
//   what Patroni uses: Endpoints (leader lock, config, sync state) and Pods (its members' labels)
//   of its own namespace;
// - pgBackRest: WAL archiving from the primary, a TLS server in every member, and the base backup
//   CronJob that reaches them with a client certificate (components/data/pgbackrest.ts);
// - the patroni-sync sidecar and the leader's hand-over before it stops (components/data/patroni.ts).
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { bytes, formatBytes } from "../../config/quantity";
import type { ObjectStoreConfig } from "../../config/backups";
import { connectObjectStore, OBJECT_STORE_KEYS } from "../lib/objectstore";
import { instanceName, labels } from "../lib/labels";
import { checksum, httpProbe, restrictedContainer, restrictedPod, scratchVolume, secretEnv, startupProbe, tcpProbe } from "../lib/pod";
import { PORTS, serviceHost } from "../lib/ports";
import type { SecretRef } from "../secrets";
import type { StoreComponentArgs } from "./common";
import { postgresExporter, requireKeys } from "./common";
import {
  CREDENTIALS_DIR,
  PATRONI_DATA_DIR,
  PATRONI_DATA_MOUNT,
  PATRONI_DIR,
  PATRONI_YML,
  PRE_STOP_PY,
  ROLE_LABEL,
  SCOPE,
  SCRIPT_FILES,
  SERVICE_ACCOUNT_DIR,
  SOCKET_DIR,
  dynamicConfig,
  localConfig,
  patroniYml,
  postBootstrapScript,
  restoreScript,
  syncScript,
} from "./patroni";
import type { PatroniContext } from "./patroni";
import { PGBACKREST_CLIENT_CN, PGBACKREST_CONFIG_DIR, PGBACKREST_TLS_DIR, TLS_FILES, baseBackupScript, memberConf, repoHostConf } from "./pgbackrest";
import { createStore, scratch } from "./store";
import type { StoreObjects } from "./store";
import { scheduled } from "../lib/scheduling";

type EnvVar = k8s.types.input.core.v1.EnvVar;

/** Keys of postgres-credentials the Patroni mode reads. */
export const PATRONI_CREDENTIAL_KEYS = [
  "POSTGRES_USER",
  "POSTGRES_PASSWORD",
  "POSTGRES_DB",
  "APP_DB_USER",
  "APP_DB_PASSWORD",
  "REPLICATION_USER",
  "REPLICATION_PASSWORD",
  "PATRONI_API_USER",
  "PATRONI_API_PASSWORD",
];

export const PATRONI_ROLE = "postgres-patroni";
export const REPLICAS_SERVICE = "postgres-replicas";
export const CONFIG_SERVICE = `${SCOPE}-config`;
export const BASE_BACKUP = "postgres-basebackup";
export const PGBACKREST_TLS_SECRET = "postgres-pgbackrest-tls";
/** Annotation naming pod labels a Service selects on that the pods get at run time (Patroni's role). */
export const RUNTIME_LABELS = "platform/runtime-labels";

/**
 * What Patroni may do with its token, and nothing more: the leader lock, the config and the sync
 * state are Endpoints annotations (use_endpoints), and each member labels its own Pod with its role.
 * No delete: only `patronictl remove` deletes Patroni's Endpoints, an operator's action.
 */
export const PATRONI_RULES = [
  { apiGroups: [""], resources: ["endpoints"], verbs: ["get", "list", "watch", "create", "update", "patch"] },
  { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch", "update", "patch"] },
];

/** Member host names the backup job connects to (the headless Service's per-pod names). */
export function memberHosts(replicas: number, namespace: string): string[] {
  return Array.from({ length: replicas }, (_, i) => serviceHost(`${SCOPE}-${i}.${SCOPE}-headless`, namespace));
}

const field = (name: string, fieldPath: string): EnvVar => ({ name, valueFrom: { fieldRef: { fieldPath } } });

export function createPatroniCluster(parent: pulumi.Resource, args: StoreComponentArgs & { objectStoreCredentials?: SecretRef }): StoreObjects {
  const cfg = args.config;
  const pg = cfg.postgres;
  const ns = args.namespace;
  const secret = args.credentials.name;
  requireKeys(args.credentials, PATRONI_CREDENTIAL_KEYS);
  const objLabels = labels(cfg, { name: "postgres", component: "database" });
  const child = { parent };

  // The object store, when something uses it: archiving and base backups, or the restore source.
  const store: ObjectStoreConfig | undefined = pg.archive.enabled || pg.restore ? cfg.backups.objectStore : undefined;
  if ((pg.archive.enabled || pg.restore) && !store) throw new Error("postgres: archiving or restore without backups.objectStore (config validation should have refused this)");
  const s3 = args.objectStoreCredentials;
  if (store && !s3) throw new Error("postgres: the object store's credentials Secret was not created");
  const s3Env: EnvVar[] =
    store && s3 ? [secretEnv("PGBACKREST_REPO1_S3_KEY", s3.name, OBJECT_STORE_KEYS.accessKeyId), secretEnv("PGBACKREST_REPO1_S3_KEY_SECRET", s3.name, OBJECT_STORE_KEYS.secretAccessKey)] : [];

  const ctx: PatroniContext = {
    pg,
    store,
    // Patroni finds its members by these labels plus scope_label=scope: the StatefulSet's selector.
    instanceLabels: { "app.kubernetes.io/instance": instanceName(cfg) },
    scopeLabel: "app.kubernetes.io/name",
  };
  const paths = { dataDir: PATRONI_DATA_DIR, socketDir: SOCKET_DIR };
  const scripts = {
    [SCRIPT_FILES.postBootstrap]: postBootstrapScript(ctx),
    [SCRIPT_FILES.restore]: restoreScript(ctx),
    [SCRIPT_FILES.preStop]: PRE_STOP_PY,
    [SCRIPT_FILES.sync]: syncScript(ctx),
  };
  const patroniConfig = new k8s.core.v1.ConfigMap(
    "postgres-patroni",
    { metadata: { name: "postgres-patroni", namespace: ns, labels: objLabels }, data: { "patroni.yml": patroniYml(ctx), "dynamic.json": JSON.stringify(dynamicConfig(ctx), null, 2) + "\n", ...scripts } },
    child,
  );
  const pgbackrestConfig = store
    ? new k8s.core.v1.ConfigMap(
        "postgres-pgbackrest",
        {
          metadata: { name: "postgres-pgbackrest", namespace: ns, labels: objLabels },
          data: { "member.conf": memberConf(pg, store, paths), "repo.conf": repoHostConf(pg, store, paths, memberHosts(pg.replicas, cfg.platform.namespace)) },
        },
        child,
      )
    : undefined;

  // Patroni's token: a Role in the namespace, bound to the postgres ServiceAccount only.
  const role = new k8s.rbac.v1.Role(PATRONI_ROLE, { metadata: { name: PATRONI_ROLE, namespace: ns, labels: objLabels }, rules: PATRONI_RULES }, child);
  new k8s.rbac.v1.RoleBinding(
    PATRONI_ROLE,
    {
      metadata: { name: PATRONI_ROLE, namespace: ns, labels: objLabels },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata.name },
      subjects: [{ kind: "ServiceAccount", name: args.serviceAccount("postgres"), namespace: ns }],
    },
    child,
  );

  // pgBackRest's mutual TLS: a self-signed certificate each side, each the other's only authority.
  const tlsSecret = pg.archive.enabled ? pgbackrestTls(parent, cfg.platform.namespace, ns, pg.replicas, objLabels) : undefined;

  const run = scratch("run", SOCKET_DIR, "16Mi");
  const tmp = scratch("tmp", "/tmp", "256Mi");
  const shmSize = formatBytes(Math.max(64 * 2 ** 20, Math.floor(bytes(pg.resources.limits.memory) / 8)));
  const configMount = { name: "patroni", mountPath: PATRONI_DIR, readOnly: true };
  const pgbackrestMount = { name: "pgbackrest", mountPath: PGBACKREST_CONFIG_DIR, readOnly: true };
  const tokenMount = { name: "kube-api-access", mountPath: SERVICE_ACCOUNT_DIR, readOnly: true };
  const api: EnvVar[] = [secretEnv("PATRONI_RESTAPI_USERNAME", secret, "PATRONI_API_USER"), secretEnv("PATRONI_RESTAPI_PASSWORD", secret, "PATRONI_API_PASSWORD")];
  const home: EnvVar[] = [
    { name: "HOME", value: "/tmp" },
    { name: "PYTHONDONTWRITEBYTECODE", value: "1" },
  ];
  const patroniProbe = (path: string, t: { periodSeconds: number; failureThreshold?: number }) => httpProbe(path, "patroni", { timeoutSeconds: 5, ...t });
  const liveness = patroniProbe("/liveness", { periodSeconds: 10, failureThreshold: 6 });

  const sidecars: k8s.types.input.core.v1.Container[] = [
    {
      name: "patroni-sync",
      image: pg.image,
      command: ["python3", `${PATRONI_DIR}/${SCRIPT_FILES.sync}`],
      env: [...home, ...api, ...s3Env],
      resources: pg.patroni.syncResources,
      securityContext: restrictedContainer({ readOnlyRootFilesystem: true }),
      volumeMounts: [
        configMount,
        run.mount,
        tmp.mount,
        // The Secret as files: the kubelet refreshes them, so a rotation reaches the running leader.
        { name: "credentials", mountPath: CREDENTIALS_DIR, readOnly: true },
        ...(store ? [pgbackrestMount, { name: "data", mountPath: PATRONI_DATA_MOUNT, readOnly: true }] : []),
      ],
    },
  ];
  if (pg.archive.enabled) {
    sidecars.push({
      name: "pgbackrest",
      image: pg.image,
      command: ["pgbackrest", "server"],
      ports: [{ name: "pgbackrest", containerPort: PORTS.postgres.pgbackrest, protocol: "TCP" }],
      // The member's configuration names the repository, and pgBackRest validates it on this side too.
      env: [...home, ...s3Env],
      resources: pg.archive.serverResources,
      securityContext: restrictedContainer({ readOnlyRootFilesystem: true }),
      readinessProbe: tcpProbe("pgbackrest", { periodSeconds: 10 }),
      livenessProbe: tcpProbe("pgbackrest", { periodSeconds: 20, failureThreshold: 6 }),
      volumeMounts: [
        // The backup reads the data directory and asks Postgres over the socket; it writes nothing here.
        { name: "data", mountPath: PATRONI_DATA_MOUNT, readOnly: true },
        run.mount,
        tmp.mount,
        pgbackrestMount,
        { name: "pgbackrest-tls", mountPath: PGBACKREST_TLS_DIR, readOnly: true },
      ],
    });
  }

  const objects = createStore(parent, {
    cfg,
    name: "postgres",
    component: "database",
    store: pg,
    namespace: ns,
    serviceAccount: args.serviceAccount("postgres"),
    port: { name: "postgres", number: PORTS.postgres.sql },
    extraPorts: [{ name: "patroni", number: PORTS.postgres.patroni }],
    clientEndpoints: "store",
    container: {
      command: ["patroni", PATRONI_YML],
      env: [
        field("PATRONI_NAME", "metadata.name"),
        field("PATRONI_KUBERNETES_NAMESPACE", "metadata.namespace"),
        field("POD_IP", "status.podIP"),
        { name: "PATRONI_KUBERNETES_POD_IP", value: "$(POD_IP)" },
        { name: "PATRONI_POSTGRESQL_CONNECT_ADDRESS", value: `$(POD_IP):${PORTS.postgres.sql}` },
        { name: "PATRONI_RESTAPI_CONNECT_ADDRESS", value: `$(POD_IP):${PORTS.postgres.patroni}` },
        secretEnv("PATRONI_SUPERUSER_USERNAME", secret, "POSTGRES_USER"),
        secretEnv("PATRONI_SUPERUSER_PASSWORD", secret, "POSTGRES_PASSWORD"),
        secretEnv("PATRONI_REPLICATION_USERNAME", secret, "REPLICATION_USER"),
        secretEnv("PATRONI_REPLICATION_PASSWORD", secret, "REPLICATION_PASSWORD"),
        ...api,
        // Read by the post-bootstrap script (Patroni passes its environment on, minus PATRONI_*).
        ...["POSTGRES_DB", "APP_DB_USER", "APP_DB_PASSWORD"].map((k) => secretEnv(k, secret, k)),
        ...home,
        ...s3Env,
      ],
      readinessProbe: patroniProbe("/readiness", { periodSeconds: 5, failureThreshold: 3 }),
      livenessProbe: liveness,
      startupProbe: startupProbe(liveness, 300, 10),
      // A leader hands over before it stops: the rolling update restarts replicas first (highest
      // ordinal first, the bootstrap leader is postgres-0), and the leader's restart is a switchover.
      lifecycle: { preStop: { exec: { command: ["python3", `${PATRONI_DIR}/${SCRIPT_FILES.preStop}`] } } },
      volumeMounts: [configMount, run.mount, tmp.mount, { name: "shm", mountPath: "/dev/shm" }, tokenMount, ...(store ? [pgbackrestMount] : [])],
    },
    sidecars,
    dataMountPath: PATRONI_DATA_MOUNT,
    volumes: [
      { name: "patroni", configMap: { name: patroniConfig.metadata.name, defaultMode: 0o555 } },
      ...(pgbackrestConfig ? [{ name: "pgbackrest", configMap: { name: pgbackrestConfig.metadata.name, items: [{ key: "member.conf", path: "pgbackrest.conf" }] } }] : []),
      ...(tlsSecret ? [{ name: "pgbackrest-tls", secret: { secretName: tlsSecret, defaultMode: 0o440, items: [TLS_FILES.serverCert, TLS_FILES.serverKey, TLS_FILES.clientCert].map((k) => ({ key: k, path: k })) } }] : []),
      { name: "credentials", secret: { secretName: secret, defaultMode: 0o440 } },
      // The API token, for the Postgres container only (the pod-wide automount stays off).
      {
        name: "kube-api-access",
        projected: {
          defaultMode: 0o444,
          sources: [
            { serviceAccountToken: { path: "token", expirationSeconds: 3607 } },
            { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
            { downwardAPI: { items: [{ path: "namespace", fieldRef: { apiVersion: "v1", fieldPath: "metadata.namespace" } }] } },
          ],
        },
      },
      run.volume,
      tmp.volume,
      { name: "shm", emptyDir: { medium: "Memory", sizeLimit: shmSize } },
    ],
    exporter: postgresExporter(secret),
    credentialsChecksum: args.credentialsChecksum,
    // What needs a restart rolls the pods; the dynamic settings do not (patroni-sync applies them live).
    annotations: {
      "checksum/config": checksum({ local: localConfig(ctx), scripts, pgbackrest: store ? memberConf(pg, store, paths) : "" }),
    },
    // The pre-stop switchover, then a fast shutdown checkpoint.
    terminationGracePeriodSeconds: 120,
  });

  // The replicas (read-only clients); members Patroni labels role=replica while they stream.
  new k8s.core.v1.Service(
    REPLICAS_SERVICE,
    {
      metadata: { name: REPLICAS_SERVICE, namespace: ns, labels: objLabels, annotations: { [RUNTIME_LABELS]: ROLE_LABEL } },
      spec: { type: "ClusterIP", selector: { ...objects.selector, [ROLE_LABEL]: "replica" }, ports: [{ name: "postgres", port: PORTS.postgres.sql, targetPort: "postgres", protocol: "TCP" }] },
    },
    child,
  );
  new k8s.core.v1.Service(CONFIG_SERVICE, { metadata: { name: CONFIG_SERVICE, namespace: ns, labels: objLabels }, spec: { clusterIP: "None" } }, child);

  // Who talks to whom: the members to each other (streaming, pg_rewind, Patroni's REST API during
  // a failover), to the API server (the DCS), to the object store (WAL).
  const graph = args.graph;
  graph.connect("postgres", "postgres", [PORTS.postgres.sql, PORTS.postgres.patroni], "Patroni members: replication, pg_rewind, REST API");
  const apiServer = cfg.cluster.apiServer;
  if (!apiServer) throw new Error("postgres: Patroni without cluster.apiServer (config validation should have refused this)");
  for (const cidr of apiServer.cidrs) graph.connect("postgres", { kind: "cidr", name: `kube-apiserver-${cidr}`, cidr }, apiServer.ports, "Patroni: leader lock and member state in the Kubernetes API");
  if (store) connectObjectStore(graph, store, "postgres", pg.archive.enabled ? "WAL archive, archive-get" : "restore from the object store");

  if (pg.archive.enabled && store && s3 && tlsSecret && pgbackrestConfig) {
    createBaseBackup(parent, { args, pgbackrestConfig, tlsSecret, s3Env, dependsOn: [objects.statefulSet] });
    graph.connect(BASE_BACKUP, "postgres", [PORTS.postgres.pgbackrest], "pgBackRest base backup through the members' TLS servers");
    connectObjectStore(graph, store, BASE_BACKUP, "pgBackRest base backups");
  }
  return objects;
}

/** The TLS Secret of pgBackRest: server certificate for every member's name, client certificate for the backup job. */
function pgbackrestTls(parent: pulumi.Resource, namespace: string, ns: pulumi.Input<string>, replicas: number, objLabels: Record<string, string>): pulumi.Output<string> {
  const child = { parent };
  const pair = (id: string, commonName: string, dnsNames: string[], uses: string[]) => {
    const key = new tls.PrivateKey(`${id}-key`, { algorithm: "RSA", rsaBits: 2048 }, child);
    const cert = new tls.SelfSignedCert(
      `${id}-cert`,
      {
        privateKeyPem: key.privateKeyPem,
        subject: { commonName, organization: "app-platform" },
        dnsNames,
        // Its own authority (the peer trusts exactly this certificate); ten years, renewed by a keeper change.
        isCaCertificate: true,
        validityPeriodHours: 24 * 3650,
        allowedUses: ["digital_signature", "key_encipherment", "cert_signing", ...uses],
      },
      child,
    );
    return { key: key.privateKeyPem, cert: cert.certPem };
  };
  const server = pair("postgres-pgbackrest-server", `${SCOPE}-pgbackrest`, memberHosts(replicas, namespace), ["server_auth"]);
  const client = pair("postgres-pgbackrest-client", PGBACKREST_CLIENT_CN, [], ["client_auth"]);
  const s = new k8s.core.v1.Secret(
    PGBACKREST_TLS_SECRET,
    {
      metadata: { name: PGBACKREST_TLS_SECRET, namespace: ns, labels: objLabels },
      type: "Opaque",
      stringData: {
        [TLS_FILES.serverCert]: server.cert,
        [TLS_FILES.serverKey]: pulumi.secret(server.key),
        [TLS_FILES.clientCert]: client.cert,
        [TLS_FILES.clientKey]: pulumi.secret(client.key),
      },
    },
    child,
  );
  return s.metadata.name;
}

interface BaseBackupArgs {
  args: StoreComponentArgs;
  pgbackrestConfig: k8s.core.v1.ConfigMap;
  tlsSecret: pulumi.Output<string>;
  s3Env: EnvVar[];
  dependsOn: pulumi.Resource[];
}

/**
 * Scheduled base backups: the job is pgBackRest's repository host. It finds the primary among the
 * members (their TLS servers), copies the data directory into the object store, checks that the
 * WAL to make it consistent is archived, and expires what the retention no longer keeps.
 */
function createBaseBackup(parent: pulumi.Resource, b: BaseBackupArgs): k8s.batch.v1.CronJob {
  const cfg = b.args.config;
  const pg = cfg.postgres;
  const a = pg.archive;
  const ns = b.args.namespace;
  const objLabels = labels(cfg, { name: BASE_BACKUP, component: "backup" });
  return new k8s.batch.v1.CronJob(
    BASE_BACKUP,
    {
      metadata: { name: BASE_BACKUP, namespace: ns, labels: objLabels },
      spec: {
        schedule: a.schedule,
        timeZone: a.timeZone,
        // Two backups of one cluster never run at once (pgBackRest would refuse the second anyway).
        concurrencyPolicy: "Forbid",
        startingDeadlineSeconds: 3600,
        successfulJobsHistoryLimit: 3,
        failedJobsHistoryLimit: 3,
        jobTemplate: {
          metadata: { labels: objLabels },
          spec: {
            backoffLimit: 1,
            activeDeadlineSeconds: a.activeDeadlineSeconds,
            template: {
              metadata: { labels: labels(cfg, { name: BASE_BACKUP, component: "backup", image: pg.image }) },
              spec: scheduled(cfg, "batch", {
                serviceAccountName: b.args.serviceAccount("backup"),
                automountServiceAccountToken: false,
                enableServiceLinks: false,
                restartPolicy: "Never",
                securityContext: restrictedPod({ uid: pg.runAs.uid, gid: pg.runAs.gid, fsGroup: pg.runAs.gid }),
                containers: [
                  {
                    name: "basebackup",
                    // The database image: the pgBackRest version equals the members'.
                    image: pg.image,
                    command: ["sh", "-c", baseBackupScript(pg)],
                    env: [{ name: "HOME", value: "/tmp" }, ...b.s3Env],
                    resources: a.resources,
                    securityContext: restrictedContainer({ readOnlyRootFilesystem: true }),
                    volumeMounts: [
                      { name: "pgbackrest", mountPath: PGBACKREST_CONFIG_DIR, readOnly: true },
                      { name: "pgbackrest-tls", mountPath: PGBACKREST_TLS_DIR, readOnly: true },
                      { name: "tmp", mountPath: "/tmp" },
                    ],
                  },
                ],
                volumes: [
                  { name: "pgbackrest", configMap: { name: b.pgbackrestConfig.metadata.name, items: [{ key: "repo.conf", path: "pgbackrest.conf" }] } },
                  { name: "pgbackrest-tls", secret: { secretName: b.tlsSecret, defaultMode: 0o440, items: [TLS_FILES.serverCert, TLS_FILES.clientCert, TLS_FILES.clientKey].map((k) => ({ key: k, path: k })) } },
                  scratchVolume("tmp", "256Mi"),
                ],
              }),
            },
          },
        },
      },
    },
    { parent, dependsOn: b.dependsOn },
  );
}
