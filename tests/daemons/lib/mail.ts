// The mail tier for the daemon groups (mail, mail-abuse): render a stack, publish its DNS zone,
// start the Postfix and Dovecot pods from their StatefulSets, and talk to them with the clients in
// clients/mail_client.py as the app and the internet would.
import { expect } from "chai";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { PORTS } from "../../../components/lib/ports";
import type { PlatformConfig } from "../../../config/schema";
import { configOf } from "../../harness";
import type { Evaluation } from "../../harness";
import { issue, testCa } from "./cert-manager";
import { object, objectsOf, renderReal, secretData, startPod, waitReady, withObjects } from "./kube";
import type { RunningPod, StartOptions as PodStartOptions } from "./kube";
import type { Pod, Sandbox } from "./sandbox";
export const CLIENTS = path.join(__dirname, "..", "clients");
export const PY = "/usr/bin/python3";


export const token = () => crypto.randomBytes(6).toString("hex");

/** A running mail tier and what a client needs to talk to it. */
export interface Mail {
  ev: Evaluation;
  cfg: PlatformConfig;
  /** Mail namespace and domain, from config. */
  ns: string;
  domain: string;
  postfix: RunningPod;
  dovecot: RunningPod[];
  /** A pod in the app namespace: where the app's submission client runs. */
  client: Pod;
  /** Another client address (wrong passwords come from here). */
  intruder: Pod;
  /** Stack output mailUserPasswords. */
  passwords: Record<string, string>;
  /** The app's Secret mail-submission (SMTP_HOST, SMTP_USER, SMTP_PASSWORD, SMTP_TLS_SERVER_NAME, ...). */
  app: Record<string, string>;
  /** Trust anchor and name for verifying the mail certificate (as the app verifies STARTTLS). */
  tls: { cafile: string; servername: string };
  /** Set when a pod did not become ready; the first test reports it. */
  notReady?: Error;
}

export interface StartOptions {
  stack: "dev" | "prod";
  set?: Record<string, unknown>;
  secrets?: Record<string, string>;
  /** Dovecot replicas to start (ordinals 0..n-1); default 1. */
  dovecotReplicas?: number;
  /** Changes to the Postfix pod's containers (e.g. a CA its image would trust). */
  adjustPostfix?: PodStartOptions["adjust"];
  /** Called after the zone is published and before the pods start (extra DNS records, a DNSBL). */
  beforePods?: (sb: Sandbox) => Promise<void> | void;
}

/** The containers of the Postfix pod whose readiness the tier waits for (clamd only when enabled). */
export const POSTFIX_CONTAINERS = ["postfix", "rspamd", "redis", "exporter"];

/**
 * What the operator pastes into the domain's zone (stack output mailDnsZone), answered by the
 * sandbox's resolver: TXT records (the DKIM key among them, its value split into 255-character
 * strings that resolvers join again) and the MX.
 */
export function publishZone(sb: Sandbox, zone: string): void {
  for (const line of zone.trim().split("\n")) {
    const m = /^(\S+)\.\s+\d+\s+IN\s+(TXT|MX)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`unexpected zone line: ${line}`);
    const [, name, type, value] = m;
    if (type === "TXT") sb.addTxt(name, [...value.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((q) => q[1].replace(/\\(.)/g, "$1")).join(""));
    else sb.addMx(name, value.split(/\s+/)[1].replace(/\.$/, ""));
  }
}

/**
 * Renders the stack, publishes its DNS zone, starts Dovecot and Postfix from their StatefulSets
 * and waits for every readiness probe. Postfix runs one replica: prod's second is an identical,
 * independent MTA with its own queue.
 */
export async function startMail(sb: Sandbox, opts: StartOptions): Promise<Mail> {
  let ev = await renderReal({ stack: opts.stack, set: opts.set, secrets: opts.secrets });
  const cfg = configOf(ev);
  const ns = cfg.platform.mailNamespace;
  const domain = cfg.mail.domain!;
  let cafile: string;
  const certificates = objectsOf(ev, "Certificate").filter((c) => c.metadata.namespace === ns);
  if (certificates.length) {
    // Test fixture: with an issuer, cert-manager writes Secret mail-tls from the rendered Certificate.
    // No cert-manager runs here, so a test CA issues what the Certificate asks for.
    const ca = testCa(path.join(sb.dir, "ca"));
    ev = withObjects(ev, certificates.map((c) => issue(c, ca)));
    cafile = ca.file;
  } else {
    // dev: the generated self-signed certificate is its own trust anchor.
    cafile = path.join(sb.dir, "mail-tls.crt");
    fs.writeFileSync(cafile, secretData(ev, "mail-tls", ns)["tls.crt"]);
  }
  const app = secretData(ev, "mail-submission", cfg.platform.namespace);
  publishZone(sb, String(ev.outputs.mailDnsZone));
  if (opts.beforePods) await opts.beforePods(sb);
  const dovecot: RunningPod[] = [];
  for (let i = 0; i < (opts.dovecotReplicas ?? 1); i++) dovecot.push(await startPod(sb, ev, object(ev, "StatefulSet", "dovecot", ns), { ordinal: i }));
  const postfix = await startPod(sb, ev, object(ev, "StatefulSet", "postfix", ns), { adjust: opts.adjustPostfix });
  const client = sb.pod("app-client", { namespace: cfg.platform.namespace });
  const intruder = sb.pod("intruder", { namespace: cfg.platform.namespace });
  await sb.applyDns();
  const mail: Mail = { ev, cfg, ns, domain, postfix, dovecot, client, intruder, passwords: ev.outputs.mailUserPasswords as Record<string, string>, app, tls: { cafile, servername: app.SMTP_TLS_SERVER_NAME } };
  try {
    await Promise.all([...dovecot.map((d) => waitReady(d, "dovecot", 30_000)), ...POSTFIX_CONTAINERS.map((c) => waitReady(postfix, c))]);
  } catch (e) {
    mail.notReady = e as Error;
  }
  return mail;
}

/** Runs clients/mail_client.py in the client pod; passwords travel in the environment. */
export async function mailClient(m: Mail, cmd: "smtp" | "imap" | "pop3" | "raw" | "imap_failures", opts: Record<string, unknown>, env: Record<string, string> = {}): Promise<any> {
  const r = await m.client.exec([PY, path.join(CLIENTS, "mail_client.py"), cmd, JSON.stringify(opts)], { env, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`mail_client.py ${cmd} exited ${r.code}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}

export interface Step {
  step: string;
  code?: number;
  text?: string;
  features?: string[];
  tls?: { version: string; san: string[] };
  error?: string;
  /** When the step began (seconds since the epoch) and how long it took. */
  t?: number;
  ms?: number;
}

/** The replies to each step of an SMTP session, by step name (repeated steps in order). */
export function steps(result: { steps: Step[] }): (name: string, nth?: number) => Step {
  return (name, nth = 0) => {
    const hit = result.steps.filter((s) => s.step === name)[nth];
    if (!hit) throw new Error(`no reply to ${name} #${nth}: ${JSON.stringify(result)}`);
    return hit;
  };
}

export const postfixHost = (m: Mail) => `postfix.${m.ns}.svc.cluster.local`;
export const dovecotHost = (m: Mail) => `dovecot.${m.ns}.svc.cluster.local`;
export const address = (m: Mail, user: string) => `${user}@${m.domain}`;

/** Authenticated submission as the app sends (587 STARTTLS, or 465): one message, every reply kept. */
export async function submit(m: Mail, o: { user: string; password: string; from?: string; to: string[]; subject: string; port?: number }): Promise<{ steps: Step[]; greeting: string[] }> {
  const port = o.port ?? PORTS.postfix.submission;
  const implicit = port === PORTS.postfix.smtps;
  const from = o.from ?? o.user;
  return mailClient(
    m,
    "smtp",
    {
      host: postfixHost(m),
      port,
      tls: implicit ? "implicit" : "starttls",
      ...m.tls,
      steps: [
        ["ehlo"],
        ...(implicit ? [] : [["starttls"], ["ehlo"]]),
        ["auth", o.user, "env:PW"],
        ["mail", from],
        ...o.to.map((t) => ["rcpt", t]),
        ["data", { from, to: o.to.join(", "), subject: o.subject }],
        ["quit"],
      ],
    },
    { PW: o.password },
  );
}

/** Reads the newest message whose Subject holds `find` over IMAP (waits for delivery). */
export async function imapRead(m: Mail, o: { user: string; find: string; port?: number; host?: string }): Promise<any> {
  const port = o.port ?? PORTS.dovecot.imap;
  return mailClient(
    m,
    "imap",
    { host: o.host ?? dovecotHost(m), port, tls: port === PORTS.dovecot.imaps ? "implicit" : "starttls", ...m.tls, user: address(m, o.user), password: "env:PW", find: o.find, wait: 20 },
    { PW: m.passwords[o.user] },
  );
}

/** Queue id from Postfix's "250 2.0.0 Ok: queued as <id>". */
export function queueId(reply: Step): string {
  const id = /queued as (\w+)/.exec(reply.text ?? "")?.[1];
  if (!id) throw new Error(`message not queued: ${JSON.stringify(reply)}`);
  return id;
}

/** Verifies a message's DKIM signature in the client pod: the key comes from the sandbox DNS. */
export async function dkimVerify(sb: Sandbox, m: Mail, message: Buffer): Promise<{ verified: boolean; signature?: Record<string, string>; log: string[] }> {
  const file = path.join(sb.dir, `message-${token()}.eml`);
  fs.writeFileSync(file, message);
  const r = await m.client.exec([PY, path.join(CLIENTS, "mail_client.py"), "dkim", file]);
  if (r.code !== 0) throw new Error(`dkim check exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** The test the whole describe depends on: every pod came up. */
export function startsTest(get: () => Mail) {
  it("starts Postfix (with Rspamd, its Redis and the exporter) and Dovecot from the rendered StatefulSets; every readiness probe passes", () => {
    const m = get();
    if (m.notReady) throw m.notReady;
    for (const c of POSTFIX_CONTAINERS) expect(m.postfix.containers[c].running, c).to.equal(true);
    for (const d of m.dovecot) expect(d.containers.dovecot.running).to.equal(true);
  });
}
