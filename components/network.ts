// NetworkPolicies generated from the dependency graph. Each namespace starts at default deny
// (components/platform.ts); every workload then gets one policy that allows exactly its declared
// inbound edges (ingress) and outbound edges (egress).
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { PlatformConfig } from "../config/schema";
import type { DependencyGraph, Edge, Peer, Workload } from "./lib/graph";
import { peerName } from "./lib/graph";
import { platformLabels } from "./lib/labels";

type Rule = { peers: k8s.types.input.networking.v1.NetworkPolicyPeer[]; ports: k8s.types.input.networking.v1.NetworkPolicyPort[] };

export interface NetworkPoliciesArgs {
  config: PlatformConfig;
  graph: DependencyGraph;
}

export class NetworkPolicies extends pulumi.ComponentResource {
  readonly policies: k8s.networking.v1.NetworkPolicy[] = [];

  constructor(name: string, args: NetworkPoliciesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:network:NetworkPolicies", name, {}, opts);
    args.graph.check();
    for (const spec of policySpecs(args.graph)) {
      this.policies.push(
        new k8s.networking.v1.NetworkPolicy(
          `${spec.namespace}-${spec.name}`,
          {
            metadata: {
              name: `allow-${spec.name}`,
              namespace: spec.namespace,
              labels: platformLabels(args.config),
              annotations: { "platform/edges": edgesAnnotation(spec.reasons) },
            },
            spec: spec.spec,
          },
          { parent: this },
        ),
      );
    }
    this.registerOutputs({ count: this.policies.length });
  }
}

export interface PolicySpec {
  name: string;
  namespace: string;
  reasons: string[];
  spec: k8s.types.input.networking.v1.NetworkPolicySpec;
}

/** Pure: the allow-policies implied by the graph, one per workload that has an edge. */
export function policySpecs(graph: DependencyGraph): PolicySpec[] {
  const out: PolicySpec[] = [];
  const edges = graph.edges;
  const inboundOf = new Map<string, Edge[]>();
  const outboundOf = new Map<string, Edge[]>();
  for (const e of edges) {
    if (typeof e.to === "string") inboundOf.set(e.to, [...(inboundOf.get(e.to) ?? []), e]);
    if (typeof e.from === "string") outboundOf.set(e.from, [...(outboundOf.get(e.from) ?? []), e]);
  }
  for (const w of graph.workloads) {
    const inbound = inboundOf.get(w.name) ?? [];
    const outbound = outboundOf.get(w.name) ?? [];
    if (inbound.length === 0 && outbound.length === 0) continue;
    const ingress = rules(inbound, (e) => e.from, w, graph);
    const egress = rules(outbound, (e) => e.to, w, graph);
    const policyTypes = [...(ingress.length ? ["Ingress"] : []), ...(egress.length ? ["Egress"] : [])];
    out.push({
      name: w.name,
      namespace: w.namespace,
      reasons: [...inbound, ...outbound].map((e) => `${peerName(e.from)} -> ${peerName(e.to)}:${e.ports.map((p) => p.port).join(",")} (${e.reason})`),
      spec: {
        podSelector: { matchLabels: w.selector },
        policyTypes,
        ...(ingress.length ? { ingress: ingress.map((r) => ({ from: r.peers, ports: r.ports })) } : {}),
        ...(egress.length ? { egress: egress.map((r) => ({ to: r.peers, ports: r.ports })) } : {}),
      },
    });
  }
  return out;
}

/** Most reasons an annotation lists: a store reached by hundreds of workloads would otherwise carry tens of KiB of prose. */
export const MAX_EDGE_REASONS = 40;

/** The `platform/edges` annotation: why each edge exists, the first MAX_EDGE_REASONS of them; the stack output `dependencyGraph` has all. */
export function edgesAnnotation(reasons: string[]): string {
  if (reasons.length <= MAX_EDGE_REASONS) return reasons.join("; ");
  return `${reasons.slice(0, MAX_EDGE_REASONS).join("; ")}; ... and ${reasons.length - MAX_EDGE_REASONS} more edges (stack output dependencyGraph)`;
}

/**
 * One rule per edge, except that workload peers on the same ports share a rule and, per
 * namespace, one pod selector (`app.kubernetes.io/name In [...]`): the same traffic (a rule admits
 * any of its peers on any of its ports), but a store that 200 services reach gets one short rule
 * instead of 200. Address ranges and namespaces keep a rule of their own, so each reads on its
 * own in `kubectl describe`.
 */
function rules(edges: Edge[], other: (e: Edge) => Peer, self: Workload, graph: DependencyGraph): Rule[] {
  const out: (Rule | { workloads: string[]; ports: Rule["ports"] })[] = [];
  const shared = new Map<string, { workloads: string[]; ports: Rule["ports"] }>();
  for (const e of edges) {
    const ports = e.ports.map((p) => ({ port: p.port, protocol: p.protocol ?? "TCP" }));
    const peer = other(e);
    if (typeof peer !== "string") {
      out.push({ peers: [peerSelector(peer, self.namespace, graph)], ports });
      continue;
    }
    const key = JSON.stringify(ports);
    let rule = shared.get(key);
    if (!rule) {
      rule = { workloads: [], ports };
      shared.set(key, rule);
      out.push(rule);
    }
    if (!rule.workloads.includes(peer)) rule.workloads.push(peer);
  }
  return out.map((r) => ("peers" in r ? r : { peers: workloadPeers(r.workloads, self.namespace, graph), ports: r.ports }));
}

/** Label naming a workload within its instance (components/lib/labels.ts selectorLabels). */
const NAME_LABEL = "app.kubernetes.io/name";

/** Peers selecting these workloads: one selector per namespace, naming several workloads with `In`. */
function workloadPeers(names: string[], ownNamespace: string, graph: DependencyGraph): k8s.types.input.networking.v1.NetworkPolicyPeer[] {
  const byNamespace = new Map<string, Workload[]>();
  for (const n of names) {
    const w = graph.workload(n);
    byNamespace.set(w.namespace, [...(byNamespace.get(w.namespace) ?? []), w]);
  }
  const peers: k8s.types.input.networking.v1.NetworkPolicyPeer[] = [];
  for (const [namespace, ws] of byNamespace) {
    const others = (sel: Record<string, string>) => Object.fromEntries(Object.entries(sel).filter(([k]) => k !== NAME_LABEL));
    const common = others(ws[0].selector);
    const mergeable = ws.length > 1 && ws.every((w) => NAME_LABEL in w.selector && JSON.stringify(others(w.selector)) === JSON.stringify(common));
    if (!mergeable) {
      for (const w of ws) peers.push(peerSelector(w.name, ownNamespace, graph));
      continue;
    }
    const podSelector = { matchLabels: common, matchExpressions: [{ key: NAME_LABEL, operator: "In", values: ws.map((w) => w.selector[NAME_LABEL]).sort() }] };
    peers.push(namespace === ownNamespace ? { podSelector } : { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } }, podSelector });
  }
  return peers;
}

function peerSelector(peer: Peer, ownNamespace: string, graph: DependencyGraph): k8s.types.input.networking.v1.NetworkPolicyPeer {
  if (typeof peer === "string") {
    const w = graph.workload(peer);
    return w.namespace === ownNamespace
      ? { podSelector: { matchLabels: w.selector } }
      : { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": w.namespace } }, podSelector: { matchLabels: w.selector } };
  }
  if (peer.kind === "internet") return { ipBlock: { cidr: "0.0.0.0/0", except: graph.internetExcept } };
  if (peer.kind === "cidr") return { ipBlock: { cidr: peer.cidr } };
  return {
    namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": peer.namespace } },
    ...(peer.pods ? { podSelector: { matchLabels: peer.pods } } : {}),
  };
}
