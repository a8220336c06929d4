// A workload's declared outbound destinations (config/egress.ts) as graph edges: "internet" is
// the graph's internet peer (public addresses only), fixed ranges are one address-range peer per
// CIDR. NetworkPolicy egress rules and the reachability test follow from these edges alone.
import type { Egress } from "../../config/egress";
import type { DependencyGraph } from "./graph";

export const INTERNET = { kind: "internet", name: "internet" } as const;

export function declareEgress(graph: DependencyGraph, from: string, egress: Egress): void {
  for (const [name, d] of Object.entries(egress)) {
    const reason = `${from} calls ${name} (egress.${name})`;
    if (d.internet) graph.connect(from, INTERNET, d.ports, reason);
    for (const cidr of d.cidrs ?? []) graph.connect(from, { kind: "cidr", name: `${name} ${cidr}`, cidr }, d.ports, reason);
  }
}
