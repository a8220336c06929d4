// Manifest diff: what a change does to the Kubernetes objects, from two offline renders (`npm run
// render`), grouped per object (added, removed, changed) with a unified diff of each. Needs no
// cluster and no credentials, so the pull-request workflow runs it for forks too and posts it as
// one comment per PR, next to `pulumi preview`.
//
//   npm run manifest-diff -- <base-root> <head-root> [--markdown] [--out FILE] [stack ...]
//
// Each root holds one directory per stack as `npm run render -- <stack> <root>/<stack>` writes it.
// Secret values are masked again here, whatever the render did.
import * as fs from "fs";
import * as path from "path";
import { structuredPatch } from "diff";
import { parse, parseAllDocuments, stringify } from "yaml";
import { maskSecret } from "./render";

/** First line of the PR comment: the workflow finds and updates its own comment by it. */
export const MARKER = "<!-- manifest-diff -->";
/** GitHub refuses comments over 65536 characters. */
export const COMMENT_LIMIT = 60000;
const OUTPUTS = "stack outputs";

export interface ObjectChange {
  /** `Kind namespace/name`, or "stack outputs". */
  key: string;
  change: "added" | "removed" | "changed";
  /** Unified diff lines (hunk headers and ' ', '-', '+' lines). */
  lines: string[];
}

export interface StackDiff {
  stack: string;
  /** Why a side has no render (a stack that does not exist on the base branch, a render that failed). */
  missing?: "base" | "head";
  changes: ObjectChange[];
}

type Objects = Map<string, Record<string, unknown>>;

function keyOf(obj: { kind?: string; metadata?: { name?: string; namespace?: string } }): string {
  const ns = obj.metadata?.namespace;
  return `${obj.kind} ${ns ? `${ns}/` : ""}${obj.metadata?.name}`;
}

/** The objects (and stack outputs) of one rendered stack directory, Secrets masked; undefined when absent. */
export function loadRendered(dir: string): Objects | undefined {
  const all = path.join(dir, "_all.yaml");
  if (!fs.existsSync(all)) return undefined;
  const objects: Objects = new Map();
  for (const doc of parseAllDocuments(fs.readFileSync(all, "utf8"))) {
    const obj = doc.toJS();
    if (obj) objects.set(keyOf(obj), maskSecret(obj));
  }
  const outputs = path.join(dir, "_outputs.yaml");
  if (fs.existsSync(outputs)) objects.set(OUTPUTS, parse(fs.readFileSync(outputs, "utf8")) ?? {});
  return objects;
}

/** Stable text of an object: sorted keys (key order is no change to Kubernetes), no line folding. */
export function canonical(obj: unknown): string {
  return stringify(obj, { sortMapEntries: true, lineWidth: 0 });
}

function linesOf(text: string): string[] {
  return text.replace(/\n$/, "").split("\n");
}

/** Per-object changes between two sets of objects, in key order. */
export function diffObjects(base: Objects, head: Objects): ObjectChange[] {
  const keys = [...new Set([...base.keys(), ...head.keys()])].sort();
  const out: ObjectChange[] = [];
  for (const key of keys) {
    const a = base.get(key);
    const b = head.get(key);
    // Masked again in case a side was rendered by something that did not mask.
    const before = a === undefined ? undefined : canonical(maskSecret(a));
    const after = b === undefined ? undefined : canonical(maskSecret(b));
    if (before === after) continue;
    if (before === undefined) out.push({ key, change: "added", lines: linesOf(after!).map((l) => `+${l}`) });
    else if (after === undefined) out.push({ key, change: "removed", lines: linesOf(before).map((l) => `-${l}`) });
    else {
      const patch = structuredPatch(key, key, before, after, undefined, undefined, { context: 3 });
      const lines = patch.hunks.flatMap((h) => [`@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@`, ...h.lines]);
      out.push({ key, change: "changed", lines });
    }
  }
  return out;
}

/** Compares `<baseRoot>/<stack>` with `<headRoot>/<stack>` for each stack (default: every stack directory in either root). */
export function diffStacks(baseRoot: string, headRoot: string, stacks?: string[]): StackDiff[] {
  const dirs = (root: string) => (fs.existsSync(root) ? fs.readdirSync(root).filter((d) => fs.statSync(path.join(root, d)).isDirectory()) : []);
  const names = stacks?.length ? stacks : [...new Set([...dirs(baseRoot), ...dirs(headRoot)])].sort();
  return names.map((stack) => {
    const base = loadRendered(path.join(baseRoot, stack));
    const head = loadRendered(path.join(headRoot, stack));
    const missing = !base ? "base" : !head ? "head" : undefined;
    return { stack, ...(missing ? { missing } : {}), changes: diffObjects(base ?? new Map(), head ?? new Map()) } as StackDiff;
  });
}

const SIGN = { added: "+", removed: "-", changed: "~" } as const;

function counts(d: StackDiff): string {
  const n = (c: ObjectChange["change"]) => d.changes.filter((x) => x.change === c).length;
  return `${n("changed")} changed, ${n("added")} added, ${n("removed")} removed`;
}

function missingNote(d: StackDiff): string | undefined {
  if (d.missing === "base") return "the base branch has no render of this stack (new stack, or its render failed): every object shows as added";
  if (d.missing === "head") return "this branch has no render of this stack (removed, or its render failed): every object shows as removed";
  return undefined;
}

/** Plain text for a terminal. */
export function toText(diffs: StackDiff[]): string {
  const out: string[] = [];
  for (const d of diffs) {
    out.push(`=== ${d.stack}: ${d.changes.length ? counts(d) : "no change"}`);
    const note = missingNote(d);
    if (note) out.push(`(${note})`);
    for (const c of d.changes) out.push(`${SIGN[c.change]} ${c.key} (${c.change})`, ...c.lines, "");
  }
  return `${out.join("\n")}\n`;
}

/** A code fence longer than any backtick run in the text, so content cannot close it. */
function fence(lines: string[]): string {
  const longest = Math.max(0, ...lines.map((l) => Math.max(0, ...(l.match(/`+/g) ?? []).map((r) => r.length))));
  return "`".repeat(Math.max(3, longest + 1));
}

/**
 * Markdown for the PR comment: a section per stack, a collapsed unified diff per object. Past
 * `limit` characters the remaining objects are listed without their diff, so every change is named.
 */
export function toMarkdown(diffs: StackDiff[], limit = COMMENT_LIMIT): string {
  const total = diffs.reduce((n, d) => n + d.changes.length, 0);
  const head = [
    MARKER,
    "## Kubernetes objects this pull request changes",
    "",
    `Rendered offline from the base branch and this branch with \`npm run render\` (Secret values masked): ${total ? `${total} object change(s)` : "no object changes"} in ${diffs.map((d) => d.stack).join(", ")}.`,
    "",
  ].join("\n");
  let text = head;
  let truncated = false;
  for (const d of diffs) {
    text += `\n### ${d.stack}: ${d.changes.length ? counts(d) : "no change"}\n\n`;
    const note = missingNote(d);
    if (note) text += `_${note}_\n\n`;
    for (const c of d.changes) {
      const title = `${SIGN[c.change]} ${c.key}`;
      const f = fence(c.lines);
      const full = `<details><summary><code>${title}</code> ${c.change}</summary>\n\n${f}diff\n${c.lines.join("\n")}\n${f}\n\n</details>\n`;
      const brief = `- <code>${title}</code> ${c.change} (diff left out: the comment is at its size limit)\n`;
      if (!truncated && text.length + full.length + 500 < limit) text += full;
      else {
        truncated = true;
        text += brief;
      }
    }
  }
  if (truncated) text += "\n_Some diffs were left out to fit GitHub's comment size; run `npm run render -- <stack> <dir>` on both branches and `npm run manifest-diff` to see all._\n";
  return text;
}

function main(argv: string[]): number {
  const flags = new Set(argv.filter((a) => a.startsWith("--") && a !== "--out"));
  const outAt = argv.indexOf("--out");
  const out = outAt >= 0 ? argv[outAt + 1] : undefined;
  const positional = argv.filter((a, i) => !a.startsWith("--") && !(outAt >= 0 && i === outAt + 1));
  const [baseRoot, headRoot, ...stacks] = positional;
  if (!baseRoot || !headRoot || [...flags].some((f) => f !== "--markdown")) {
    console.error("usage: npm run manifest-diff -- <base-root> <head-root> [--markdown] [--out FILE] [stack ...]");
    return 2;
  }
  const diffs = diffStacks(baseRoot, headRoot, stacks);
  const text = flags.has("--markdown") ? toMarkdown(diffs) : toText(diffs);
  if (out) fs.writeFileSync(out, text);
  else process.stdout.write(text);
  return 0;
}

if (require.main === module) process.exit(main(process.argv.slice(2)));
