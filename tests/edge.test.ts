import { expect } from "chai";
import { evaluate, evaluateStack, findObject, objectsOfKind, ok, recordOf, STACKS, configOf } from "./harness";
import { validateObject } from "./checks";

const A = "nginx.ingress.kubernetes.io";

type Path = { path: string; pathType: string; backend: { service: { name: string; port: { number: number } } } };
const routesOf = (ing: { spec: { rules: { host: string; http: { paths: Path[] } }[] } }) =>
  ing.spec.rules.map((r) => ({ host: r.host, paths: r.http.paths.map((p) => `${p.path} -> ${p.backend.service.name}:${p.backend.service.port.number} (${p.pathType})`) }));

describe("edge", () => {
  for (const stack of STACKS) {
    describe(stack, () => {
      it("routes / and /api to the API on every configured host, with the configured class", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        const ing = findObject(ev, "Ingress", "email-platform-public", `email-platform-${stack}`);
        expect(ing.spec.ingressClassName).to.equal(cfg.edge.className).and.equal("nginx");
        expect(routesOf(ing)).to.deep.equal(cfg.edge.hosts.map((host) => ({ host, paths: ["/ -> api:5000 (Prefix)", "/api -> api:5000 (Prefix)"] })));
      });

      it("serves TLS from the configured cert-manager issuer and forces HTTPS outside dev; plain HTTP in dev", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        for (const name of ["email-platform-public", "email-platform-ops"]) {
          const ing = findObject(ev, "Ingress", name);
          const a = ing.metadata.annotations;
          if (stack === "dev") {
            expect(cfg.edge.tls.issuer).to.equal(null);
            expect(ing.spec.tls).to.equal(undefined);
            expect(a[`${A}/ssl-redirect`]).to.equal("false");
            expect(Object.keys(a).filter((k) => k.startsWith("cert-manager.io/"))).to.deep.equal([]);
          } else {
            expect(ing.spec.tls).to.deep.equal([{ hosts: cfg.edge.hosts, secretName: "email-platform-tls" }]);
            expect(a["cert-manager.io/cluster-issuer"]).to.equal(cfg.edge.tls.issuer).and.equal(stack === "prod" ? "letsencrypt-prod" : "letsencrypt-staging");
            expect(a[`${A}/ssl-redirect`]).to.equal("true");
            expect(a[`${A}/force-ssl-redirect`]).to.equal("true");
          }
        }
      });

      // Only stacks with TLS have an issuer (dev serves plain HTTP, tested above).
      if (configOf(stack).edge.tls.issuer) it("names an issuer from which cert-manager's ingress-shim derives a valid Certificate (outside dev)", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        const ing = findObject(ev, "Ingress", "email-platform-public");
        // What ingress-shim creates from the annotation and spec.tls (Certificate named after the Secret).
        const certificate = {
          apiVersion: "cert-manager.io/v1",
          kind: "Certificate",
          metadata: { name: ing.spec.tls[0].secretName, namespace: ing.metadata.namespace },
          spec: {
            secretName: ing.spec.tls[0].secretName,
            dnsNames: ing.spec.tls[0].hosts,
            issuerRef: { name: ing.metadata.annotations["cert-manager.io/cluster-issuer"], kind: "ClusterIssuer", group: "cert-manager.io" },
          },
        };
        await validateObject(certificate);
        expect(certificate.spec.dnsNames).to.deep.equal(cfg.edge.hosts);
      });

      it("limits request rate (seed 002: 100/min, 1000/h outside dev) and body size", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        const a = findObject(ev, "Ingress", "email-platform-public").metadata.annotations;
        expect(a[`${A}/limit-rpm`]).to.equal("100").and.equal(String(cfg.edge.rateLimit.perMinute));
        expect(a[`${A}/limit-burst-multiplier`]).to.equal(String(cfg.edge.rateLimit.burstMultiplier));
        expect(a[`${A}/proxy-body-size`]).to.equal(cfg.edge.maxBodySize);
        if (stack === "dev") {
          expect(a[`${A}/global-rate-limit`]).to.equal(undefined);
        } else {
          expect(a[`${A}/global-rate-limit`]).to.equal("1000");
          expect(a[`${A}/global-rate-limit-window`]).to.equal("1h");
        }
      });

      it("allows CORS from the configured origins only and sets security headers through a custom-headers ConfigMap", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        const ns = `email-platform-${stack}`;
        const a = findObject(ev, "Ingress", "email-platform-public").metadata.annotations;
        expect(a[`${A}/enable-cors`]).to.equal("true");
        expect(a[`${A}/cors-allow-origin`]).to.equal(cfg.edge.corsOrigins.join(", "));
        expect(a[`${A}/custom-headers`]).to.equal(`${ns}/edge-security-headers`);
        // No nginx snippets: they are disabled by default in ingress-nginx and would accept arbitrary config.
        for (const ing of objectsOfKind(ev, "Ingress")) expect(Object.keys(ing.metadata.annotations).filter((k) => k.includes("snippet"))).to.deep.equal([]);
        const headers = findObject(ev, "ConfigMap", "edge-security-headers", ns).data;
        expect(headers["X-Frame-Options"]).to.equal("DENY");
        expect(headers["X-Content-Type-Options"]).to.equal("nosniff");
        expect(headers["Content-Security-Policy"]).to.equal(cfg.edge.contentSecurityPolicy);
        if (stack === "dev") expect(headers["Strict-Transport-Security"]).to.equal(undefined);
        else expect(headers["Strict-Transport-Security"]).to.equal(`max-age=${cfg.edge.hstsMaxAgeSeconds}; includeSubDomains`);
      });

      it("puts Jaeger (and Flower where enabled) behind basic auth at the edge, in a separate Ingress", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        const ns = `email-platform-${stack}`;
        const ops = findObject(ev, "Ingress", "email-platform-ops", ns);
        const paths = ["/jaeger -> jaeger:16686 (Prefix)", ...(cfg.workers.flower.enabled ? ["/flower -> flower:5555 (Prefix)"] : [])];
        expect(routesOf(ops)).to.deep.equal(cfg.edge.hosts.map((host) => ({ host, paths })));
        expect(ops.metadata.annotations).to.include({ [`${A}/auth-type`]: "basic", [`${A}/auth-secret`]: "edge-ops-auth" });
        expect(ops.metadata.annotations[`${A}/enable-cors`]).to.equal(undefined);
        const pub = findObject(ev, "Ingress", "email-platform-public", ns).metadata.annotations;
        expect(pub[`${A}/auth-type`]).to.equal(undefined);
        const secret = findObject(ev, "Secret", "edge-ops-auth", ns);
        expect(secret.stringData.auth).to.match(new RegExp(`^${cfg.edge.opsUser}:`));
        expect(recordOf(ev, "Secret", "edge-ops-auth").secretPaths.some((p) => "stringData.auth".startsWith(p))).to.equal(true);
      });

      it("exports the URLs a user opens and the operators' credentials (password secret)", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        const base = `${stack === "dev" ? "http" : "https"}://${cfg.edge.hosts[0]}`;
        const urls: Record<string, string> = { app: `${base}/`, api: `${base}/api`, jaeger: `${base}/jaeger` };
        if (cfg.workers.flower.enabled) urls.flower = `${base}/flower`;
        expect(ev.outputs.urls).to.deep.equal(urls);
        expect(ev.outputs.opsUser).to.equal(cfg.edge.opsUser);
        expect(ev.secretOutputs).to.include("opsPassword");
      });

      it("validates against the Kubernetes schema", async () => {
        const ev = ok(await evaluateStack(stack));
        for (const ing of objectsOfKind(ev, "Ingress")) await validateObject(ing);
        await validateObject(findObject(ev, "ConfigMap", "edge-security-headers"));
        await validateObject(findObject(ev, "Secret", "edge-ops-auth"));
      });
    });
  }

  it("drops routes whose backends are disabled, and creates nothing when the edge is off", async () => {
    const ev = ok(await evaluate({ stack: "staging", set: { "jaeger.enabled": false, "workers.enabled": false } }));
    expect(objectsOfKind(ev, "Ingress").map((i) => i.metadata.name)).to.deep.equal(["email-platform-public"]);
    expect(ev.outputs.urls).to.have.keys("app", "api");
    expect(ev.outputs.opsPassword).to.equal(undefined);
    const off = ok(await evaluate({ stack: "prod", set: { "edge.enabled": false } }));
    expect(objectsOfKind(off, "Ingress")).to.have.length(0);
    expect(off.outputs.urls).to.deep.equal({});
    // Without an edge nothing enters from the controller's namespace.
    const policies = objectsOfKind(off, "NetworkPolicy");
    expect(JSON.stringify(policies)).not.to.contain('"ingress-nginx"');
  });

  it("refuses bad edge settings with the key path", async () => {
    const ev = await evaluate({
      stack: "staging",
      set: { "edge.tls.issuer": null, "edge.rateLimit": { perMinute: 100, perHour: 50, burstMultiplier: 5 }, "edge.corsOrigins": ["https://x.example.com/path"] },
    });
    const msg = ev.error?.message ?? "";
    expect(msg).to.contain("edge.tls.issuer: is required for the staging environment");
    expect(msg).to.contain("edge.rateLimit.perHour: must be >= rateLimit.perMinute (100)");
    expect(msg).to.contain("edge.corsOrigins.0: must be an origin");
    expect(ev.resources).to.have.length(0);
  });
});
