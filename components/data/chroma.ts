// ChromaDB (seed 002's vector store): the official image of the 0.6 line, one server with its data
// on a retained volume, token authentication on every call except the heartbeat (the token is
// generated and reaches the server from its Secret), Pod Security "restricted" as a fixed non-root
// uid (the image declares no user), HTTP heartbeat probes, and a nightly logical backup through
// the HTTP API (components/data/chroma-scripts.ts). No exporter: Chroma has no Prometheus
// endpoint; kube-state-metrics covers it (StatefulSet readiness, the backup CronJob's age).
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import { chromaIndexCacheBytes } from "../../config/data";
import { labels } from "../lib/labels";
import { checksum, httpProbe, secretEnv, startupProbe } from "../lib/pod";
import { PORTS } from "../lib/ports";
import { createBackup } from "./backup";
import { CHROMA_BACKUP_EXTENSION, CHROMA_BACKUP_SCRIPTS, CHROMA_PYTHONPATH, CHROMA_SCRIPT_DIR, chromaBackupDump } from "./chroma-scripts";
import type { StoreComponentArgs } from "./common";
import { StoreComponent, requireKeys } from "./common";
import { CHROMA_AUTH } from "./connections";
import { createStore, scratch } from "./store";

/** The server's persist directory: the data volume's mount. */
export const CHROMA_DATA = "/data";
/** The key of `chroma-credentials` that holds the token, named after Chroma's own setting. */
export const CHROMA_TOKEN_KEY = "CHROMA_SERVER_AUTHN_CREDENTIALS";
/** Answers without authentication (chroma_server_auth_ignore_paths) and without touching the data. */
export const CHROMA_HEARTBEAT = "/api/v2/heartbeat";
const CONFIG_DIR = "/etc/chroma";

/**
 * uvicorn's logging: the image's default config also logs to a file in its working directory,
 * which a read-only root filesystem refuses; everything goes to stdout/stderr instead.
 */
export const CHROMA_LOG_CONFIG = `# Rendered by components/data/chroma.ts: console only (the root filesystem is read-only).
version: 1
disable_existing_loggers: false
formatters:
  plain:
    format: "%(asctime)s %(levelname)s %(name)s: %(message)s"
handlers:
  stdout:
    class: logging.StreamHandler
    stream: ext://sys.stdout
    formatter: plain
loggers:
  root:
    level: WARNING
    handlers: [stdout]
  chromadb:
    level: INFO
  uvicorn:
    level: INFO
`;

/**
 * The server's settings (Chroma reads them from the environment, by setting name). Persistence in
 * the data volume; token authentication (0.6's provider; a single token is one user allowed
 * everything) with the token as `Authorization: Bearer`; no reset endpoint; no usage telemetry.
 */
export function chromaServerEnv(cfg: StoreComponentArgs["config"], secret: pulumi.Input<string>): k8s.types.input.core.v1.EnvVar[] {
  const cache = chromaIndexCacheBytes(cfg.chroma);
  return [
    { name: "IS_PERSISTENT", value: "TRUE" },
    { name: "PERSIST_DIRECTORY", value: CHROMA_DATA },
    { name: "CHROMA_SERVER_AUTHN_PROVIDER", value: CHROMA_AUTH.serverProvider },
    secretEnv("CHROMA_SERVER_AUTHN_CREDENTIALS", secret, CHROMA_TOKEN_KEY),
    { name: "CHROMA_AUTH_TOKEN_TRANSPORT_HEADER", value: CHROMA_AUTH.header },
    { name: "ALLOW_RESET", value: "FALSE" },
    { name: "ANONYMIZED_TELEMETRY", value: "FALSE" },
    ...(cache !== undefined
      ? [
          { name: "CHROMA_SEGMENT_CACHE_POLICY", value: "LRU" },
          { name: "CHROMA_MEMORY_LIMIT_BYTES", value: String(cache) },
        ]
      : []),
    // Python and its libraries look for a home directory; bytecode caches cannot be written anyway.
    { name: "HOME", value: "/tmp" },
    { name: "PYTHONDONTWRITEBYTECODE", value: "1" },
  ];
}

/** The image's entrypoint runs `uvicorn chromadb.app:app <args>`: one worker (one SQLite writer), the log config above. */
export function chromaArgs(): string[] {
  return ["--workers", "1", "--host", "0.0.0.0", "--port", String(PORTS.chroma.http), "--proxy-headers", "--log-config", `${CONFIG_DIR}/log_config.yml`, "--timeout-keep-alive", "30"];
}

export class Chroma extends StoreComponent {
  readonly port = PORTS.chroma.http;

  constructor(name: string, args: StoreComponentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:data:Chroma", name, {}, opts);
    const cfg = args.config;
    const c = cfg.chroma;
    const ns = args.namespace;
    const secret = args.credentials.name;
    requireKeys(args.credentials, [CHROMA_TOKEN_KEY]);
    const meta = (n: string) => ({ name: n, namespace: ns, labels: labels(cfg, { name: "chroma", component: "database" }) });

    const files = { "log_config.yml": CHROMA_LOG_CONFIG };
    const config = new k8s.core.v1.ConfigMap("chroma-config", { metadata: meta("chroma-config"), data: files }, { parent: this });
    // The heartbeat needs no token; a cold start migrates SQLite and may load large indexes.
    const heartbeat = httpProbe(CHROMA_HEARTBEAT, "http", { periodSeconds: 10, timeoutSeconds: 5 });
    const alive = { ...heartbeat, periodSeconds: 20, failureThreshold: 6 };
    const tmp = scratch("tmp", "/tmp", "256Mi");

    const store = createStore(this, {
      cfg,
      name: "chroma",
      component: "database",
      store: c,
      namespace: ns,
      serviceAccount: args.serviceAccount("chroma"),
      port: { name: "http", number: PORTS.chroma.http },
      container: {
        args: chromaArgs(),
        env: chromaServerEnv(cfg, secret),
        readinessProbe: heartbeat,
        livenessProbe: alive,
        startupProbe: startupProbe(heartbeat, 600, 10),
        volumeMounts: [{ name: "config", mountPath: CONFIG_DIR, readOnly: true }, tmp.mount],
      },
      dataMountPath: CHROMA_DATA,
      volumes: [{ name: "config", configMap: { name: config.metadata.name } }, tmp.volume],
      credentialsChecksum: args.credentialsChecksum,
      terminationGracePeriodSeconds: 30,
      // The log config is read at start only.
      annotations: { "checksum/config": checksum(files) },
    });
    this.servedBy(store.service, ns);

    if (c.backup.enabled) {
      const scripts = new k8s.core.v1.ConfigMap("chroma-backup", { metadata: meta("chroma-backup"), data: CHROMA_BACKUP_SCRIPTS }, { parent: this });
      createBackup(this, {
        cfg,
        name: "chroma",
        store: c,
        namespace: ns,
        serviceAccount: args.serviceAccount("backup"),
        env: [
          { name: "CHROMA_HOST", value: this.service },
          { name: "CHROMA_PORT", value: String(PORTS.chroma.http) },
          secretEnv("CHROMA_AUTH_TOKEN", secret, CHROMA_TOKEN_KEY),
          // The image's chromadb package is its source tree; no usage telemetry from the client either.
          { name: "PYTHONPATH", value: CHROMA_PYTHONPATH },
          { name: "PYTHONDONTWRITEBYTECODE", value: "1" },
          { name: "ANONYMIZED_TELEMETRY", value: "FALSE" },
        ],
        dump: chromaBackupDump(),
        extension: CHROMA_BACKUP_EXTENSION,
        volumes: [{ name: "scripts", configMap: { name: scripts.metadata.name } }],
        mounts: [{ name: "scripts", mountPath: CHROMA_SCRIPT_DIR, readOnly: true }],
        offsite: args.offsite,
        graph: args.graph,
      });
      args.graph.connect("chroma-backup", "chroma", [PORTS.chroma.http], "scheduled export through the HTTP API");
    }
    this.registerOutputs({ host: this.host });
  }
}
