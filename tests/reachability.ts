// Who can reach whom, computed from NetworkPolicy objects the way Kubernetes evaluates them, and
// what the dependency graph says should be reachable. Pure functions; tests/network.test.ts
// compares the two for every stack.
//
// Semantics (networking.k8s.io/v1):
// - A pod is isolated for ingress (egress) iff some policy in its namespace selects it and lists
//   that policy type (absent policyTypes: Ingress always, Egress when the policy has egress rules).
// - A connection src -> dst:port is allowed iff src's egress allows it (or src is not isolated for
//   egress) AND dst's ingress allows it (or dst is not isolated for ingress). Policies are additive.
// - A peer with podSelector only selects pods in the policy's namespace; namespaceSelector only,
//   every pod of the matching namespaces; both, the intersection; ipBlock, addresses in the CIDR
//   minus `except` (pod IPs are private, so "internet" blocks never match pods).
// - A rule without ports allows every port; a named port resolves against the destination pod's
//   container ports.
import type { Edge, External, Peer, Workload } from "../components/lib/graph";
import { PRIVATE_RANGES } from "../components/lib/graph";

import type { Evaluation, K8sObject } from "./harness";
import { configOf, objectsOfKind } from "./harness";

 

export interface ContainerPort {
  name?: string;
  port: number;
  protocol: string;
}

export interface Endpoint {
  /** "<namespace>/<workload object>" for pods; "internet" for the outside world. */
  id: string;
  /** Undefined for the internet. */
  namespace?: string;
  namespaceLabels: Record<string, string>;
  labels: Record<string, string>;
  ip: string;
  ports: ContainerPort[];
  /** Runs in a namespace the platform governs (its policies are ours). */
  managed: boolean;
  /** No pod template for it in this evaluation: stands in for a graph workload another tier will deploy. */
  synthetic?: boolean;
}

export interface PolicyObject {
  metadata: { name: string; namespace: string };
  spec: any;
}

export interface Triple {
  from: string;
  to: string;
  port: number;
  protocol: string;
}

export const key = (t: Triple): string => `${t.from} -> ${t.to} ${t.port}/${t.protocol}`;

// ---------- label selectors and CIDRs ----------

export function matchesSelector(labels: Record<string, string>, sel: any): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const ok =
      e.operator === "In"
        ? has && e.values.includes(labels[e.key])
        : e.operator === "NotIn"
          ? !has || !e.values.includes(labels[e.key])
          : e.operator === "Exists"
            ? has
            : e.operator === "DoesNotExist"
              ? !has
              : (() => {
                  throw new Error(`unknown selector operator ${e.operator}`);
                })();
    if (!ok) return false;
  }
  return true;
}

function ipToInt(ip: string): number {
  return ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}

export function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split("/");
  const n = Number(bits);
  const mask = n === 0 ? 0 : 2 ** 32 - 2 ** (32 - n);
  return (ipToInt(ip) & mask) >>> 0 === (ipToInt(base) & mask) >>> 0;
}

// ---------- policy evaluation ----------

function policyTypes(p: PolicyObject): string[] {
  return p.spec.policyTypes ?? ["Ingress", ...(p.spec.egress ? ["Egress"] : [])];
}

function selecting(policies: PolicyObject[], pod: Endpoint, type: "Ingress" | "Egress"): PolicyObject[] {
  if (!pod.namespace) return [];
  return policies.filter((p) => p.metadata.namespace === pod.namespace && policyTypes(p).includes(type) && matchesSelector(pod.labels, p.spec.podSelector));
}

function peerMatches(peer: any, policyNamespace: string, other: Endpoint): boolean {
  if (peer.ipBlock) {
    return inCidr(other.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((c: string) => inCidr(other.ip, c));
  }
  if (!other.namespace) return false; // the internet is only ever matched by an ipBlock
  const nsOk = peer.namespaceSelector ? matchesSelector(other.namespaceLabels, peer.namespaceSelector) : other.namespace === policyNamespace;
  const podOk = peer.podSelector ? matchesSelector(other.labels, peer.podSelector) : true;
  return nsOk && podOk;
}

function portMatches(rulePorts: any[] | undefined, dst: Endpoint, port: number, protocol: string): boolean {
  if (!rulePorts || rulePorts.length === 0) return true;
  return rulePorts.some((rp) => {
    if ((rp.protocol ?? "TCP") !== protocol) return false;
    if (rp.port === undefined) return true;
    if (typeof rp.port === "string") return dst.ports.some((cp) => cp.name === rp.port && cp.protocol === protocol && cp.port === port);
    return rp.endPort !== undefined ? port >= rp.port && port <= rp.endPort : port === rp.port;
  });
}

function allows(policies: PolicyObject[], self: Endpoint, other: Endpoint, dst: Endpoint, port: number, protocol: string, type: "Ingress" | "Egress"): boolean {
  const selected = selecting(policies, self, type);
  if (selected.length === 0) return true; // not isolated in this direction
  const field = type === "Ingress" ? "ingress" : "egress";
  const peersField = type === "Ingress" ? "from" : "to";
  return selected.some((p) =>
    (p.spec[field] ?? []).some((rule: any) => {
      const peers = rule[peersField];
      const peerOk = !peers || peers.length === 0 || peers.some((peer: any) => peerMatches(peer, p.metadata.namespace, other));
      return peerOk && portMatches(rule.ports, dst, port, protocol);
    }),
  );
}

export function allowed(policies: PolicyObject[], src: Endpoint, dst: Endpoint, port: number, protocol: string): boolean {
  return allows(policies, src, dst, dst, port, protocol, "Egress") && allows(policies, dst, src, dst, port, protocol, "Ingress");
}

/** Every allowed (source, destination, port) between distinct endpoints where at least one side is ours. */
export function reachability(endpoints: Endpoint[], policies: PolicyObject[], ports: ContainerPort[]): Triple[] {
  const out: Triple[] = [];
  for (const src of endpoints) {
    for (const dst of endpoints) {
      if (src === dst || (!src.managed && !dst.managed)) continue;
      for (const p of ports) if (allowed(policies, src, dst, p.port, p.protocol)) out.push({ from: src.id, to: dst.id, port: p.port, protocol: p.protocol });
    }
  }
  return out;
}

// ---------- the declared side ----------

export interface GraphData {
  workloads: Workload[];
  edges: Edge[];
  /** What the internet peer leaves out (private ranges plus the cluster's own); PRIVATE_RANGES when absent. */
  internetExcept?: string[];
}

function peerEndpoints(peer: Peer, graph: GraphData, endpoints: Endpoint[]): Endpoint[] {
  if (typeof peer === "string") {
    const w = graph.workloads.find((x) => x.name === peer);
    if (!w) throw new Error(`edge names unknown workload ${peer}`);
    return endpoints.filter((e) => e.managed && e.namespace === w.namespace && matchesSelector(e.labels, { matchLabels: w.selector }));
  }
  // An address-range peer declares every outside endpoint inside the range (what an ipBlock admits).
  // Our own pods are excluded: their egress is governed by our policies, which a range peer does not open.
  const within = (cidr: string, except: string[]) => endpoints.filter((e) => !e.managed && inCidr(e.ip, cidr) && !except.some((x) => inCidr(e.ip, x)));
  if (peer.kind === "internet") return within("0.0.0.0/0", graph.internetExcept ?? PRIVATE_RANGES);
  if (peer.kind === "cidr") return within(peer.cidr, []);
  return endpoints.filter((e) => e.namespace === peer.namespace && (!peer.pods || matchesSelector(e.labels, { matchLabels: peer.pods })));
}

/** What the graph declares, expanded to endpoints, plus the platform's DNS rule (every pod -> kube-dns:53). */
export function declared(graph: GraphData, endpoints: Endpoint[]): Triple[] {
  const out: Triple[] = [];
  for (const e of graph.edges) {
    for (const src of peerEndpoints(e.from, graph, endpoints)) {
      for (const dst of peerEndpoints(e.to, graph, endpoints)) {
        if (src === dst) continue;
        for (const p of e.ports) out.push({ from: src.id, to: dst.id, port: p.port, protocol: p.protocol ?? "TCP" });
      }
    }
  }
  const dns = endpoints.find((e) => e.id === KUBE_DNS_ID)!;
  for (const src of endpoints.filter((e) => e.managed)) for (const protocol of ["UDP", "TCP"]) out.push({ from: src.id, to: dns.id, port: 53, protocol });
  return out;
}

// ---------- endpoints from an evaluation ----------

const KUBE_DNS_ID = "kube-system/kube-dns";
const cidrId = (name: string) => `cidr:${name}`;
const INTERNET_IP = "203.0.113.10";

function podTemplate(obj: K8sObject): any {
  return obj.kind === "CronJob" ? obj.spec?.jobTemplate?.spec?.template : obj.spec?.template;
}

/** Pods of every workload object, stand-ins for graph workloads without one, and the outside world. */
export function endpointsOf(ev: Evaluation, graph: GraphData, external: { namespace: string; labels: Record<string, string> }[]): Endpoint[] {
  const managedNs = new Map<string, Record<string, string>>();
  for (const ns of objectsOfKind(ev, "Namespace")) managedNs.set(ns.metadata.name, { ...ns.metadata.labels, "kubernetes.io/metadata.name": ns.metadata.name });
  const nsLabels = (ns: string) => managedNs.get(ns) ?? { "kubernetes.io/metadata.name": ns };
  let n = 0;
  const ip = () => `10.244.${Math.floor(++n / 250)}.${(n % 250) + 1}`;
  const endpoints: Endpoint[] = [];
  for (const kind of ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"]) {
    for (const obj of objectsOfKind(ev, kind)) {
      const tpl = podTemplate(obj);
      const ns = obj.metadata.namespace;
      endpoints.push({
        id: `${ns}/${obj.metadata.name}`,
        namespace: ns,
        namespaceLabels: nsLabels(ns),
        labels: tpl?.metadata?.labels ?? {},
        ip: ip(),
        ports: (tpl?.spec?.containers ?? []).flatMap((c: any) => (c.ports ?? []).map((p: any) => ({ name: p.name, port: p.containerPort, protocol: p.protocol ?? "TCP" }))),
        managed: managedNs.has(ns),
      });
    }
  }
  for (const w of graph.workloads) {
    if (endpoints.some((e) => e.namespace === w.namespace && matchesSelector(e.labels, { matchLabels: w.selector }))) continue;
    endpoints.push({ id: `${w.namespace}/${w.name}`, namespace: w.namespace, namespaceLabels: nsLabels(w.namespace), labels: { ...w.selector }, ip: ip(), ports: [], managed: true, synthetic: true });
  }
  // Pods the platform does not run: kube-dns, the given controllers, every namespace peer the graph names, a bystander.
  const outside = [
    { namespace: "kube-system", labels: { "k8s-app": "kube-dns" } },
    { namespace: "default", labels: { app: "bystander" } },
    ...external,
    ...graph.edges.flatMap((e) => [e.from, e.to]).flatMap((p) => (typeof p !== "string" && p.kind === "namespace" ? [{ namespace: p.namespace, labels: (p as External & { kind: "namespace" }).pods ?? {} }] : [])),
  ];
  for (const o of outside) {
    const id = o.namespace === "kube-system" && o.labels["k8s-app"] === "kube-dns" ? KUBE_DNS_ID : `${o.namespace}/${Object.values(o.labels).join(",") || "*"}`;
    if (endpoints.some((e) => e.id === id)) continue;
    endpoints.push({ id, namespace: o.namespace, namespaceLabels: nsLabels(o.namespace), labels: o.labels, ip: ip(), ports: [], managed: false });
  }
  endpoints.push({ id: "internet", namespaceLabels: {}, labels: {}, ip: INTERNET_IP, ports: [], managed: false });
  // A fixed range the graph names (a load balancer subnet, LB client ranges): one client inside it.
  for (const p of graph.edges.flatMap((e) => [e.from, e.to])) {
    if (typeof p === "string" || p.kind !== "cidr" || endpoints.some((e) => e.id === cidrId(p.name))) continue;
    // An address inside the range: a few hosts in where there is room, the address itself for a /32.
    const [base, bits] = p.cidr.split("/");
    const size = 2 ** (32 - Number(bits));
    const offset = size > 8 ? 7 : size > 2 ? 1 : 0;
    const n = base.split(".").reduce((a, o) => a * 256 + Number(o), 0) + offset;
    const ip = [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
    endpoints.push({ id: cidrId(p.name), namespaceLabels: {}, labels: {}, ip, ports: [], managed: false });
  }
  return endpoints;
}

/** Ports worth probing: every port any edge, policy or container names, plus the usual suspects. */
export function candidatePorts(graph: GraphData, policies: PolicyObject[], endpoints: Endpoint[]): ContainerPort[] {
  const nums = new Set<number>([22, 25, 53, 80, 443, 465, 587, 8080]);
  for (const e of graph.edges) for (const p of e.ports) nums.add(p.port);
  for (const p of policies) for (const r of [...(p.spec.ingress ?? []), ...(p.spec.egress ?? [])]) for (const rp of r.ports ?? []) if (typeof rp.port === "number") nums.add(rp.port);
  for (const e of endpoints) for (const p of e.ports) nums.add(p.port);
  return [...nums].sort((a, b) => a - b).flatMap((port) => ["TCP", "UDP"].map((protocol) => ({ port, protocol })));
}

// ---------- the comparison every evaluation gets ----------

/**
 * Actual (from the NetworkPolicies) and expected (from the stack output `dependencyGraph`)
 * reachability of an evaluation; the ingress controller and Prometheus namespaces come from the
 * evaluation's own config, so examples and `set` variants work too.
 */
export function reachabilityMatrix(ev: Evaluation) {
  const graph = ev.outputs.dependencyGraph as GraphData;
  const policies = objectsOfKind(ev, "NetworkPolicy") as PolicyObject[];
  const { ingressNamespace, monitoringNamespace } = configOf(ev).platform;
  const endpoints = endpointsOf(ev, graph, [
    { namespace: ingressNamespace, labels: {} },
    { namespace: monitoringNamespace, labels: {} },
  ]);
  const ports = candidatePorts(graph, policies, endpoints);
  const actual = reachability(endpoints, policies, ports).map(key).sort();
  const expected = [...new Set(declared(graph, endpoints).map(key))].sort();
  return { graph, policies, endpoints, actual, expected };
}

export function diff(actual: string[], expected: string[]) {
  const a = new Set(actual);
  const e = new Set(expected);
  return { missing: expected.filter((x) => !a.has(x)), extra: actual.filter((x) => !e.has(x)) };
}
