// A small YAML writer for the daemon configs the program renders (patroni.yml): block style for
// reading in `kubectl get configmap`, every string double-quoted (a JSON string is a valid YAML
// double-quoted scalar, so nothing is ever read back as a number, a boolean or null by accident).
// Plain data only: objects, arrays, strings, finite numbers, booleans, null.

type Plain = string | number | boolean | null | Plain[] | { [key: string]: Plain };

const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
/** Plain keys YAML 1.1 (PyYAML) would read as booleans or null. */
const RESERVED = /^(y|n|yes|no|on|off|true|false|null)$/i;

function key(k: string): string {
  return KEY.test(k) && !RESERVED.test(k) ? k : JSON.stringify(k);
}

function scalar(v: Plain): string | undefined {
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`yaml: not a finite number: ${v}`);
    return String(v);
  }
  if (Array.isArray(v) && v.length === 0) return "[]";
  if (!Array.isArray(v) && Object.keys(v).length === 0) return "{}";
  return undefined;
}

function lines(v: Plain, indent: string): string[] {
  const out: string[] = [];
  if (Array.isArray(v)) {
    for (const item of v) {
      const s = scalar(item);
      if (s !== undefined) out.push(`${indent}- ${s}`);
      else {
        const [first, ...rest] = lines(item, `${indent}  `);
        out.push(`${indent}- ${first.slice(indent.length + 2)}`, ...rest);
      }
    }
    return out;
  }
  for (const [k, item] of Object.entries(v as Record<string, Plain>)) {
    if (item === undefined) continue;
    const s = scalar(item);
    if (s !== undefined) out.push(`${indent}${key(k)}: ${s}`);
    else out.push(`${indent}${key(k)}:`, ...lines(item, `${indent}  `));
  }
  return out;
}

/** A YAML document for a plain object, optionally after `#` comment lines. */
export function toYaml(doc: Record<string, unknown>, comment?: string): string {
  const head = comment ? comment.split("\n").map((l) => `# ${l}`.trimEnd()) : [];
  return [...head, ...lines(doc as Plain, "")].join("\n") + "\n";
}
