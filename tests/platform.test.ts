// The platform layer: Pod Security labels, quotas that admit the worst case, LimitRanges,
// default-deny with DNS, one token-less ServiceAccount per tier, and explicit cluster targeting.
import { expect } from "chai";
import { inventory } from "../config/inventory";
import { bytes, cpuMillis, formatCpu } from "../config/quantity";
import { quotaFor } from "../config/quota";
import type { Evaluation } from "./harness";
import { STACKS, configOf, evaluate, evaluateStack, findObject, objectsOfKind, ok, rejection } from "./harness";
import { podSpecs } from "./checks";

/** Worst case of what the registered workloads of a namespace can run at once: HPA max (or replicas) plus surge. */
function worstCase(ev: Evaluation, ns: string) {
  const hpas = objectsOfKind(ev, "HorizontalPodAutoscaler").filter((h) => h.metadata.namespace === ns);
  const sum = { pods: 0, cpu: 0, memory: 0, limitsCpu: 0, limitsMemory: 0 };
  for (const kind of ["Deployment", "StatefulSet", "CronJob"]) {
    for (const w of objectsOfKind(ev, kind).filter((o) => o.metadata.namespace === ns)) {
      const hpa = hpas.find((h) => h.spec.scaleTargetRef.name === w.metadata.name && h.spec.scaleTargetRef.kind === kind);
      const max = kind === "CronJob" ? 1 : (hpa?.spec.maxReplicas ?? w.spec.replicas ?? 1);
      const s = w.spec.strategy?.rollingUpdate?.maxSurge;
      const surge = kind !== "Deployment" || w.spec.strategy?.type === "Recreate" ? 0 : typeof s === "number" ? s : Math.ceil((max * parseInt(s ?? "25%", 10)) / 100);
      const pods = max + surge;
      sum.pods += pods;
      for (const { spec } of podSpecs(w)) {
        for (const c of spec.containers) {
          sum.cpu += pods * cpuMillis(c.resources.requests.cpu);
          sum.memory += pods * bytes(c.resources.requests.memory);
          sum.limitsCpu += pods * cpuMillis(c.resources.limits.cpu);
          sum.limitsMemory += pods * bytes(c.resources.limits.memory);
        }
      }
    }
  }
  return sum;
}

describe("platform layer", () => {
  for (const stack of STACKS) {
    describe(stack, () => {
      const appNs = `email-platform-${stack}`;
      const mailNs = `email-platform-mail-${stack}`;

      it("labels the app namespace restricted and the mail namespace baseline (enforce, audit, warn)", async () => {
        const ev = ok(await evaluateStack(stack));
        const app = findObject(ev, "Namespace", appNs);
        const mail = findObject(ev, "Namespace", mailNs);
        for (const mode of ["enforce", "audit", "warn"]) {
          expect(app.metadata.labels[`pod-security.kubernetes.io/${mode}`]).to.equal("restricted");
          expect(mail.metadata.labels[`pod-security.kubernetes.io/${mode}`]).to.equal("baseline");
        }
      });

      it("sizes each namespace's quota to admit every workload at its HPA maximum plus rollout surge", async () => {
        const ev = ok(await evaluateStack(stack));
        for (const ns of [appNs, mailNs]) {
          const hard = findObject(ev, "ResourceQuota", "compute", ns).spec.hard;
          const need = worstCase(ev, ns);
          expect(Number(hard.pods), `${ns} pods`).to.be.at.least(need.pods);
          expect(cpuMillis(hard["requests.cpu"]), `${ns} requests.cpu`).to.be.at.least(need.cpu);
          expect(bytes(hard["requests.memory"]), `${ns} requests.memory`).to.be.at.least(need.memory);
          expect(cpuMillis(hard["limits.cpu"]), `${ns} limits.cpu`).to.be.at.least(need.limitsCpu);
          expect(bytes(hard["limits.memory"]), `${ns} limits.memory`).to.be.at.least(need.limitsMemory);
        }
      });

      it("the quota follows the environment: prod admits more than dev", async () => {
        const [dev, prod] = [ok(await evaluateStack("dev")), ok(await evaluateStack("prod"))];
        const cpu = (ev: Evaluation, env: string) => cpuMillis(findObject(ev, "ResourceQuota", "compute", `email-platform-${env}`).spec.hard["requests.cpu"]);
        expect(cpu(prod, "prod")).to.be.greaterThan(cpu(dev, "dev"));
      });

      it("a LimitRange gives containers defaults and bounds (seed 003 shape) that every container fits in", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        for (const ns of [appNs, mailNs]) {
          const [limit] = findObject(ev, "LimitRange", "container-defaults", ns).spec.limits;
          expect(limit.type).to.equal("Container");
          expect(limit.defaultRequest).to.deep.equal(cfg.platform.limitRange.defaultRequest);
          expect(limit.default).to.deep.equal(cfg.platform.limitRange.default);
          for (const w of [...objectsOfKind(ev, "Deployment"), ...objectsOfKind(ev, "StatefulSet")].filter((o) => o.metadata.namespace === ns)) {
            for (const c of w.spec.template.spec.containers) {
              expect(cpuMillis(c.resources.limits.cpu)).to.be.at.most(cpuMillis(limit.max.cpu));
              expect(bytes(c.resources.limits.memory)).to.be.at.most(bytes(limit.max.memory));
              expect(cpuMillis(c.resources.requests.cpu)).to.be.at.least(cpuMillis(limit.min.cpu));
            }
          }
        }
      });

      it("denies all ingress and egress by default in each namespace, allowing only DNS to kube-dns", async () => {
        const ev = ok(await evaluateStack(stack));
        for (const ns of [appNs, mailNs]) {
          const deny = findObject(ev, "NetworkPolicy", "default-deny", ns);
          expect(deny.spec).to.deep.equal({ podSelector: {}, policyTypes: ["Ingress", "Egress"] });
          const dns = findObject(ev, "NetworkPolicy", "allow-dns", ns);
          expect(dns.spec.policyTypes).to.deep.equal(["Egress"]);
          expect(dns.spec.egress).to.have.length(1);
          expect(dns.spec.egress[0].to[0].podSelector.matchLabels).to.deep.equal({ "k8s-app": "kube-dns" });
          expect(dns.spec.egress[0].ports.map((p: { port: number; protocol: string }) => `${p.port}/${p.protocol}`)).to.have.members(["53/UDP", "53/TCP"]);
        }
      });

      it("creates one ServiceAccount per tier in the inventory, none mounting an API token", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        const sas = objectsOfKind(ev, "ServiceAccount");
        const expected = [...new Set(inventory(cfg).map((g) => `${g.namespace === "app" ? appNs : mailNs}/${g.serviceAccount}`))];
        expect(sas.map((s) => `${s.metadata.namespace}/${s.metadata.name}`)).to.have.members(expected);
        for (const sa of sas) expect(sa.automountServiceAccountToken, sa.metadata.name).to.equal(false);
      });

      it("targets the cluster through an explicit provider: staging and prod name their kube context", async () => {
        const ev = ok(await evaluateStack(stack));
        const providers = ev.resources.filter((r) => r.type === "pulumi:providers:kubernetes");
        expect(providers).to.have.length(1);
        const cfg = configOf(stack);
        expect(providers[0].inputs.context).to.equal(cfg.cluster.context);
        if (stack !== "dev") expect(providers[0].inputs.context).to.be.a("string").and.not.empty;
        const k8sResources = ev.resources.filter((r) => r.custom && r.type.startsWith("kubernetes:"));
        expect(k8sResources.every((r) => r.provider.includes("pulumi:providers:kubernetes::cluster"))).to.equal(true);
      });
    });
  }

  describe("quota ceiling (platform.quota.max)", () => {
    const cfg = configOf("prod");
    const app = inventory(cfg).filter((g) => g.namespace === "app");
    const hard = quotaFor(app, cfg.platform.quota.headroomPercent);

    it("accepts a ceiling at exactly the computed quota, and the ResourceQuota is unchanged by it", async () => {
      const exact = { requestsCpu: hard["requests.cpu"], requestsMemory: hard["requests.memory"], limitsCpu: hard["limits.cpu"], limitsMemory: hard["limits.memory"], pods: Number(hard.pods) };
      const ev = ok(await evaluate({ stack: "prod", set: { "platform.quota.max": exact, "mail.enabled": false } }));
      expect(findObject(ev, "ResourceQuota", "compute", cfg.platform.namespace).spec.hard).to.deep.equal(hard);
    });

    it("refuses one step below, before anything is registered, naming the three biggest contributors by their config keys", async () => {
      const below = formatCpu(cpuMillis(hard["requests.cpu"]) - 1);
      const message = await rejection({ stack: "prod", set: { "platform.quota.max": { requestsCpu: below } } });
      const share = (g: (typeof app)[number]) => (g.maxPods + g.surge) * g.containers.reduce((n, c) => n + cpuMillis(c.requests.cpu), 0);
      const top = [...app].sort((a, b) => share(b) - share(a)).slice(0, 3).map((g) => g.configPath);
      expect(top[0]).to.equal("services.api");
      const named = /biggest contributors: (.*), got/.exec(message)![1].split(", ").map((c) => c.split(" ")[0]);
      expect(named).to.deep.equal(top);
      expect(message).to.contain(`platform.quota.max.requestsCpu: the app namespace's computed quota needs requests.cpu ${hard["requests.cpu"]}`);
    });

    it("applies to every namespace: a pods ceiling the mail namespace exceeds names mail's own workloads", () => {
      const mailHard = quotaFor(inventory(cfg).filter((g) => g.namespace === "mail"), cfg.platform.quota.headroomPercent);
      const appPods = Number(hard.pods);
      const cap = Number(mailHard.pods) - 1;
      expect(cap).to.be.below(appPods);
      expect(() => configOf("prod", { platform: { quota: { max: { pods: cap } } } })).to.throw(/mail namespace's computed quota needs pods .*mail\.(postfix|dovecot)/);
    });
  });

  it("drops the mail namespace when the mail tier is off", async () => {
    const ev = ok(await evaluate({ stack: "dev", set: { "mail.enabled": false } }));
    expect(objectsOfKind(ev, "Namespace").map((n) => n.metadata.name)).to.deep.equal(["email-platform-dev"]);
  });
});
