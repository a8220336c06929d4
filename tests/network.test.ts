import { expect } from "chai";
import { evaluate, evaluateStack, k8sObjects, objectsOfKind, ok, STACKS, configOf } from "./harness";
import { DependencyGraph } from "../components/lib/graph";
import { MAX_EDGE_REASONS, edgesAnnotation, policySpecs } from "../components/network";
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

describe("network: policies stay small however many workloads share a peer", () => {
  const graph = () => {
    const g = new DependencyGraph();
    const w = (name: string, namespace = "app") => g.addWorkload({ name, namespace, selector: { "app.kubernetes.io/name": name, "app.kubernetes.io/instance": "p-prod" } });
    for (const n of ["a", "b", "c", "store"]) w(n);
    w("mailer", "mail");
    for (const n of ["a", "b", "c"]) g.connect(n, "store", [5432], `${n} uses the store`);
    g.connect("mailer", "store", [5432], "mailer uses the store");
    g.connect("a", "store", [6379], "a uses the cache too");
    g.connect({ kind: "cidr", name: "lb", cidr: "192.0.2.0/24" }, "store", [5432], "a load balancer");
    return g;
  };

  it("merges workload peers on the same ports into one selector per namespace (name In [...]); ranges keep their own rule", () => {
    const store = policySpecs(graph()).find((p) => p.name === "store")!;
    expect(store.spec.ingress).to.deep.equal([
      {
        from: [
          { podSelector: { matchLabels: { "app.kubernetes.io/instance": "p-prod" }, matchExpressions: [{ key: "app.kubernetes.io/name", operator: "In", values: ["a", "b", "c"] }] } },
          { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "mail" } }, podSelector: { matchLabels: { "app.kubernetes.io/name": "mailer", "app.kubernetes.io/instance": "p-prod" } } },
        ],
        ports: [{ port: 5432, protocol: "TCP" }],
      },
      { from: [{ podSelector: { matchLabels: { "app.kubernetes.io/name": "a", "app.kubernetes.io/instance": "p-prod" } } }], ports: [{ port: 6379, protocol: "TCP" }] },
      { from: [{ ipBlock: { cidr: "192.0.2.0/24" } }], ports: [{ port: 5432, protocol: "TCP" }] },
    ]);
  });

  it("the merged rules admit exactly what one rule per edge would", () => {
    const g = graph();
    const policies = policySpecs(g).map((p) => ({ metadata: { name: `allow-${p.name}`, namespace: p.namespace }, spec: p.spec }));
    const ep = (id: string, namespace: string, name: string, ip: string): Endpoint => ({
      id,
      namespace,
      namespaceLabels: { "kubernetes.io/metadata.name": namespace },
      labels: { "app.kubernetes.io/name": name, "app.kubernetes.io/instance": "p-prod" },
      ip,
      ports: [],
      managed: true,
    });
    const eps = [ep("a", "app", "a", "10.0.0.1"), ep("b", "app", "b", "10.0.0.2"), ep("c", "app", "c", "10.0.0.3"), ep("store", "app", "store", "10.0.0.4"), ep("mailer", "mail", "mailer", "10.0.0.5")];
    const stranger = { ...ep("d", "app", "d", "10.0.0.6") };
    const lb: Endpoint = { id: "lb", namespaceLabels: {}, labels: {}, ip: "192.0.2.9", ports: [], managed: false };
    const store = eps[3];
    for (const src of [...eps.filter((e) => e !== store), lb]) expect(allowed(policies, src, store, 5432, "TCP"), src.id).to.equal(src.id !== "store");
    expect(allowed(policies, stranger, store, 5432, "TCP")).to.equal(false);
    expect(["a", "b", "c"].map((n) => allowed(policies, eps.find((e) => e.id === n)!, store, 6379, "TCP"))).to.deep.equal([true, false, false]);
  });

  it(`lists at most ${MAX_EDGE_REASONS} edges in the platform/edges annotation, then how many more`, () => {
    const reasons = Array.from({ length: MAX_EDGE_REASONS + 7 }, (_, i) => `w${i} -> store:5432 (w${i} uses the store)`);
    expect(edgesAnnotation(reasons.slice(0, MAX_EDGE_REASONS))).to.equal(reasons.slice(0, MAX_EDGE_REASONS).join("; "));
    expect(edgesAnnotation(reasons)).to.equal(`${reasons.slice(0, MAX_EDGE_REASONS).join("; ")}; ... and 7 more edges (stack output dependencyGraph)`);
  });

  it("200 more services (each routed, with an egress destination): no object over 64 KiB, one smoke container for all of them, one store rule for all of them", async function () {
    this.timeout(120_000);
    const set: Record<string, unknown> = {};
    const names = Array.from({ length: 200 }, (_, i) => `svc-${String(i).padStart(3, "0")}`);
    for (const n of names) set[`services.${n}`] = { image: `registry.example.com/${n}:1.0.0`, path: `/${n}`, dependsOn: ["postgres", "redis", "jaeger"], egress: { partner: { internet: true, ports: [443] } } };
    const ev = ok(await evaluate({ stack: "prod", set }));
    const sizes = k8sObjects(ev).map(({ obj }) => ({ what: `${obj.kind} ${obj.metadata.name}`, bytes: Buffer.byteLength(JSON.stringify(obj)) }));
    expect(sizes.filter((x) => x.bytes > 64 * 1024)).to.deep.equal([]);
    const job = objectsOfKind(ev, "Job").find((j) => j.metadata.name.startsWith("smoke-"));
    expect(job.spec.template.spec.containers).to.have.length(configOf("prod").postgres.enabled ? 4 : 3);
    const postgres = objectsOfKind(ev, "NetworkPolicy").find((p) => p.metadata.name === "allow-postgres");
    const fromServices = postgres.spec.ingress.filter((r: any) => r.from.some((f: any) => f.podSelector?.matchExpressions?.[0]?.values.includes("svc-000")));
    expect(fromServices).to.have.length(1);
    expect(fromServices[0].from[0].podSelector.matchExpressions[0].values).to.include.members(names);
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
