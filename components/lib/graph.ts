// The one declaration of who talks to whom. Tiers register their pod groups and declare
// edges (`graph.connect("api", "postgres", [5432])`); components/network.ts turns the graph into
// NetworkPolicies (ingress on the destination, egress on the source) after every tier has spoken.
import { PRIVATE_RANGES } from "../../config/egress";

export interface Workload {
  name: string;
  namespace: string;
  /** Pod labels that select exactly this workload's pods. */
  selector: Record<string, string>;
}

/** Traffic from or to something the platform does not run. */
export type External =
  | { kind: "namespace"; name: string; namespace: string; pods?: Record<string, string> }
  | { kind: "internet"; name: "internet" }
  /** A fixed address range: a load balancer's subnet (PROXY protocol) or an exposed Service's client ranges. */
  | { kind: "cidr"; name: string; cidr: string };

export type Peer = string | External;

export interface PortRef {
  port: number;
  protocol?: "TCP" | "UDP";
}

export interface Edge {
  from: Peer;
  to: Peer;
  ports: PortRef[];
  /** Why the edge exists, shown in the generated policy's annotation. */
  reason: string;
}

/** Private ranges: "internet" egress never reaches cluster or VPC addresses. */
export { PRIVATE_RANGES } from "../../config/egress";

export class DependencyGraph {
  private readonly workloadMap = new Map<string, Workload>();
  private readonly edgeList: Edge[] = [];
  /** What the "internet" peer leaves out: private ranges plus the cluster's own (config/egress.ts internetExcept). */
  readonly internetExcept: string[];

  constructor(opts: { internetExcept?: string[] } = {}) {
    this.internetExcept = opts.internetExcept ?? [...PRIVATE_RANGES];
  }

  addWorkload(w: Workload): void {
    if (this.workloadMap.has(w.name)) throw new Error(`workload "${w.name}" is registered twice`);
    this.workloadMap.set(w.name, w);
  }

  connect(from: Peer, to: Peer, ports: (number | PortRef)[], reason: string): void {
    if (ports.length === 0) throw new Error(`edge ${peerName(from)} -> ${peerName(to)} names no port`);
    this.edgeList.push({ from, to, ports: ports.map((p) => (typeof p === "number" ? { port: p, protocol: "TCP" } : { protocol: "TCP", ...p })), reason });
  }

  get workloads(): Workload[] {
    return [...this.workloadMap.values()];
  }

  get edges(): Edge[] {
    return [...this.edgeList];
  }

  workload(name: string): Workload {
    const w = this.workloadMap.get(name);
    if (!w) throw new Error(`no workload named "${name}" (known: ${[...this.workloadMap.keys()].join(", ") || "none"})`);
    return w;
  }

  /** Throws when an edge names a workload nobody registered (a disabled tier still referenced). */
  check(): void {
    for (const e of this.edgeList) {
      for (const p of [e.from, e.to]) if (typeof p === "string") this.workload(p);
    }
  }
}

export function peerName(p: Peer): string {
  return typeof p === "string" ? p : p.name;
}
