import { expect } from "chai";
import { evaluate, evaluateStack, objectsOfKind, ok, STACKS, configOf } from "./harness";
import type { Endpoint, GraphData, PolicyObject } from "./reachability";
import { allowed, declared, diff, inCidr, key, matchesSelector, reachability, reachabilityMatrix as matrix } from "./reachability";

const MAIL_INTERNET_PORTS = [25, 465, 587];
/**
 * Graph workloads whose pods another tier deploys and that are not merged into this branch yet;
 * they are checked with stand-in pods carrying their selector. The integrator empties this set.
 */
const NOT_YET_DEPLOYED = new Set(["api", "worker-default", "beat", "flower", "postgres", "redis", "mongo", "postfix", "dovecot"]);

describe("network: reachability equals the declared graph", () => {
  for (const stack of STACKS) {
    describe(stack, () => {
      it("allows exactly the declared edges (plus DNS): no missing edge, no extra edge", async () => {
        const { actual, expected } = matrix(ok(await evaluateStack(stack)));
        expect(diff(actual, expected)).to.deep.equal({ missing: [], extra: [] });
        expect(actual.length).to.be.greaterThan(0);
      });

      it("checks real pod templates for every graph workload (stand-ins only for tiers not merged yet)", async () => {
        const { endpoints } = matrix(ok(await evaluateStack(stack)));
        const standIns = endpoints.filter((e) => e.synthetic).map((e) => e.id.split("/")[1]);
        expect(standIns.filter((n) => !NOT_YET_DEPLOYED.has(n))).to.deep.equal([]);
        expect(endpoints.find((e) => e.id.endsWith("/jaeger"))?.synthetic).to.equal(undefined);
      });

      it("lets only mail pods reach the internet, on 25/465/587", async () => {
        const ev = ok(await evaluateStack(stack));
        const { actual, endpoints } = matrix(ev);
        const mailNs = (objectsOfKind(ev, "Namespace") as { metadata: { name: string } }[]).map((n) => n.metadata.name).find((n) => n.includes("-mail-"));
        for (const t of actual.filter((x) => x.includes(" -> internet "))) {
          const [from, , , portProto] = t.split(" ");
          const src = endpoints.find((e) => e.id === from)!;
          expect(src.namespace, t).to.equal(mailNs);
          expect(MAIL_INTERNET_PORTS, t).to.include(Number(portProto.split("/")[0]));
        }
      });

      it("admits the ingress controller to the routed backends only, and the monitoring namespace to metrics ports only", async () => {
        const ev = ok(await evaluateStack(stack));
        const { actual } = matrix(ev);
        const cfg = configOf(stack);
        const app = cfg.platform.namespace;
        const ing = `${cfg.platform.ingressNamespace}/*`;
        const fromIngress = actual.filter((t) => t.startsWith(`${ing} -> `));
        expect(fromIngress).to.include(`${ing} -> ${app}/api 5000/TCP`);
        expect(fromIngress).to.include(`${ing} -> ${app}/jaeger 16686/TCP`);
        expect(fromIngress.includes(`${ing} -> ${app}/flower 5555/TCP`)).to.equal(cfg.workers.flower.enabled);
        expect(cfg.workers.flower.enabled).to.equal(stack !== "prod"); // config/workers.ts: Flower is off in prod
        expect(fromIngress.every((t) => /\/(api 5000|jaeger 16686|flower 5555)\/TCP$/.test(t)), fromIngress.join("\n")).to.equal(true);
        const mon = `${cfg.platform.monitoringNamespace}/*`;
        const fromMonitoring = actual.filter((t) => t.startsWith(`${mon} -> `));
        // Monitoring is on in staging and prod only (monitoring.enabled), and then reaches jaeger's metrics port.
        expect(fromMonitoring.includes(`${mon} -> ${app}/jaeger 8888/TCP`)).to.equal(cfg.monitoring.enabled);
        expect(fromMonitoring.filter((t) => t.includes(" 16686/") || t.includes(" 4317/"))).to.deep.equal([]);
      });
    });
  }

  it("declares the jaeger -> external span storage edge (in-cluster namespace, or internet egress when config allows it)", async () => {
    const external = { serverUrls: ["https://es.logging.svc:9200"], indexPrefix: "jaeger", namespace: "logging", port: 9200 };
    const inCluster = ok(await evaluate({ stack: "prod", set: { "jaeger.storage": { type: "elasticsearch", external } } }));
    const m1 = matrix(inCluster);
    expect(diff(m1.actual, m1.expected)).to.deep.equal({ missing: [], extra: [] });
    expect(m1.actual).to.include.members(["email-platform-prod/jaeger -> logging/* 9200/TCP", "email-platform-prod/jaeger-index-cleaner -> logging/* 9200/TCP"]);
    expect(m1.actual.filter((t) => t.includes("/jaeger") && t.includes(" -> internet "))).to.deep.equal([]);

    const outside = ok(await evaluate({ stack: "prod", set: { "jaeger.storage": { type: "opensearch", external: { ...external, namespace: undefined, port: 443 } } } }));
    const m2 = matrix(outside);
    expect(diff(m2.actual, m2.expected)).to.deep.equal({ missing: [], extra: [] });
    expect(m2.actual.filter((t) => t.includes("/jaeger") && t.includes(" -> internet "))).to.deep.equal([
      "email-platform-prod/jaeger -> internet 443/TCP",
      "email-platform-prod/jaeger-index-cleaner -> internet 443/TCP",
    ]);
  });
});

describe("network: the reachability checker follows Kubernetes semantics", () => {
  const ns = (name: string) => ({ "kubernetes.io/metadata.name": name });
  const pod = (id: string, namespace: string, labels: Record<string, string>, ip: string, ports: Endpoint["ports"] = []): Endpoint => ({
    id,
    namespace,
    namespaceLabels: ns(namespace),
    labels,
    ip,
    ports,
    managed: true,
  });
  const a = pod("a", "x", { app: "a" }, "10.0.0.1");
  const b = pod("b", "x", { app: "b" }, "10.0.0.2", [{ name: "http", port: 8080, protocol: "TCP" }]);
  const c = pod("c", "y", { app: "c" }, "10.0.0.3");
  const internet: Endpoint = { id: "internet", namespaceLabels: {}, labels: {}, ip: "203.0.113.10", ports: [], managed: false };
  const policy = (name: string, namespace: string, spec: object): PolicyObject => ({ metadata: { name, namespace }, spec });
  const denyAll = policy("deny", "x", { podSelector: {}, policyTypes: ["Ingress", "Egress"] });

  it("allows everything between pods no policy selects", () => {
    expect(allowed([], a, b, 80, "TCP")).to.equal(true);
  });

  it("needs both the source's egress and the destination's ingress once both are isolated", () => {
    const ingressOnly = policy("b-in", "x", { podSelector: { matchLabels: { app: "b" } }, policyTypes: ["Ingress"], ingress: [{ from: [{ podSelector: { matchLabels: { app: "a" } } }], ports: [{ port: 8080 }] }] });
    expect(allowed([denyAll, ingressOnly], a, b, 8080, "TCP")).to.equal(false);
    const egress = policy("a-out", "x", { podSelector: { matchLabels: { app: "a" } }, policyTypes: ["Egress"], egress: [{ to: [{ podSelector: { matchLabels: { app: "b" } } }], ports: [{ port: "http" }] }] });
    expect(allowed([denyAll, ingressOnly, egress], a, b, 8080, "TCP")).to.equal(true);
    expect(allowed([denyAll, ingressOnly, egress], a, b, 8080, "UDP")).to.equal(false);
    expect(allowed([denyAll, ingressOnly, egress], a, b, 9090, "TCP")).to.equal(false);
  });

  it("reads a podSelector-only peer as the policy's own namespace, and namespaceSelector+podSelector as their intersection", () => {
    const open = policy("b-in", "x", { podSelector: {}, policyTypes: ["Ingress"], ingress: [{ from: [{ podSelector: { matchLabels: { app: "c" } } }] }] });
    expect(allowed([open], c, b, 80, "TCP")).to.equal(false); // c is in namespace y
    const both = policy("b-in2", "x", { podSelector: {}, policyTypes: ["Ingress"], ingress: [{ from: [{ namespaceSelector: { matchLabels: ns("y") }, podSelector: { matchLabels: { app: "c" } } }] }] });
    expect(allowed([both], c, b, 80, "TCP")).to.equal(true);
    expect(allowed([both], a, b, 80, "TCP")).to.equal(false);
  });

  it("matches ipBlocks by address: the internet block excludes private (pod) addresses", () => {
    const out = policy("egress", "x", { podSelector: {}, policyTypes: ["Egress"], egress: [{ to: [{ ipBlock: { cidr: "0.0.0.0/0", except: ["10.0.0.0/8"] } }], ports: [{ port: 25 }] }] });
    expect(allowed([out], a, internet, 25, "TCP")).to.equal(true);
    expect(allowed([out], a, b, 25, "TCP")).to.equal(false);
    expect(inCidr("10.1.2.3", "10.0.0.0/8")).to.equal(true);
    expect(inCidr("11.1.2.3", "10.0.0.0/8")).to.equal(false);
  });

  it("treats absent policyTypes as Ingress (plus Egress when egress rules exist) and supports matchExpressions and endPort", () => {
    const implicit = policy("p", "x", { podSelector: { matchExpressions: [{ key: "app", operator: "In", values: ["b"] }] }, ingress: [{ ports: [{ port: 8000, endPort: 8100 }] }] });
    expect(allowed([implicit], a, b, 8080, "TCP")).to.equal(true);
    expect(allowed([implicit], a, b, 8200, "TCP")).to.equal(false);
    expect(allowed([implicit], b, a, 1, "TCP")).to.equal(true); // b's egress is not isolated
    expect(matchesSelector({ app: "b" }, { matchExpressions: [{ key: "tier", operator: "DoesNotExist" }] })).to.equal(true);
  });

  it("reports an extra edge when a policy is wider than the graph", () => {
    const graph: GraphData = { workloads: [{ name: "b", namespace: "x", selector: { app: "b" } }], edges: [] };
    const dns = { ...pod("kube-system/kube-dns", "kube-system", { "k8s-app": "kube-dns" }, "10.9.9.9"), managed: false };
    const wide = policy("b-in", "x", { podSelector: {}, policyTypes: ["Ingress"], ingress: [{}] });
    const eps = [a, b, dns];
    const actual = reachability(eps, [wide], [{ port: 8080, protocol: "TCP" }]).map(key);
    const expected = declared(graph, eps).map(key);
    expect(diff(actual, expected).extra).to.include("a -> b 8080/TCP");
  });
});
