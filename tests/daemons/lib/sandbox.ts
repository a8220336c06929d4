// A miniature cluster on one machine for the daemon tier: every pod is a network namespace on a
// private bridge (10.96.0.0/16, never routed anywhere), every container a mount + PID + UTS
// namespace whose root is a throw-away overlay of the host's root filesystem, so daemons see the
// pod's paths (ConfigMaps, Secrets, volumes bind-mounted where the pod spec mounts them) without
// touching the host. A dnsmasq on the bridge answers the `*.svc.cluster.local` names. Everything a
// sandbox starts dies with the test process (PR_SET_PDEATHSIG) or at cleanup, whichever is first;
// namespaces left by a killed run are swept by the next one.
import { spawn, spawnSync } from "child_process";
import type { ChildProcess } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

const PREFIX = "pt";
/** The repository root (tests/daemons/lib/../../..). */
const REPO = path.resolve(__dirname, "..", "..", "..");
const NET = "10.96";
const GATEWAY = `${NET}.0.1`;

export interface Mount {
  src: string;
  dst: string;
  readOnly?: boolean;
}

/** A file of the image that Debian lays out differently, written into the container's root. */
export interface ImageFile {
  path: string;
  /** A directory (owner uid:gid) instead of a file. */
  dir?: { uid: number; gid: number };
  content?: string;
  symlink?: string;
  mode?: number;
}

export interface ContainerSpec {
  name: string;
  argv: string[];
  env: Record<string, string>;
  /** Default: root (uid 0), like an image without USER. */
  uid?: number;
  gid?: number;
  /** Supplementary groups (fsGroup, supplementalGroups). */
  groups?: number[];
  mounts: Mount[];
  /** Capability bounding set for a root process (lower-case names); undefined keeps them all. */
  capabilities?: string[];
  noNewPrivs?: boolean;
  readOnlyRoot?: boolean;
  workdir?: string;
  /** passwd/group lines of the image's own users, replacing host entries with the same name or id. */
  passwd?: string[];
  group?: string[];
  files?: ImageFile[];
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  env?: Record<string, string>;
  input?: string;
  timeoutMs?: number;
  uid?: number;
  gid?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** For races against an exit: a timer that never keeps the process alive on its own. */
const idle = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/** Polls `check` until it returns a truthy value or `timeoutMs` passes; the error names `what`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, everyMs = 200): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message ?? last}` : ""}`);
    await sleep(everyMs);
  }
}

function sh(args: string[], opts: { input?: string; allowFail?: boolean } = {}): ExecResult {
  const r = spawnSync(args[0], args.slice(1), { input: opts.input, encoding: "utf8" });
  const res = { code: r.status ?? 1, stdout: r.stdout ?? "", stderr: r.stderr ?? String(r.error ?? "") };
  if (res.code !== 0 && !opts.allowFail) throw new Error(`${args.join(" ")} failed (${res.code}): ${res.stderr.trim()}`);
  return res;
}

/** A process that exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z";
  } catch {
    return false;
  }
}

function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Namespaces of earlier runs whose owner process is gone (a killed test run): their processes and links go. */
export function sweepStale(): void {
  const list = sh(["ip", "netns", "list"], { allowFail: true }).stdout;
  for (const line of list.split("\n")) {
    const name = line.split(" ")[0];
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(name);
    if (!m) continue;
    if (fs.existsSync(`/proc/${m[1]}`)) continue;
    deleteNetns(name);
  }
}

function deleteNetns(name: string): void {
  const pids = sh(["ip", "netns", "pids", name], { allowFail: true }).stdout.split(/\s+/).filter(Boolean);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // already gone
    }
  }
  sh(["ip", "netns", "del", name], { allowFail: true });
  fs.rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
}

export class Container {
  readonly log: string[] = [];
  private readonly child: ChildProcess;
  private initPid?: number;
  readonly exited: Promise<number | null>;
  exitCode?: number | null;

  constructor(
    readonly pod: Pod,
    readonly spec: ContainerSpec,
    readonly rootDir: string,
    setupScript: string,
  ) {
    const r = spec;
    const uidArgs = r.uid !== undefined && r.uid !== 0 ? [`--reuid=${r.uid}`, `--regid=${r.gid ?? r.uid}`, r.groups?.length ? `--groups=${r.groups.join(",")}` : "--clear-groups"] : [];
    const rootGroups = (r.uid ?? 0) === 0 && r.groups?.length ? [`--groups=${r.groups.join(",")}`] : [];
    const capArgs = r.capabilities ? [`--bounding-set=-all${r.capabilities.map((c) => `,+${c.toLowerCase()}`).join("")}`, "--inh-caps=-all"] : [];
    const env = Object.entries(r.env).map(([k, v]) => `${k}=${v}`);
    const argv = [
      "setpriv", "--pdeathsig", "KILL",
      "nsenter", `--net=/run/netns/${pod.netns}`,
      "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child",
      "/bin/sh", setupScript,
      "chroot", path.join(rootDir, "root"),
      "setpriv", ...uidArgs, ...rootGroups, ...capArgs, ...(r.noNewPrivs ? ["--no-new-privs"] : []),
      "env", "-i", `--chdir=${r.workdir ?? "/"}`, ...env, ...r.argv,
    ];
    // The container's stdout and stderr are one pipe owned by the container user, as under a
    // container runtime. Node's "pipe" stdio is a socket, on which open("/dev/stdout") fails
    // (ENXIO): daemons that log to /dev/stdout (Postfix's maillog_file, Dovecot's log_path, nginx's
    // log links) need to open it, also after dropping root.
    const out = outputPipe(path.join(rootDir, "output"), r.uid, r.gid);
    this.child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", out.fd, out.fd] });
    fs.closeSync(out.fd);
    const output = out.stream;
    const outputClosed = new Promise((r) => output.on("close", r));
    const logFile = fs.createWriteStream(path.join(rootDir, "log"));
    let partial = "";
    output.on("data", (d: Buffer) => {
      logFile.write(d);
      const lines = (partial + d.toString()).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) if (line) this.log.push(line);
    });
    output.on("error", () => undefined);
    // Exited means gone: the outer process first, then the container's PID 1 (whose death makes
    // the kernel kill the rest of its PID namespace), so its ports are free when this resolves.
    this.exited = new Promise((resolve) =>
      this.child.on("exit", (code) => {
        void waitFor(`${this.name}'s PID 1 to go`, () => this.initPid === undefined || !alive(this.initPid), 10_000, 20)
          .catch(() => undefined)
          // Every writer is gone with the PID namespace: the pipe reaches end of file.
          .then(() => Promise.race([outputClosed, idle(2000)]))
          .then(() => {
            if (partial) this.log.push(partial);
            this.exitCode = code;
            output.destroy();
            logFile.end();
            resolve(code);
          });
      }),
    );
  }

  get name(): string {
    return `${this.pod.name}/${this.spec.name}`;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** Host PID of the container's PID 1 (the unshare child). */
  async pid(): Promise<number> {
    if (this.initPid) return this.initPid;
    const outer = this.child.pid!;
    this.initPid = await waitFor(`${this.name} to start`, () => {
      if (!this.running) throw new Error(`exited with ${this.exitCode}: ${this.log.slice(-20).join("\n")}`);
      const children = fs.readFileSync(`/proc/${outer}/task/${outer}/children`, "utf8").trim();
      return children ? Number(children.split(" ")[0]) : undefined;
    }, 10_000, 20);
    return this.initPid;
  }

  /** Like `kubectl exec`: a command inside the container's namespaces and root, as the container user by default. */
  async exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const pid = await this.pid();
    const uid = opts.uid ?? this.spec.uid ?? 0;
    const gid = opts.gid ?? this.spec.gid ?? uid;
    const drop = uid !== 0 ? ["setpriv", `--reuid=${uid}`, `--regid=${gid}`, this.spec.groups?.length ? `--groups=${this.spec.groups.join(",")}` : "--clear-groups"] : [];
    const env = Object.entries({ ...this.spec.env, ...opts.env }).map(([k, v]) => `${k}=${v}`);
    return run(["nsenter", "-t", String(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", ...drop, "env", "-i", ...env, ...argv], { ...opts, uid, gid });
  }

  /** Sends a signal to the container's main process (as the kubelet does on stop: TERM, then KILL). */
  async signal(sig: NodeJS.Signals): Promise<void> {
    try {
      process.kill(await this.pid(), sig);
    } catch {
      // gone
    }
  }

  /** Stops like the kubelet: SIGTERM, then SIGKILL after the grace period. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    await this.signal("SIGTERM");
    const done = await Promise.race([this.exited.then(() => true), idle(graceMs).then(() => false)]);
    if (!done) this.kill();
    await this.exited;
  }

  /**
   * SIGKILL to the container's PID 1 (the kernel then kills every process in its PID namespace) and
   * to the outer process. PID 1 is signalled directly: a uid change clears its parent-death signal.
   */
  kill(): void {
    if (!this.running) return;
    const outer = this.child.pid!;
    try {
      const init = this.initPid ?? Number(fs.readFileSync(`/proc/${outer}/task/${outer}/children`, "utf8").trim().split(" ")[0]);
      if (init) {
        this.initPid = init;
        process.kill(init, "SIGKILL");
      }
    } catch {
      // not started yet, or gone
    }
    this.child.kill("SIGKILL");
  }

  /** Resolves when a log line matches. */
  async waitLog(re: RegExp, timeoutMs = 30_000): Promise<string> {
    return waitFor(`${this.name} to log ${re}`, () => {
      const hit = this.log.find((l) => re.test(l));
      if (hit) return hit;
      if (!this.running) throw new Error(`exited with ${this.exitCode}; last lines:\n${this.log.slice(-30).join("\n")}`);
      return undefined;
    }, timeoutMs);
  }

  tail(n = 40): string {
    return this.log.slice(-n).join("\n");
  }
}

/**
 * A named pipe owned by `uid` (a process that drops root may reopen /dev/stdout, as under runc)
 * and still linked while in use: Postfix's log writer refuses a /dev/stdout whose file has no
 * link (a safety check on log files), so the name is removed only by `done()`.
 */
function outputPipe(file: string, uid = 0, gid = uid): { fd: number; stream: net.Socket; done: () => void } {
  sh(["mkfifo", "-m", "600", file]);
  fs.chownSync(file, uid, gid);
  const reader = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const fd = fs.openSync(file, fs.constants.O_WRONLY);
  return { fd, stream: new net.Socket({ fd: reader, readable: true, writable: false }), done: () => fs.rmSync(file, { force: true }) };
}
let pipes = 0;
const tmpPipe = () => path.join(os.tmpdir(), `daemons-pipe-${process.pid}-${pipes++}`);

/** Runs a command and collects its output (on pipes owned by `uid`); never throws for a non-zero exit. */
export function run(argv: string[], opts: { input?: string; timeoutMs?: number; uid?: number; gid?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const out = outputPipe(tmpPipe(), opts.uid, opts.gid);
    const err = outputPipe(tmpPipe(), opts.uid, opts.gid);
    const child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", out.fd, err.fd] });
    fs.closeSync(out.fd);
    fs.closeSync(err.fd);
    let stdout = "";
    let stderr = "";
    out.stream.on("data", (d) => (stdout += d));
    err.stream.on("data", (d) => (stderr += d));
    // Done when the process is gone and its output read to the end (as "close" waits for stdio).
    const drained = Promise.all([out.stream, err.stream].map((st) => new Promise((r) => st.on("close", r))));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    child.on("error", (e) => (stderr += String(e)));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      out.done();
      err.done();
      void drained.then(() => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr: signal ? `${stderr}\n(killed by ${signal})` : stderr }));
    });
    child.stdin!.on("error", () => undefined);
    child.stdin!.end(opts.input ?? "");
  });
}

export class Pod {
  readonly containers: Container[] = [];
  private seq = 0;

  constructor(
    readonly sandbox: Sandbox,
    readonly name: string,
    readonly namespace: string,
    readonly ip: string,
    readonly netns: string,
    readonly hostname: string,
    private readonly fqdn: string | undefined,
  ) {}

  /** Starts a container of this pod. */
  start(spec: ContainerSpec): Container {
    const dir = path.join(this.sandbox.dir, "pods", this.name, `${spec.name}-${this.seq++}`);
    for (const d of ["upper", "work", "root"]) fs.mkdirSync(path.join(dir, d), { recursive: true });
    const script = path.join(dir, "setup.sh");
    fs.writeFileSync(script, this.setupScript(dir, spec));
    const c = new Container(this, spec, dir, script);
    this.containers.push(c);
    this.sandbox.track(c);
    return c;
  }

  /** Runs a container to completion (an init container or a Job's pod); rejects with its log on failure. */
  async runToCompletion(spec: ContainerSpec, timeoutMs = 120_000): Promise<Container> {
    const c = this.start(spec);
    const code = await Promise.race([c.exited, idle(timeoutMs).then(() => "timeout" as const)]);
    if (code === "timeout") {
      c.kill();
      throw new Error(`${c.name} did not finish within ${timeoutMs} ms:\n${c.tail()}`);
    }
    if (code !== 0) throw new Error(`${c.name} exited with ${code}:\n${c.tail()}`);
    return c;
  }

  /** A command in the pod's network namespace with the host's filesystem (a client next to the pod). */
  exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const env = Object.entries({ PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/tmp", ...opts.env }).map(([k, v]) => `${k}=${v}`);
    const drop = opts.uid ? ["setpriv", `--reuid=${opts.uid}`, `--regid=${opts.gid ?? opts.uid}`, "--clear-groups"] : [];
    return run(["ip", "netns", "exec", this.netns, ...drop, "env", "-i", ...env, ...argv], opts);
  }

  /** Waits until something accepts TCP connections on the pod's address. */
  async waitTcp(port: number, timeoutMs = 30_000, host = this.ip): Promise<void> {
    await waitFor(`${this.name} to accept connections on ${host}:${port}`, async () => (await this.exec(["nc", "-z", "-w", "1", host, String(port)])).code === 0, timeoutMs, 250);
  }

  /** Node loss: every container killed at once, no graceful stop; resolves when all are gone. */
  async kill(): Promise<void> {
    for (const c of this.containers) c.kill();
    await Promise.all(this.containers.map((c) => c.exited));
  }

  /** Network partition: the pod's link goes down (its processes keep running). */
  disconnect(): void {
    sh(["ip", "-n", this.netns, "link", "set", "eth0", "down"]);
  }

  reconnect(): void {
    sh(["ip", "-n", this.netns, "link", "set", "eth0", "up"]);
  }

  private setupScript(dir: string, spec: ContainerSpec): string {
    const root = path.join(dir, "root");
    const q = quote;
    const lines = [
      "set -eu",
      "mount --make-rprivate /",
      // The image: a private, writable copy-on-write view of the host's root filesystem.
      `mount -t overlay overlay -o lowerdir=/,upperdir=${q(path.join(dir, "upper"))},workdir=${q(path.join(dir, "work"))} ${q(root)}`,
      `mount --rbind /dev ${q(root + "/dev")}`,
      `mount -t tmpfs -o size=256m shm ${q(root + "/dev/shm")}`,
      `mount -t proc proc ${q(root + "/proc")}`,
      `mount --rbind /sys ${q(root + "/sys")}`,
      // Fresh /run and /tmp, as in an image (the host's would leak in through the overlay).
      // /run as images have it (0755; a tmpfs defaults to 1777, which OpenDKIM's safe-key check refuses).
      `mount -t tmpfs -o mode=0755 tmpfs ${q(root + "/run")}`,
      `mount -t tmpfs tmpfs ${q(root + "/tmp")}`,
      `chmod 1777 ${q(root + "/tmp")}`,
      // The repository (test clients, node_modules) at its own path, read-only: a checkout under
      // /tmp would otherwise be hidden by the fresh /tmp above.
      `mkdir -p ${q(root + REPO)} && mount --bind ${q(REPO)} ${q(root + REPO)} && mount -o remount,bind,ro ${q(root + REPO)}`,
    ];
    for (const m of spec.mounts) {
      const dst = root + inRoot(m.dst);
      const isFile = fs.statSync(m.src).isFile();
      lines.push(isFile ? `mkdir -p ${q(path.dirname(dst))} && touch ${q(dst)}` : `mkdir -p ${q(dst)}`);
      lines.push(`mount --bind ${q(m.src)} ${q(dst)}`);
      if (m.readOnly) lines.push(`mount -o remount,bind,ro ${q(dst)}`);
    }
    const etc = path.join(dir, "etc");
    fs.mkdirSync(etc, { recursive: true });
    fs.writeFileSync(path.join(etc, "resolv.conf"), resolvConf(this.namespace));
    fs.writeFileSync(path.join(etc, "hosts"), hostsFile(this.ip, [this.fqdn, this.hostname]));
    fs.writeFileSync(path.join(etc, "passwd"), mergeIds(fs.readFileSync("/etc/passwd", "utf8"), spec.passwd ?? []));
    fs.writeFileSync(path.join(etc, "group"), mergeIds(fs.readFileSync("/etc/group", "utf8"), spec.group ?? []));
    for (const f of ["resolv.conf", "hosts", "passwd", "group"]) lines.push(`cp ${q(path.join(etc, f))} ${q(`${root}/etc/${f}`)}`);
    (spec.files ?? []).forEach((f, i) => {
      const dst = q(root + inRoot(f.path));
      lines.push(`mkdir -p ${q(path.dirname(root + inRoot(f.path)))}`);
      if (!f.dir) lines.push(`rm -f ${dst}`);
      if (f.dir) lines.push(`mkdir -p ${dst} && chown ${f.dir.uid}:${f.dir.gid} ${dst}`);
      else if (f.symlink) lines.push(`ln -s ${q(f.symlink)} ${dst}`);
      else {
        const src = path.join(etc, `file-${i}`);
        fs.writeFileSync(src, f.content ?? "");
        lines.push(`cp ${q(src)} ${dst} && chmod ${(f.mode ?? 0o644).toString(8)} ${dst}`);
      }
    });
    lines.push(`hostname ${q(this.hostname)}`);
    if (spec.readOnlyRoot) {
      lines.push(`mount -o remount,bind,ro ${q(root)}`);
      lines.push(`mount -o remount,bind,ro ${q(root + "/run")}`, `mount -o remount,bind,ro ${q(root + "/tmp")}`);
      // A volume mounted at /tmp or /run stays writable: remount it back (its bind is on top).
      for (const m of spec.mounts) if (!m.readOnly && (m.dst === "/tmp" || m.dst === "/run")) lines.push(`mount --bind ${q(m.src)} ${q(root + m.dst)}`);
    }
    lines.push('exec "$@"', "");
    return lines.join("\n");
  }
}

/**
 * A path of the container with the image's symlinks followed inside the container's root, as a
 * runtime resolves mount targets: `/var/run` is a symlink to `/run`, so a volume mounted at
 * /var/run/postgresql belongs on the container's fresh /run, not (through the symlink, resolved
 * by the host) on the host's. The image is the host's root filesystem (the overlay's lower
 * layer), so its links are read there; /run and /tmp are fresh in the container and not followed.
 */
export function inRoot(p: string): string {
  const todo = p.split("/").filter(Boolean);
  const done: string[] = [];
  for (let hops = 0; todo.length; ) {
    const part = todo.shift()!;
    if (part === ".") continue;
    if (part === "..") {
      done.pop();
      continue;
    }
    done.push(part);
    if (done[0] === "run" || done[0] === "tmp") continue;
    let link: string;
    try {
      link = fs.readlinkSync(`/${done.join("/")}`);
    } catch {
      continue; // not a symlink, or not there (created by the setup script)
    }
    if (++hops > 40) throw new Error(`too many levels of symbolic links in ${p}`);
    done.pop();
    if (link.startsWith("/")) done.length = 0;
    todo.unshift(...link.split("/").filter(Boolean));
  }
  return `/${done.join("/")}`;
}

/** As the kubelet writes it: the cluster resolver, the pod namespace's search path, ndots 5. */
function resolvConf(namespace: string): string {
  return `nameserver ${GATEWAY}\nsearch ${namespace}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`;
}

function hostsFile(ip: string, names: (string | undefined)[]): string {
  return `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${ip}\t${names.filter(Boolean).join(" ")}\n`;
}

/** passwd/group: the image's entries win over host entries with the same name or numeric id. */
function mergeIds(host: string, image: string[]): string {
  const key = (l: string) => l.split(":");
  const names = new Set(image.map((l) => key(l)[0]));
  const ids = new Set(image.map((l) => key(l)[2]));
  const kept = host.split("\n").filter((l) => l && !names.has(key(l)[0]) && !ids.has(key(l)[2]));
  return [...kept, ...image].join("\n") + "\n";
}

export interface PodOptions {
  /** Kubernetes namespace (resolver search path). */
  namespace: string;
  /** Pod hostname; default the pod name. */
  hostname?: string;
  /** A StatefulSet pod's governing Service: <hostname>.<subdomain>.<namespace>.svc.cluster.local resolves to it. */
  subdomain?: string;
  /** Service names (short, in the pod's namespace) whose DNS answers include this pod. */
  services?: string[];
}

export class Sandbox {
  readonly dir: string;
  private readonly bridgeNs: string;
  private readonly pods = new Map<string, Pod>();
  private readonly containers: Container[] = [];
  private nextIp = 10;
  private readonly records = { a: new Map<string, Set<string>>(), txt: new Map<string, string[]>(), mx: new Map<string, string>(), servers: [] as string[] };
  private dnsmasq?: ChildProcess;
  private cleaned = false;
  private static seq = 0;

  readonly id: string;

  private constructor(readonly group: string) {
    this.id = `${PREFIX}${process.pid}-${Sandbox.seq++}`;
    this.bridgeNs = `${this.id}-net`;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `daemons-${group}-`));
  }

  /** A fresh sandbox: the bridge namespace and its resolver (names are added as pods appear). */
  static async create(group: string): Promise<Sandbox> {
    sweepStale();
    const sb = new Sandbox(group);
    live.add(sb);
    sh(["ip", "netns", "add", sb.bridgeNs]);
    sh(["ip", "-n", sb.bridgeNs, "link", "set", "lo", "up"]);
    sh(["ip", "-n", sb.bridgeNs, "link", "add", "br0", "type", "bridge"]);
    // A fixed address: a bridge otherwise takes the lowest MAC of its ports, so a new pod's veth can
    // change it, and pods whose ARP entry still holds the old one lose the resolver for half a minute.
    sh(["ip", "-n", sb.bridgeNs, "link", "set", "br0", "address", "02:00:0a:60:00:01"]);
    sh(["ip", "-n", sb.bridgeNs, "addr", "add", `${GATEWAY}/16`, "dev", "br0"]);
    sh(["ip", "-n", sb.bridgeNs, "link", "set", "br0", "up"]);
    await sb.applyDns();
    return sb;
  }

  /** A pod: its own network namespace with an address on the bridge, and DNS names. */
  pod(name: string, opts: PodOptions): Pod {
    if (this.pods.has(name)) throw new Error(`pod ${name} exists`);
    const n = this.nextIp++;
    const ip = `${NET}.${Math.floor(n / 250)}.${n % 250}`;
    const netns = `${this.id}-p${n}`;
    sh(["ip", "netns", "add", netns]);
    sh(["ip", "-n", netns, "link", "set", "lo", "up"]);
    sh(["ip", "link", "add", "eth0", "netns", netns, "type", "veth", "peer", "name", `v${n}`, "netns", this.bridgeNs]);
    sh(["ip", "-n", this.bridgeNs, "link", "set", `v${n}`, "master", "br0", "up"]);
    sh(["ip", "-n", netns, "addr", "add", `${ip}/16`, "dev", "eth0"]);
    sh(["ip", "-n", netns, "link", "set", "eth0", "up"]);
    const hostname = opts.hostname ?? name;
    const fqdn = opts.subdomain ? `${hostname}.${opts.subdomain}.${opts.namespace}.svc.cluster.local` : undefined;
    if (fqdn) this.addA(fqdn, ip);
    for (const s of opts.services ?? []) this.addA(`${s}.${opts.namespace}.svc.cluster.local`, ip);
    // `ip netns exec` (clients next to the pod) reads these instead of the host's files.
    fs.mkdirSync(`/etc/netns/${netns}`, { recursive: true });
    fs.writeFileSync(`/etc/netns/${netns}/resolv.conf`, resolvConf(opts.namespace));
    fs.writeFileSync(`/etc/netns/${netns}/hosts`, hostsFile(ip, [fqdn, hostname]));
    const pod = new Pod(this, name, opts.namespace, ip, netns, hostname, fqdn);
    this.pods.set(name, pod);
    return pod;
  }

  getPod(name: string): Pod {
    const p = this.pods.get(name);
    if (!p) throw new Error(`no pod ${name}`);
    return p;
  }

  /** Adds an address to a DNS name (call applyDns() after a batch of changes). */
  addA(name: string, ip: string): void {
    if (!this.records.a.has(name)) this.records.a.set(name, new Set());
    this.records.a.get(name)!.add(ip);
  }

  removeA(name: string, ip?: string): void {
    if (ip) this.records.a.get(name)?.delete(ip);
    else this.records.a.delete(name);
  }

  addTxt(name: string, value: string): void {
    this.records.txt.set(name, [...(this.records.txt.get(name) ?? []), value]);
  }

  addMx(domain: string, host: string): void {
    this.records.mx.set(domain, host);
  }

  /** Forwards a zone to another server in the sandbox (e.g. rbldnsd for a DNSBL): "zone/ip#port". */
  forwardZone(zone: string, server: string): void {
    this.records.servers.push(`/${zone}/${server}`);
  }

  private dnsQueue: Promise<void> = Promise.resolve();

  /**
   * (Re)starts the resolver with the current records. Names outside them are NXDOMAIN: nothing
   * leaves the sandbox. Calls are serialised: pods started side by side each restart it, and two
   * resolvers must never race for the bridge's port.
   */
  applyDns(): Promise<void> {
    const next = this.dnsQueue.then(() => this.restartDns());
    this.dnsQueue = next.catch(() => undefined);
    return next;
  }

  private async restartDns(): Promise<void> {
    const conf = [
      "no-resolv",
      "no-hosts",
      "no-poll",
      "bind-interfaces",
      `listen-address=${GATEWAY}`,
      "user=root",
      "pid-file=",
      "log-facility=-",
      ...[...this.records.a].flatMap(([name, ips]) => [...ips].map((ip) => `host-record=${name},${ip}`)),
      ...[...this.records.txt].flatMap(([name, values]) => values.map((v) => `txt-record=${name},"${v.replace(/"/g, '\\"')}"`)),
      ...[...this.records.mx].map(([d, h]) => `mx-host=${d},${h},10`),
      ...this.records.servers.map((s) => `server=${s}`),
      // Anything else: no such name (never a lookup outside the sandbox).
      "address=/#/",
    ].join("\n");
    const file = path.join(this.dir, "dnsmasq.conf");
    fs.writeFileSync(file, conf + "\n");
    if (this.dnsmasq && this.dnsmasq.exitCode === null && this.dnsmasq.signalCode === null) {
      const old = this.dnsmasq;
      const gone = new Promise((r) => old.on("exit", r));
      old.kill("SIGKILL");
      await gone;
      // Nothing else runs in the bridge namespace: whatever is left there is the old resolver
      // (or a child of it) still holding port 53.
      await waitFor("the old resolver to go", () => {
        const pids = sh(["ip", "netns", "pids", this.bridgeNs], { allowFail: true }).stdout.split(/\s+/).filter(Boolean);
        for (const pid of pids) {
          try {
            process.kill(Number(pid), "SIGKILL");
          } catch {
            // gone
          }
        }
        return pids.length === 0;
      }, 5000, 50);
    }
    // A restart can find the old listening socket not yet released: try again briefly.
    for (let attempt = 1; ; attempt++) {
      this.dnsmasq = spawn("setpriv", ["--pdeathsig", "KILL", "ip", "netns", "exec", this.bridgeNs, "dnsmasq", "--keep-in-foreground", `--conf-file=${file}`], { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      this.dnsmasq.stderr!.on("data", (d) => (err += d));
      try {
        await waitFor("dnsmasq to start", () => {
          if (this.dnsmasq!.exitCode !== null) throw new Error(`dnsmasq exited: ${err}`);
          return /started, version/.test(err);
        }, 5000, 20);
        return;
      } catch (e) {
        if (attempt >= 5 || !/Address already in use/.test(err)) throw e;
        await sleep(200);
      }
    }
  }

  track(c: Container): void {
    this.containers.push(c);
  }

  /** The last lines of every container's log (for a failing test's message). */
  logs(n = 30): string {
    return this.containers.map((c) => `--- ${c.name}${c.running ? "" : ` (exited ${c.exitCode})`}\n${c.tail(n)}`).join("\n");
  }

  /** Kills everything this sandbox started and removes its namespaces and files. Safe to call twice. */
  async cleanup(keepFiles = process.env.DAEMONS_KEEP === "1"): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    live.delete(this);
    for (const c of this.containers) c.kill();
    await Promise.all(this.containers.map((c) => Promise.race([c.exited, idle(5000)])));
    this.dnsmasq?.kill("SIGKILL");
    for (const p of this.pods.values()) deleteNetns(p.netns);
    deleteNetns(this.bridgeNs);
    if (!keepFiles) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Synchronous last resort (process exit): kill and delete, no waiting. */
  cleanupSync(): void {
    for (const c of this.containers) c.kill();
    this.dnsmasq?.kill("SIGKILL");
    for (const p of this.pods.values()) deleteNetns(p.netns);
    deleteNetns(this.bridgeNs);
  }
}

const live = new Set<Sandbox>();
process.on("exit", () => {
  for (const sb of live) sb.cleanupSync();
});
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    for (const sb of live) sb.cleanupSync();
    process.exit(130);
  });
}
