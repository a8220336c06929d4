// Reads the stack's config, merges it over the environment defaults and validates it before a
// single resource exists. Every problem is reported at once with its key path, the rule and
// the value given; unknown keys are errors with a did-you-mean suggestion.
import * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import { ENVIRONMENTS } from "./common";
import type { Environment } from "./common";
import { withAppTemplates } from "./app";
import { ROOT_KEYS, defaultsFor, requiredSecrets, rootSchema } from "./schema";
import type { PlatformConfig } from "./schema";

// Internal to @pulumi/pulumi but stable: tells secret config apart without decrypting it into our tree.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { isConfigSecret } = require("@pulumi/pulumi/runtime/config") as { isConfigSecret(key: string): boolean };

export class ConfigError extends pulumi.RunError {
  constructor(
    readonly stack: string,
    readonly problems: string[],
  ) {
    super(
      `Invalid configuration for stack "${stack}" (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

export interface LoadedConfig {
  config: PlatformConfig;
  /** A user-supplied secret config value, still a Pulumi secret. */
  secret(key: string): pulumi.Output<string>;
}

/** Loads and validates the running stack's configuration (throws ConfigError). */
export function loadConfig(): LoadedConfig {
  const project = pulumi.getProject();
  const stack = pulumi.getStack();
  const all = pulumi.runtime.allConfig();
  const prefix = `${project}:`;
  const raw: Record<string, unknown> = {};
  const secretKeys = new Set<string>();
  for (const [key, value] of Object.entries(all)) {
    if (!key.startsWith(prefix)) continue; // provider namespaces (kubernetes:...) are not ours
    const name = key.slice(prefix.length);
    if (isConfigSecret(key)) secretKeys.add(name);
    else raw[name] = decode(value);
  }
  const config = parseConfig(raw, { stack, secretKeys });
  const pc = new pulumi.Config();
  return { config, secret: (key) => pc.requireSecret(key) };
}

export interface ParseOptions {
  stack: string;
  /** Names of the secret config keys that are set (their values are never read here). */
  secretKeys?: Set<string>;
}

/** Pure validation: stack values (already decoded) -> typed config, or ConfigError listing every problem. */
export function parseConfig(raw: Record<string, unknown>, opts: ParseOptions): PlatformConfig {
  const problems: string[] = [];
  const secretKeys = opts.secretKeys ?? new Set<string>();
  const stackEnv = (ENVIRONMENTS as readonly string[]).includes(opts.stack) ? (opts.stack as Environment) : undefined;
  const requested = raw.environment ?? stackEnv;
  const env: Environment = (ENVIRONMENTS as readonly unknown[]).includes(requested) ? (requested as Environment) : "prod";
  if (requested === undefined) {
    problems.push(`environment: is required when the stack name is not one of ${ENVIRONMENTS.join(", ")}, got nothing`);
  }

  // Unknown top-level keys are set aside: they may be secret config typed in plain text.
  const known = ROOT_KEYS;
  const strays = Object.keys(raw).filter((k) => !known.includes(k));
  const plain = Object.fromEntries(Object.entries(raw).filter(([k]) => known.includes(k)));
  // New service entries and worker pools start from their kind's template (config/app.ts).
  const merged = withAppTemplates(env, deepMerge(defaultsFor(env), plain) as Record<string, unknown>, deepMerge);
  const result = rootSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) problems.push(describe(issue, merged));
  }

  // Secret config: what the configuration asks for must be set (as a secret); nothing else may be.
  const wanted = result.success ? requiredSecrets(result.data) : new Map<string, string>();
  for (const key of strays) {
    if (wanted.has(key)) problems.push(`${key}: must be set with --secret, not as plain text in the stack file`);
    else problems.push(unknownKey([], key, known));
  }
  for (const [key, by] of wanted) {
    if (!secretKeys.has(key)) {
      problems.push(`${key}: is a required secret (asked for by ${by}); set it with \`pulumi config set --secret ${key} <value>\`, got nothing`);
    }
  }
  for (const key of secretKeys) {
    if (!wanted.has(key) && result.success) problems.push(`${key}: secret config that nothing uses; remove it or list it in secrets.external`);
  }

  if (problems.length > 0) throw new ConfigError(opts.stack, problems);
  return result.data as PlatformConfig;
}

/** Objects merge key by key; arrays and scalars from the stack replace the default. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  if (isPlainObject(base) && isPlainObject(over)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = deepMerge(base[k], v);
    return out;
  }
  return over;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Pulumi hands structured values over as JSON strings and scalars as strings. */
function decode(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

function describe(issue: z.core.$ZodIssue, merged: unknown): string {
  const path = issue.path.map(String);
  if (issue.code === "unrecognized_keys") {
    const known = Object.keys(valueAt(merged, path) ?? {}).filter((k) => !issue.keys.includes(k));
    return issue.keys.map((k) => unknownKey(path, k, known)).join("\n  - ");
  }
  if (issue.code === "invalid_key") {
    return `${path.join(".")}: ${issue.issues.map((i) => i.message).join("; ")} (as a key)`;
  }
  const where = path.length ? path.join(".") : "(root)";
  const given = valueAt(merged, path);
  return `${where}: ${issue.message}, got ${show(given)}`;
}

function unknownKey(path: string[], key: string, known: string[]): string {
  const near = nearest(key, known);
  return `${[...path, key].join(".")}: unknown key${near ? `; did you mean "${near}"?` : ""} (known keys: ${known.join(", ")})`;
}

function valueAt(root: unknown, path: string[]): unknown {
  let node = root;
  for (const p of path) node = isPlainObject(node) || Array.isArray(node) ? (node as Record<string, unknown>)[p] : undefined;
  return node;
}

function show(v: unknown): string {
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** The closest known key by edit distance, if it is close enough to be a typo. */
export function nearest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}
