// Every tier can be turned off per stack, and nothing that referred to it survives: no env var,
// Secret/ConfigMap reference, NetworkPolicy peer, Ingress path, alert expression or ServiceMonitor
// names it, every remaining reference resolves, and the policies still allow exactly the graph.
// One evaluation per disabled tier (staging: monitoring and Flower are on there).
import { expect } from "chai";

import { referenceProblems } from "./checks";
import type { Evaluation, K8sObject } from "./harness";
import { configOf, evaluate, k8sObjects, ok } from "./harness";
import { diff, reachabilityMatrix } from "./reachability";

const STACK = "staging";
const base = configOf(STACK);
const { ingressNamespace, monitoringNamespace, mailNamespace } = base.platform;

interface Tier {
  /** Config that turns the tier off (plus what must go with it). */
  set: Record<string, unknown>;
  /** What a leftover reference would contain: workload/Service names, env keys, namespaces. */
  names: RegExp;
  /** Kinds that must be gone entirely. */
  gone?: string[];
}

const TIERS: Record<string, Tier> = {
  workers: { set: { "workers.enabled": false }, names: /\b(worker-[a-z0-9-]+|beat|flower|FLOWER_\w+)\b/ },
  mail: { set: { "mail.enabled": false }, names: new RegExp(`\\b(postfix|dovecot|SMTP_\\w+|IMAP_(HOST|PORT)|mail-submission|${mailNamespace})\\b`) },
  mongo: { set: { "mongo.enabled": false }, names: /\b(mongo|mongo-backup|MONGO\w*|mongodb_\w+)\b/ },
  postgres: { set: { "postgres.enabled": false }, names: /\b(postgres|postgres-backup|DATABASE_URL|DB_(HOST|PORT|NAME|USER|PASSWORD)|POSTGRES\w*|pg_\w+)\b/ },
  // Celery needs its broker: without Redis the workers go too (a config error otherwise).
  redis: { set: { "redis.enabled": false, "workers.enabled": false }, names: /\b(redis|REDIS\w*|CELERY_\w+|redis_\w+)\b/ },
  // Off in every stack file already: the stack as it is must carry nothing of Chroma's.
  chroma: { set: { "chroma.enabled": false }, names: /\b(chroma|chroma-[a-z-]+|CHROMA_\w+)\b/ },
  jaeger: { set: { "jaeger.enabled": false }, names: /\b(jaeger|jaeger-[a-z-]+|OTEL_\w+)\b/ },
  services: { set: { "services.api.enabled": false }, names: /\b(api|api-config|api-lb)\b/ },
  // A static frontend entry that is switched off leaves nothing either.
  frontend: { set: { "services.web": { kind: "static", image: "ghcr.io/example/web:1.0.0", enabled: false } }, names: /(?<!--)\b(web|web-nginx)\b/ },
  edge: { set: { "edge.enabled": false }, names: new RegExp(`\\b(${ingressNamespace}|nginx_ingress_\\w+)\\b`), gone: ["Ingress"] },
  monitoring: { set: { "monitoring.enabled": false }, names: new RegExp(`\\b${monitoringNamespace}\\b`), gone: ["ServiceMonitor", "PrometheusRule"] },
};

/** Every place one object can point at another tier, as "where: text" lines. */
export function referenceTexts(obj: K8sObject): string[] {
  const at = `${obj.kind} ${obj.metadata?.name}`;
  const out: string[] = [`${at}: name ${obj.metadata?.name}`];
  const tpl = obj.kind === "CronJob" ? obj.spec?.jobTemplate?.spec?.template : obj.spec?.template;
  for (const c of [...(tpl?.spec?.initContainers ?? []), ...(tpl?.spec?.containers ?? [])]) {
    for (const e of c.env ?? []) {
      out.push(`${at}/${c.name}: env ${e.name}=${e.value ?? ""}`);
      const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
      if (ref) out.push(`${at}/${c.name}: env ${e.name} from ${ref.name}/${ref.key}`);
    }
    for (const f of c.envFrom ?? []) out.push(`${at}/${c.name}: envFrom ${f.secretRef?.name ?? f.configMapRef?.name}`);
    out.push(`${at}/${c.name}: args ${[...(c.command ?? []), ...(c.args ?? [])].join(" ")}`);
  }
  if (obj.kind === "ConfigMap") for (const [k, v] of Object.entries(obj.data ?? {})) if (!k.endsWith(".json") && !k.endsWith(".conf")) out.push(`${at}: ${k}=${v}`);
  if (obj.kind === "NetworkPolicy") {
    const peers = [...(obj.spec.ingress ?? []).flatMap((r: any) => r.from ?? []), ...(obj.spec.egress ?? []).flatMap((r: any) => r.to ?? [])];
    for (const p of [obj.spec.podSelector, ...peers.flatMap((p: any) => [p.podSelector, p.namespaceSelector])]) {
      for (const v of Object.values(p?.matchLabels ?? {})) out.push(`${at}: peer ${v}`);
    }
  }
  if (obj.kind === "Ingress") {
    for (const r of obj.spec.rules ?? []) for (const p of r.http?.paths ?? []) out.push(`${at}: path ${p.path} -> ${p.backend.service.name}`);
  }
  if (obj.kind === "PrometheusRule") for (const g of obj.spec.groups) for (const r of g.rules) out.push(`${at}: ${r.alert} ${r.expr}`);
  if (obj.kind === "ServiceMonitor") out.push(`${at}: selects ${Object.values(obj.spec.selector.matchLabels).join(",")}`);
  return out;
}

describe("tiers are optional: turning one off leaves no dangling reference", () => {
  for (const [tier, t] of Object.entries(TIERS)) {
    describe(`${tier} off`, () => {
      let ev: Evaluation;
      before(async () => {
        ev = ok(await evaluate({ stack: STACK, set: t.set }));
      });

      it("leaves no object, env var, Secret/ConfigMap key, policy peer, route, alert or ServiceMonitor naming it", () => {
        const leftovers = k8sObjects(ev).flatMap(({ obj }) => referenceTexts(obj)).filter((line) => t.names.test(line.slice(line.indexOf(": ") + 2)));
        expect(leftovers).to.deep.equal([]);
        for (const kind of t.gone ?? []) expect(k8sObjects(ev).filter(({ obj }) => obj.kind === kind).map(({ obj }) => obj.metadata.name), kind).to.deep.equal([]);
        const graph = ev.outputs.dependencyGraph as { workloads: { name: string }[] };
        expect(graph.workloads.map((w) => w.name).filter((n) => t.names.test(n))).to.deep.equal([]);
      });

      it("resolves every remaining reference and allows exactly the declared graph", () => {
        expect(referenceProblems(ev)).to.deep.equal([]);
        const m = reachabilityMatrix(ev);
        expect(diff(m.actual, m.expected)).to.deep.equal({ missing: [], extra: [] });
      });
    });
  }

  it("refuses a dependency on a disabled tier, naming both (services, workers)", async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ "postgres.enabled": false, "services.api.dependsOn": ["postgres"] }, /services\.api\.dependsOn\.0: service "api" depends on postgres, but postgres is disabled/],
      [{ "mail.enabled": false, "workers.dependsOn": ["redis", "mail"] }, /workers\.dependsOn\.1: workers depends on mail, but mail is disabled/],
      [{ "redis.enabled": false }, /workers need the Celery broker, but redis is disabled/],
    ];
    for (const [set, message] of cases) {
      const ev = await evaluate({ stack: STACK, set });
      expect(ev.error?.message, JSON.stringify(set)).to.match(message);
      expect(ev.resources.length).to.equal(0);
    }
  });
});
