// Kubernetes resource quantities as numbers, for validation (request <= limit), quota sizing
// and settings derived from a container's memory limit.

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
const DECIMAL: Record<string, number> = { k: 1e3, M: 1e6, G: 1e9, T: 1e12 };

export const CPU_PATTERN = /^\d+(\.\d+)?m?$/;
export const MEMORY_PATTERN = /^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$/;

/** CPU quantity in millicores ("500m" -> 500, "2" -> 2000). */
export function cpuMillis(q: string): number {
  if (!CPU_PATTERN.test(q)) throw new Error(`not a CPU quantity: ${q}`);
  return q.endsWith("m") ? Number(q.slice(0, -1)) : Math.round(Number(q) * 1000);
}

/** Memory or storage quantity in bytes ("512Mi" -> 536870912). */
export function bytes(q: string): number {
  const m = MEMORY_PATTERN.exec(q);
  if (!m) throw new Error(`not a memory quantity: ${q}`);
  const unit = m[2];
  const n = Number(q.slice(0, q.length - (unit?.length ?? 0)));
  return n * (unit ? (BINARY[unit] ?? DECIMAL[unit]) : 1);
}

/** Millicores back to a quantity string. */
export function formatCpu(millis: number): string {
  return millis % 1000 === 0 ? String(millis / 1000) : `${Math.ceil(millis)}m`;
}

/** Bytes back to a quantity string, in Mi (rounded up) or Gi when exact. */
export function formatBytes(b: number): string {
  if (b % BINARY.Gi === 0) return `${b / BINARY.Gi}Gi`;
  return `${Math.ceil(b / BINARY.Mi)}Mi`;
}
