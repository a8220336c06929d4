// Cron schedules as data: the longest gap between two runs of a schedule, so an alert on "the last
// run is too old" is derived from the schedule itself instead of a hand-tuned number.
import { z } from "zod";

const MACROS: Record<string, string> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};

/** Standard five-field cron (numbers, `*`, ranges, steps, lists) or a @macro; CronJob would reject anything else at apply time. */
export const cron = z
  .string()
  .refine((s) => parseCron(s) !== undefined, "must be a cron schedule such as '15 2 * * *' (numbers, *, ranges, steps and lists) or a @daily-style macro");

const RANGES: [number, number][] = [
  [0, 59], // minute
  [0, 23], // hour
  [1, 31], // day of month
  [1, 12], // month
  [0, 7], // day of week (0 and 7 are Sunday)
];

interface Parsed {
  fields: Set<number>[];
  /** Day of month and day of week both restricted: cron runs when either matches. */
  domRestricted: boolean;
  dowRestricted: boolean;
}

const NAMES: Record<number, string[]> = {
  3: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
  4: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

function parseField(raw: string, [lo, hi]: [number, number], index: number): Set<number> | undefined {
  const out = new Set<number>();
  // Month and weekday names as Kubernetes' parser reads them (JAN=1, SUN=0); `?` means `*`.
  const names = NAMES[index] ?? [];
  const text = raw.toUpperCase().replace(/[A-Z]{3}/g, (n) => (names.includes(n) ? String(names.indexOf(n) + (index === 3 ? 1 : 0)) : n)).replace(/^\?$/, "*");
  for (const part of text.split(",")) {
    const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
    if (!m) return undefined;
    const step = m[4] !== undefined ? Number(m[4]) : 1;
    const from = m[1] === "*" ? lo : Number(m[2]);
    const to = m[1] === "*" ? hi : m[3] !== undefined ? Number(m[3]) : m[4] !== undefined ? hi : from;
    if (step < 1 || from < lo || to > hi || from > to) return undefined;
    for (let v = from; v <= to; v += step) out.add(v);
  }
  return out;
}

export function parseCron(schedule: string): Parsed | undefined {
  const expr = MACROS[schedule.trim()] ?? schedule.trim();
  const parts = expr.split(/\s+/);
  if (parts.length !== 5) return undefined;
  const fields = parts.map((p, i) => parseField(p, RANGES[i], i));
  if (fields.some((f) => f === undefined)) return undefined;
  const f = fields as Set<number>[];
  if (f[4].has(7)) f[4].add(0);
  return { fields: f, domRestricted: !/^[*?]$/.test(parts[2]), dowRestricted: !/^[*?]$/.test(parts[4]) };
}

function dayMatches(p: Parsed, d: Date): boolean {
  const [, , dom, month, dow] = p.fields;
  if (!month.has(d.getUTCMonth() + 1)) return false;
  const domOk = dom.has(d.getUTCDate());
  const dowOk = dow.has(d.getUTCDay());
  // Vixie cron: when both day fields are restricted, either may match.
  if (p.domRestricted && p.dowRestricted) return domOk || dowOk;
  return domOk && dowOk;
}

const DAY = 86_400_000;

/**
 * The longest time between two consecutive runs, in seconds, over four years (every month length
 * and weekday alignment, a leap year included). Computed in UTC; a time zone with daylight saving
 * can stretch one gap by an hour, which callers add as slack.
 */
export function cronMaxGapSeconds(schedule: string): number {
  const p = parseCron(schedule);
  if (!p) throw new Error(`not a cron schedule: ${schedule}`);
  const minutes = [...p.fields[0]].sort((a, b) => a - b);
  const hours = [...p.fields[1]].sort((a, b) => a - b);
  const start = Date.UTC(2027, 0, 1);
  const end = Date.UTC(2031, 0, 1);
  let first: number | undefined;
  let last: number | undefined;
  let gap = 0;
  for (let day = start; day < end; day += DAY) {
    if (!dayMatches(p, new Date(day))) continue;
    for (const h of hours) {
      for (const m of minutes) {
        const t = day + h * 3_600_000 + m * 60_000;
        if (last !== undefined) gap = Math.max(gap, t - last);
        first ??= t;
        last = t;
      }
    }
  }
  if (first === undefined || last === undefined) throw new Error(`schedule ${schedule} never fires`);
  // The wrap-around gap (last run of the window to the first run after it) counts too.
  gap = Math.max(gap, first + (end - start) - last);
  return gap / 1000;
}
