// Runs the real program (index.ts) for a stack with that stack's real Pulumi.<stack>.yaml under
// Pulumi mocks, recording every registered resource with its inputs, parent, secret paths and
// resource options. Used by the tests and by scripts/render.ts.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { deepMerge, parseConfig } from "../config/loader";
import type { PlatformConfig } from "../config/schema";

/* eslint-disable @typescript-eslint/no-require-imports */
const { MockMonitor } = require("@pulumi/pulumi/runtime/mocks");
const settings = require("@pulumi/pulumi/runtime/settings");
const state = require("@pulumi/pulumi/runtime/state");
/* eslint-enable @typescript-eslint/no-require-imports */

export const ROOT = path.resolve(__dirname, "..");
export const PROJECT: string = parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")).name;
export const STACKS = ["dev", "staging", "prod"] as const;
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const SIG_KEY = "4dabf18193072939515e22adb298388d";

export interface Recorded {
  type: string;
  name: string;
  urn: string;
  custom: boolean;
  inputs: any;
  /** Dotted paths (into inputs) of values that were Pulumi secrets when registered. */
  secretPaths: string[];
  /** The outputs the mock engine returned (generated passwords, keys, auto-names). */
  state: any;
  parent: string;
  provider: string;
  options: {
    protect: boolean;
    retainOnDelete: boolean;
    deleteBeforeReplace: boolean;
    dependsOn: string[];
    ignoreChanges: string[];
    replaceOnChanges: string[];
  };
}

export interface Evaluation {
  stack: string;
  config: Record<string, string>;
  /** Config keys that were set as secrets. */
  secretKeys: string[];
  resources: Recorded[];
  outputs: Record<string, unknown>;
  /** Stack output names whose value is a Pulumi secret. */
  secretOutputs: string[];
  error?: Error;
}

export interface EvaluateOptions {
  stack: string;
  /** Use this stack file instead of Pulumi.<stack>.yaml (examples). */
  file?: string;
  /** Dotted-path overrides applied to the stack file's values: { "services.api.replicas": 2 }; undefined deletes. */
  set?: Record<string, unknown>;
  /** Secret config keys and values (as `pulumi config set --secret`). */
  secrets?: Record<string, string>;
  preview?: boolean;
  /** Engine behaviour to use instead of `mocks` (the daemon tier generates real keys and hashes). */
  mocks?: pulumi.runtime.Mocks;
}

/** The stack file's config for this project, as plain values (objects stay objects). */
export function stackValues(file: string): Record<string, unknown> {
  const doc = parse(fs.readFileSync(path.resolve(ROOT, file), "utf8")) ?? {};
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    if (value && typeof value === "object" && "secure" in (value as object)) throw new Error(`${file}: ${key} holds an encrypted secret; stack files must not`);
    out[key] = value;
  }
  return out;
}

function applySet(values: Record<string, unknown>, set: Record<string, unknown>): void {
  for (const [dotted, value] of Object.entries(set)) {
    const [top, ...rest] = dotted.split(".");
    const key = `${PROJECT}:${top}`;
    if (rest.length === 0) {
      if (value === undefined) delete values[key];
      else values[key] = value;
      continue;
    }
    let node = (values[key] ??= {}) as Record<string, any>;
    for (const seg of rest.slice(0, -1)) node = node[seg] ??= {};
    const last = rest[rest.length - 1];
    if (value === undefined) delete node[last];
    else node[last] = value;
  }
}

/** Pulumi passes config to programs as strings; objects as JSON. */
function toPulumiConfig(values: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
}

function unwrap(v: any, at: string, secrets: string[]): any {
  if (Array.isArray(v)) return v.map((x, i) => unwrap(x, at ? `${at}.${i}` : String(i), secrets));
  if (v && typeof v === "object") {
    if (v[SIG_KEY] === SECRET_SIG) {
      secrets.push(at);
      return unwrap(v.value, at, secrets);
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrap(x, at ? `${at}.${k}` : k, secrets)]));
  }
  return v;
}

/** Inputs as plain values: secret wrappers removed (what a provider would see). */
export function plainInputs(v: any): any {
  return unwrap(v, "", []);
}

class RecordingMonitor extends MockMonitor {
  constructor(
    mocks: pulumi.runtime.Mocks,
    private readonly sink: Recorded[],
  ) {
    super(mocks);
  }

  async registerResource(req: any, callback: any) {
    const secretPaths: string[] = [];
    const inputs = unwrap(req.getObject()?.toJavaScript() ?? {}, "", secretPaths);
    const type: string = req.getType();
    const name: string = req.getName();
    const parent: string = req.getParent();
    this.sink.push({
      type,
      name,
      urn: (this as any).newUrn(parent, type, name),
      custom: req.getCustom(),
      inputs,
      secretPaths,
      state: {},
      parent,
      provider: req.getProvider(),
      options: {
        protect: !!req.getProtect(),
        retainOnDelete: !!req.getRetainondelete(),
        deleteBeforeReplace: !!req.getDeletebeforereplace(),
        dependsOn: req.getDependenciesList(),
        ignoreChanges: req.getIgnorechangesList(),
        replaceOnChanges: req.getReplaceonchangesList(),
      },
    });
    const record = this.sink[this.sink.length - 1];
    return super.registerResource(req, (err: unknown, resp: any) => {
      if (resp) record.state = resp.getObject()?.toJavaScript() ?? {};
      callback(err, resp);
    });
  }
}

/** Engine-like behaviour the tests depend on: auto-names, random and TLS outputs. */
export const mocks: pulumi.runtime.Mocks = {
  newResource(args) {
    const s: any = { ...args.inputs };
    const id = `${args.name}-id`;
    if (args.type.startsWith("kubernetes:") && !args.type.startsWith("kubernetes:helm") && args.custom) {
      s.metadata = { ...(s.metadata ?? {}) };
      // Kubernetes auto-naming: logical name plus a random suffix, unless a name was given.
      s.metadata.name ??= `${args.name}-${hash(args.name).slice(0, 8)}`;
    }
    switch (args.type) {
      case "random:index/randomPassword:RandomPassword":
        s.result = `pw${hash(args.name)}`.slice(0, args.inputs.length ?? 32);
        // Like the provider: a bcrypt hash of the result (cost 10), used for Dovecot's {BLF-CRYPT}.
        s.bcryptHash = `$2a$10$${hash(`bcrypt${args.name}`).slice(0, 53)}`;
        break;
      case "random:index/randomBytes:RandomBytes": {
        // As many bytes as asked for (a keyfile wants hundreds), deterministic per name.
        const length = args.inputs.length ?? 32;
        const buf = Buffer.from(hash(args.name).repeat(Math.ceil(length / 32) + 1).slice(0, length * 2), "hex");
        s.base64 = buf.toString("base64");
        s.hex = buf.toString("hex");
        break;
      }
      case "tls:index/privateKey:PrivateKey":
        s.privateKeyPem = `-----BEGIN RSA PRIVATE KEY-----\nMOCK${hash(args.name)}\n-----END RSA PRIVATE KEY-----\n`;
        s.privateKeyPemPkcs8 = `-----BEGIN PRIVATE KEY-----\nMOCK${hash(args.name)}\n-----END PRIVATE KEY-----\n`;
        s.publicKeyPem = `-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA${hash(args.name)}IDAQAB\n-----END PUBLIC KEY-----\n`;
        break;
      case "tls:index/selfSignedCert:SelfSignedCert":
        s.certPem = `-----BEGIN CERTIFICATE-----\nMOCK${hash(args.name)}\n-----END CERTIFICATE-----\n`;
        break;
      case "command:local:Command":
        s.stdout = "";
        s.stderr = "";
        break;
    }
    return { id, state: s };
  },
  call: () => ({}),
};

function hash(s: string): string {
  return require("crypto").createHash("sha256").update(s).digest("hex"); // eslint-disable-line @typescript-eslint/no-require-imports
}

/**
 * Forget the entry point so requiring it runs the program again. The program's other modules hold
 * no module-level state (everything flows from loadConfig() in index.ts), so they are reused; set
 * HARNESS_FRESH_MODULES=1 to reload them all when in doubt.
 */
function clearProgramModules(): void {
  const entry = path.join(ROOT, "index.ts");
  for (const key of Object.keys(require.cache)) {
    const ours = key.startsWith(ROOT + path.sep) && !key.includes(`${path.sep}node_modules${path.sep}`) && !key.includes(`${path.sep}tests${path.sep}`);
    if (key === entry || (ours && process.env.HARNESS_FRESH_MODULES === "1")) delete require.cache[key];
  }
}

let running = Promise.resolve();

/** Evaluates the real program for one stack. Evaluations are serialised: the runtime is global. */
export function evaluate(opts: EvaluateOptions): Promise<Evaluation> {
  const result = running.then(() => evaluateNow(opts));
  running = result.then(
    () => undefined,
    () => undefined,
  );
  return result;
}

let evaluations = 0;
let evaluationMs = 0;
if (process.env.HARNESS_STATS) process.on("exit", () => console.error(`harness: ${evaluations} evaluations, ${evaluationMs.toFixed(0)} ms`));

async function evaluateNow(opts: EvaluateOptions): Promise<Evaluation> {
  const started = performance.now();
  try {
    return await evaluateOnce(opts);
  } finally {
    evaluations++;
    evaluationMs += performance.now() - started;
  }
}

async function evaluateOnce(opts: EvaluateOptions): Promise<Evaluation> {
  const values = stackValues(opts.file ?? `Pulumi.${opts.stack}.yaml`);
  if (opts.set) applySet(values, opts.set);
  const config = toPulumiConfig(values);
  const secretKeys = Object.keys(opts.secrets ?? {}).map((k) => `${PROJECT}:${k}`);
  for (const [k, v] of Object.entries(opts.secrets ?? {})) config[`${PROJECT}:${k}`] = v;

  const resources: Recorded[] = [];
  const mockFailures: Error[] = [];
  // A mock that throws would leave the program waiting forever: record the error and answer anyway.
  const engine = opts.mocks ?? mocks;
  const guarded: pulumi.runtime.Mocks = {
    newResource: (args) => {
      try {
        return engine.newResource(args);
      } catch (e) {
        mockFailures.push(new Error(`mock engine failed on ${args.type} ${args.name}: ${(e as Error).message}`));
        return { id: `${args.name}-id`, state: args.inputs };
      }
    },
    call: (args) => engine.call(args),
  };
  pulumi.runtime.setAllConfig(config, secretKeys);
  settings.setMockOptions(new RecordingMonitor(guarded, resources), PROJECT, opts.stack, opts.preview ?? false);
  const store = state.getStore();
  Object.assign(store, { supportsSecrets: true, supportsResourceReferences: true, supportsOutputValues: false, supportsDeletedWith: true, supportsAliasSpecs: true });

  clearProgramModules();
  // The runtime captures a stack trace for every promise and resource; with tsx's source maps that
  // dominates evaluation time. Errors keep their messages, which is what the tests read.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  process.setSourceMapsEnabled(false);
  const evaluation: Evaluation = { stack: opts.stack, config, secretKeys, resources, outputs: {}, secretOutputs: [] };
  const failures: unknown[] = [];
  const onRejection = (reason: unknown) => failures.push(reason);
  process.on("unhandledRejection", onRejection);
  try {
    const program = require(path.join(ROOT, "index.ts")); // eslint-disable-line @typescript-eslint/no-require-imports
    await settings.waitForRPCs();
    for (const [key, value] of Object.entries(program as Record<string, unknown>)) {
      const out = pulumi.output(value as pulumi.Input<unknown>) as any;
      evaluation.outputs[key] = await out.promise();
      if (await out.isSecret) evaluation.secretOutputs.push(key);
    }
    await settings.waitForRPCs();
  } catch (err) {
    evaluation.error = err as Error;
  } finally {
    process.off("unhandledRejection", onRejection);
    Error.stackTraceLimit = stackTraceLimit;
    process.setSourceMapsEnabled(true);
  }
  if (mockFailures.length) evaluation.error = mockFailures[0];
  else if (!evaluation.error && failures.length) evaluation.error = failures[0] as Error;
  return evaluation;
}

const cache = new Map<string, Promise<Evaluation>>();

/** One evaluation per stack file, shared by every test file. */
export function evaluateStack(stack: string, file?: string): Promise<Evaluation> {
  const key = file ?? stack;
  if (!cache.has(key)) cache.set(key, evaluate({ stack, file }));
  return cache.get(key)!;
}

// ---------- queries over an evaluation ----------

export type K8sObject = any;

/** Kubernetes objects registered (apiVersion/kind/metadata/...), with their record. */
export function k8sObjects(ev: Evaluation): { obj: K8sObject; rec: Recorded }[] {
  return ev.resources.filter((r) => r.custom && r.type.startsWith("kubernetes:") && !r.type.startsWith("pulumi:") && r.inputs.kind).map((rec) => ({ obj: rec.inputs, rec }));
}

export function objectsOfKind(ev: Evaluation, kind: string): K8sObject[] {
  return k8sObjects(ev)
    .filter(({ obj }) => obj.kind === kind)
    .map(({ obj }) => obj);
}

export function findObject(ev: Evaluation, kind: string, name: string, namespace?: string): K8sObject {
  const found = objectsOfKind(ev, kind).filter((o) => o.metadata?.name === name && (namespace === undefined || o.metadata?.namespace === namespace));
  if (found.length !== 1) throw new Error(`expected one ${kind} ${namespace ?? "*"}/${name} in ${ev.stack}, found ${found.length}`);
  return found[0];
}

export function recordOf(ev: Evaluation, kind: string, name: string): Recorded {
  const rec = k8sObjects(ev).find(({ obj }) => obj.kind === kind && obj.metadata?.name === name)?.rec;
  if (!rec) throw new Error(`no ${kind} ${name} in ${ev.stack}`);
  return rec;
}

export function ok(ev: Evaluation): Evaluation {
  if (ev.error) throw ev.error;
  return ev;
}

/** Was the input at this dotted path (or an object containing it) a Pulumi secret when registered? */
export function isSecretAt(rec: Recorded, dotted: string): boolean {
  return rec.secretPaths.some((p) => p === "" || dotted === p || dotted.startsWith(`${p}.`));
}

/** The values the mock engine generated (passwords, random bytes, private keys): what must never leak. */
export function generatedValues(ev: Evaluation): string[] {
  return ev.resources.flatMap((r) => {
    if (r.type === "random:index/randomPassword:RandomPassword") return [r.state.result];
    if (r.type === "random:index/randomBytes:RandomBytes") return [r.state.base64];
    if (r.type === "tls:index/privateKey:PrivateKey") return [r.state.privateKeyPem.split("\n")[1]];
    return [];
  });
}

/**
 * The validated config a stack file (plus dotted overrides) or an evaluation stands for, exactly as
 * the program sees it: expectations come from here, never from the output.
 */
export function configOf(source: string | Evaluation, overrides: Record<string, unknown> = {}): PlatformConfig {
  const values = typeof source === "string" ? stackValues(`Pulumi.${source}.yaml`) : undefined;
  const raw: Record<string, unknown> = {};
  const secretKeys = new Set<string>();
  const entries = values ? Object.entries(values) : Object.entries((source as Evaluation).config).map(([k, v]) => [k, decodeConfig(v)] as const);
  for (const [key, value] of entries) {
    if (!key.startsWith(`${PROJECT}:`)) continue;
    const name = key.slice(PROJECT.length + 1);
    if (typeof source !== "string" && (source as Evaluation).secretKeys.includes(key)) secretKeys.add(name);
    else raw[name] = value;
  }
  for (const [k, v] of Object.entries(overrides)) raw[k] = deepMerge(raw[k], v);
  return parseConfig(raw, { stack: typeof source === "string" ? source : source.stack, secretKeys });
}

function decodeConfig(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

/** The pod spec inside a workload object (Deployment, StatefulSet, Job, CronJob). */
export function podSpec(obj: K8sObject): any {
  return obj.kind === "CronJob" ? obj.spec.jobTemplate.spec.template.spec : obj.spec.template.spec;
}

/** A container of a workload by name, or its first container. */
export function container(obj: K8sObject, name?: string): any {
  const cs = podSpec(obj).containers;
  const c = name ? cs.find((x: any) => x.name === name) : cs[0];
  if (!c) throw new Error(`no container ${name ?? "(first)"} in ${obj.kind}/${obj.metadata.name}`);
  return c;
}

/**
 * Evaluates a configuration that must be refused and returns the error message. Fails when it was
 * accepted, or when anything was registered before the error (a half-deployed stack).
 */
export async function rejection(opts: EvaluateOptions): Promise<string> {
  const ev = await evaluate(opts);
  if (!ev.error) throw new Error(`configuration was accepted: ${JSON.stringify(opts.set ?? {})}`);
  if (ev.resources.length > 0) throw new Error(`${ev.resources.length} resources were registered before the error: ${ev.error.message}`);
  return ev.error.message;
}
