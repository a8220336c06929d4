// Each namespace's ResourceQuota, computed from the inventory (every pod group at its maximum plus
// rollout surge, plus headroom), and the optional ceiling (`platform.quota.max`) that refuses a
// configuration whose quota would grow past it.
import type { NamespaceRole, PodGroup } from "./inventory";
import { inventory, totals } from "./inventory";
import { bytes, cpuMillis, formatBytes, formatCpu } from "./quantity";
import type { PlatformConfig } from "./schema";

/** Jobs (backups, smoke test) and rollouts that are not in the inventory still fit. */
const MIN_EXTRA_PODS = 5;
const MI = 2 ** 20;

/** The ResourceQuota `hard` of a namespace's groups: HPA maximum plus rollout surge, plus headroom. */
export function quotaFor(groups: PodGroup[], headroomPercent: number): Record<string, string> {
  const t = totals(groups);
  const grow = (n: number) => Math.ceil(n * (1 + headroomPercent / 100));
  return {
    pods: String(grow(t.pods) + MIN_EXTRA_PODS),
    "requests.cpu": formatCpu(grow(t.requestsCpu) + 1000),
    "requests.memory": formatBytes(Math.ceil(grow(t.requestsMemory) / MI) * MI + 1024 * MI),
    "limits.cpu": formatCpu(grow(t.limitsCpu) + 2000),
    "limits.memory": formatBytes(Math.ceil(grow(t.limitsMemory) / MI) * MI + 2048 * MI),
    persistentvolumeclaims: String(grow(t.pvcs) + MIN_EXTRA_PODS),
  };
}

type Ceiling = NonNullable<PlatformConfig["platform"]["quota"]["max"]>;

/** Each ceiling key: the quota key it bounds, how to read a quantity, and one group's share. */
const LIMITS: Record<keyof Ceiling, { quota: string; read: (q: string) => number; show: (n: number) => string; share: (g: PodGroup) => number }> = {
  requestsCpu: { quota: "requests.cpu", read: cpuMillis, show: formatCpu, share: (g) => sum(g, (r) => cpuMillis(r.requests.cpu)) },
  requestsMemory: { quota: "requests.memory", read: bytes, show: formatBytes, share: (g) => sum(g, (r) => bytes(r.requests.memory)) },
  limitsCpu: { quota: "limits.cpu", read: cpuMillis, show: formatCpu, share: (g) => sum(g, (r) => cpuMillis(r.limits.cpu)) },
  limitsMemory: { quota: "limits.memory", read: bytes, show: formatBytes, share: (g) => sum(g, (r) => bytes(r.limits.memory)) },
  pods: { quota: "pods", read: Number, show: String, share: (g) => g.maxPods + g.surge },
};

function sum(g: PodGroup, per: (r: PodGroup["containers"][number]) => number): number {
  return (g.maxPods + g.surge) * g.containers.reduce((n, c) => n + per(c), 0);
}

/**
 * Problems with the quota ceiling: for each namespace and each key set in `platform.quota.max`,
 * a computed quota above it, with the three biggest contributors (their config keys).
 */
export function quotaIssues(cfg: PlatformConfig): { path: string[]; message: string }[] {
  const max = cfg.platform.quota.max;
  if (!max) return [];
  const groups = inventory(cfg);
  const roles: NamespaceRole[] = cfg.mail.enabled ? ["app", "mail"] : ["app"];
  const out: { path: string[]; message: string }[] = [];
  for (const role of roles) {
    const own = groups.filter((g) => g.namespace === role);
    const quota = quotaFor(own, cfg.platform.quota.headroomPercent);
    for (const key of Object.keys(LIMITS) as (keyof Ceiling)[]) {
      const ceiling = max[key];
      if (ceiling === undefined) continue;
      const l = LIMITS[key];
      const need = l.read(quota[l.quota]);
      const cap = typeof ceiling === "number" ? ceiling : l.read(ceiling);
      if (need <= cap) continue;
      const top = [...own]
        .sort((a, b) => l.share(b) - l.share(a))
        .slice(0, 3)
        .map((g) => {
          const pods = g.maxPods + g.surge;
          return key === "pods" ? `${g.configPath} ${pods}` : `${g.configPath} ${l.show(l.share(g))} (${pods} pod${pods === 1 ? "" : "s"})`;
        });
      out.push({
        path: ["platform", "quota", "max", key],
        message:
          `the ${role} namespace's computed quota needs ${l.quota} ${quota[l.quota]} (every workload at its maximum plus rollout surge, ` +
          `plus ${cfg.platform.quota.headroomPercent}% headroom), above the ceiling ${String(ceiling)}; biggest contributors: ${top.join(", ")}`,
      });
    }
  }
  return out;
}
