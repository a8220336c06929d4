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
              annotations: { "platform/edges": spec.reasons.join("; ") },
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
  for (const w of graph.workloads) {
    const inbound = graph.edges.filter((e) => e.to === w.name);
    const outbound = graph.edges.filter((e) => e.from === w.name);
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

/**
 * One rule per edge, except that workload peers on the same ports share a rule: the same traffic
 * (a rule admits any of its peers on any of its ports), but a store that 200 services reach gets
 * one rule with 200 pod selectors instead of 200 rules. Address ranges and namespaces keep a rule
 * of their own, so each reads on its own in `kubectl describe`.
 */
function rules(edges: Edge[], other: (e: Edge) => Peer, self: Workload, graph: DependencyGraph): Rule[] {
  const out: Rule[] = [];
  const shared = new Map<string, Rule & { seen: Set<string> }>();
  for (const e of edges) {
    const ports = e.ports.map((p) => ({ port: p.port, protocol: p.protocol ?? "TCP" }));
    const peer = peerSelector(other(e), self.namespace, graph);
    if (typeof other(e) !== "string") {
      out.push({ peers: [peer], ports });
      continue;
    }
    const key = JSON.stringify(ports);
    let rule = shared.get(key);
    if (!rule) {
      rule = { peers: [], ports, seen: new Set<string>() };
      shared.set(key, rule);
      out.push(rule);
    }
    const id = JSON.stringify(peer);
    if (!rule.seen.has(id)) rule.peers.push(peer);
    rule.seen.add(id);
  }
  return out.map(({ peers, ports }) => ({ peers, ports }));
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
