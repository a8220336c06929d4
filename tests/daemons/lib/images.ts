// The pinned images, as Debian's packages stand in for them in the daemon tier. Each shim says
// how the image turns a container's command/args into a process (its ENTRYPOINT and CMD), the
// image's environment, its users (written into the container's passwd/group, so files and
// processes carry the image's uids), and the image files Debian lays out differently. Anything a
// shim cannot reproduce is said here, with the image version that differs.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { ImageFile, Mount } from "./sandbox";

export interface Shim {
  /** argv from the container's command and args (undefined = the image's own). */
  argv(command: string[] | undefined, args: string[] | undefined): string[];
  env: Record<string, string>;
  uid?: number;
  gid?: number;
  workdir?: string;
  passwd?: string[];
  group?: string[];
  mounts?: Mount[];
  files?: ImageFile[];
  /** A command printing the version the tier ran against. */
  version: string[];
}

const SHIMS_DIR = path.join(__dirname, "..", "shims");
/** Writable scratch for shims that need a socket beside the image's program (one per test process). */
const SHIM_SCRATCH = fs.mkdtempSync(path.join(os.tmpdir(), "daemon-shims-"));
fs.chmodSync(SHIM_SCRATCH, 0o1777);
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** No entrypoint logic (tini and the like): command + args, or the image's CMD. */
const plain = (cmd: string[]) => (command: string[] | undefined, args: string[] | undefined) => [...(command ?? []), ...(args ?? (command ? [] : cmd))];

/** Debian's PostgreSQL 15 stands in for postgres:16-alpine (same initdb/pg_ctl/psql interface). */
export const PG_BIN = "/usr/lib/postgresql/15/bin";

const SHIMS: [RegExp, Shim][] = [
  [
    /^postgres:/,
    {
      // docker-entrypoint.sh (emulated in shims/postgres-entrypoint.sh): a leading option means `postgres <options>`.
      argv: (command, args) => (command ? [...command, ...(args ?? [])] : ["docker-entrypoint.sh", ...(args ?? ["postgres"])]),
      env: { PATH: `${PG_BIN}:${PATH}`, PGDATA: "/var/lib/postgresql/data", LANG: "C.UTF-8" },
      // The alpine image's postgres user is 70:70 (Debian's is 101): files and processes use 70.
      passwd: ["postgres:x:70:70:PostgreSQL:/var/lib/postgresql:/bin/sh"],
      group: ["postgres:x:70:"],
      mounts: [{ src: path.join(SHIMS_DIR, "postgres-entrypoint.sh"), dst: "/usr/local/bin/docker-entrypoint.sh", readOnly: true }],
      version: [`${PG_BIN}/postgres`, "--version"],
    },
  ],
  [
    /^percona\/percona-distribution-postgresql:/,
    {
      // The image's /entrypoint.sh (docker-library style) is not emulated: the platform always sets
      // command (patroni, pgbackrest, python3 scripts), which replaces it.
      argv: (command, args) => {
        if (!command) throw new Error("percona/percona-distribution-postgresql: the entrypoint is not emulated; set command");
        return [...command, ...(args ?? [])];
      },
      // Debian's PostgreSQL 15, Patroni 3.0.2 and pgBackRest 2.45 stand in for the image's
      // PostgreSQL 16, Patroni 4.x and pgBackRest 2.5x (the image puts /usr/pgsql-16/bin on PATH).
      env: { PATH: `${PG_BIN}:${PATH}`, LANG: "C.UTF-8" },
      // The image's postgres user is 26:26 (Debian's is 101).
      passwd: ["postgres:x:26:26:PostgreSQL Server:/var/lib/pgsql:/bin/sh"],
      group: ["postgres:x:26:"],
      version: ["sh", "-c", `${PG_BIN}/postgres --version; patroni --version; pgbackrest version`],
    },
  ],
  [
    /^redis:/,
    {
      // docker-entrypoint.sh: a first argument that is an option or a *.conf file means `redis-server <args>`.
      argv: (command, args) => {
        if (command) return [...command, ...(args ?? [])];
        const a = args ?? ["redis-server"];
        return a[0].startsWith("-") || a[0].endsWith(".conf") ? ["redis-server", ...a] : a;
      },
      env: { PATH },
      workdir: "/data",
      // redis:alpine runs as redis 999:1000.
      passwd: ["redis:x:999:1000:Redis:/data:/bin/sh"],
      group: ["redis:x:1000:"],
      files: [{ path: "/data", dir: { uid: 999, gid: 1000 } }],
      version: ["redis-server", "--version"],
    },
  ],
  [
    /^boky\/postfix:/,
    {
      argv: plain(["/scripts/run.sh"]),
      env: { PATH },
      version: ["postconf", "-h", "mail_version"],
    },
  ],
  [
    /^dovecot\/dovecot:/,
    {
      argv: plain(["/usr/sbin/dovecot", "-F"]),
      env: { PATH },
      // The image's mail user: vmail 1000:1000 (first_valid_uid/last_valid_uid in dovecot.conf).
      passwd: ["vmail:x:1000:1000:vmail:/srv/mail:/usr/sbin/nologin"],
      group: ["vmail:x:1000:"],
      version: ["dovecot", "--version"],
    },
  ],
  [
    /^rspamd\/rspamd:/,
    {
      // The image runs `rspamd -f` as 11333:11333 with upstream defaults in /usr/share/rspamd/config
      // and local changes in /etc/rspamd/{local,override}.d. Debian's rspamd 3.4 (the image pins 3.9)
      // keeps the defaults in /etc/rspamd itself, where the same local.d/override.d mounts land, and
      // writes a pidfile into $RUNDIR (the image's build removes it): it is pointed at the writable /tmp.
      argv: (command, args) => (command || args ? [...(command ?? []), ...(args ?? [])] : ["/usr/bin/rspamd", "-f", "--var=RUNDIR=/tmp"]),
      env: { PATH },
      uid: 11333,
      gid: 11333,
      passwd: ["_rspamd:x:11333:11333:rspamd:/var/lib/rspamd:/usr/sbin/nologin"],
      group: ["_rspamd:x:11333:"],
      version: ["rspamd", "--version"],
    },
  ],
  [
    /^ghcr\.io\/hsn723\/postfix_exporter:/,
    {
      // Debian ships kumina's postfix_exporter 0.3.0 (the image pins Hsn723's maintained fork,
      // 0.16): same metric names, but 0.3.0 reads showq only from a unix socket and has no service
      // label flags. shims/postfix-exporter.sh bridges a socket to the showq TCP listener the
      // rendered args name and drops the flags 0.3.0 lacks.
      argv: (command, args) => [...(command ?? ["/usr/local/bin/postfix-exporter-shim.sh"]), ...(args ?? [])],
      env: { PATH },
      uid: 65534,
      gid: 65534,
      mounts: [
        { src: path.join(SHIMS_DIR, "postfix-exporter.sh"), dst: "/usr/local/bin/postfix-exporter-shim.sh", readOnly: true },
        { src: SHIM_SCRATCH, dst: "/var/lib/exporter-shim" },
      ],
      version: ["dpkg-query", "-W", "-f=prometheus-postfix-exporter ${Version}", "prometheus-postfix-exporter"],
    },
  ],
  [
    /^quay\.io\/prometheus\/blackbox-exporter:/,
    {
      // Debian's prometheus-blackbox-exporter 0.23.0 for the image's v0.25.0: the TCP prober
      // (prober/tcp.go) and the module format are the same code in both; 0.24 added a hostname
      // parameter to TCP probes (unused here) and 0.25 per-target probe logs. The image's
      // ENTRYPOINT is /bin/blackbox_exporter and it sets no USER (the pod runs it as 65534).
      argv: (command, args) => [...(command ?? ["/usr/bin/prometheus-blackbox-exporter"]), ...(args ?? ["--config.file=/etc/blackbox_exporter/config.yml"])],
      env: { PATH },
      version: ["prometheus-blackbox-exporter", "--version"],
    },
  ],
  [
    /^clamav\/clamav:/,
    {
      // Debian's clamd 1.4.6 for the image's 1.4.3 (the image's init runs freshclam and clamd).
      argv: plain(["clamd", "--foreground"]),
      env: { PATH },
      uid: 100,
      gid: 101,
      passwd: ["clamav:x:100:101:clamav:/var/lib/clamav:/sbin/nologin"],
      group: ["clamav:x:101:"],
      version: ["clamd", "--version"],
    },
  ],
  [
    /^nginxinc\/nginx-unprivileged:/,
    {
      // /docker-entrypoint.sh only runs its template scripts, which skip a read-only conf.d.
      argv: plain(["nginx", "-g", "daemon off;"]),
      env: { PATH },
      uid: 101,
      gid: 101,
      passwd: ["nginx:x:101:101:nginx:/nonexistent:/sbin/nologin"],
      group: ["nginx:x:101:"],
      files: [
        // The image's main config: pid and temp files under /tmp, so it runs as 101 with a read-only root.
        { path: "/etc/nginx/nginx.conf", content: UNPRIVILEGED_NGINX_CONF() },
        { path: "/var/log/nginx/access.log", symlink: "/dev/stdout" },
        { path: "/var/log/nginx/error.log", symlink: "/dev/stderr" },
      ],
      version: ["nginx", "-v"],
    },
  ],
  [
    /^rclone\/rclone:/,
    {
      // ENTRYPOINT ["rclone"]; Debian's rclone 1.60 for 1.68: the s3 remote options we set
      // (RCLONE_CONFIG_<remote>_*) and the commands we run (copy, copyto, lsf, lsl, deletefile) are
      // the same in both. The image is Alpine (busybox sh); Debian's sh is dash, also POSIX.
      argv: (command, args) => (command ? [...command, ...(args ?? [])] : ["rclone", ...(args ?? ["version"])]),
      env: { PATH },
      version: ["rclone", "version"],
    },
  ],
  [
    /^python:/,
    {
      // Debian's python3 (3.11) for python:3.12-alpine: the smoke checks use the standard library only.
      argv: plain(["python3"]),
      env: { PATH },
      version: ["python3", "--version"],
    },
  ],
];

function UNPRIVILEGED_NGINX_CONF(): string {
  return [
    "worker_processes auto;",
    "error_log /var/log/nginx/error.log notice;",
    "pid /tmp/nginx.pid;",
    "events { worker_connections 1024; }",
    "http {",
    "    proxy_temp_path /tmp/proxy_temp;",
    "    client_body_temp_path /tmp/client_temp;",
    "    fastcgi_temp_path /tmp/fastcgi_temp;",
    "    uwsgi_temp_path /tmp/uwsgi_temp;",
    "    scgi_temp_path /tmp/scgi_temp;",
    "    include /etc/nginx/mime.types;",
    "    default_type application/octet-stream;",
    "    access_log /var/log/nginx/access.log;",
    "    sendfile on;",
    "    keepalive_timeout 65;",
    "    include /etc/nginx/conf.d/*.conf;",
    "}",
    "",
  ].join("\n");
}

export function shimFor(image: string): Shim {
  const hit = SHIMS.find(([re]) => re.test(image));
  if (!hit) throw new Error(`no Debian stand-in for image ${image} (tests/daemons/lib/images.ts)`);
  return hit[1];
}
