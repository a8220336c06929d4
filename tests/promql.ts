// PromQL helpers for the tests (a module, not a test file: the daemon tier imports it too).
const PROMQL_WORDS = new Set(["and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"]);

/** Metric names an expression selects: identifiers outside label matchers, ranges and grouping lists, not called as functions. */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"[^"]*"/g, '""')
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, "");
  const names = [...stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*(?!\s*\()/g)].map((m) => m[0]);
  // The negative lookahead can stop one character early on a function name; drop prefixes of called names.
  const called = new Set([...stripped.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)\s*\(/g)].map((m) => m[1]));
  return [...new Set(names.filter((n) => !PROMQL_WORDS.has(n) && ![...called].some((c) => c.startsWith(n))))];
}

