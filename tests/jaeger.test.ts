import { expect } from "chai";
import { inventory } from "../config/inventory";
import { otelEnv, otlpEndpoints } from "../components/lib/telemetry";
import { retentionDays } from "../components/jaeger";
import { PORTS } from "../components/lib/ports";
import type { Evaluation } from "./harness";
import { validateObject } from "./checks";
import { evaluate, evaluateStack, findObject, objectsOfKind, ok, recordOf, STACKS, configOf } from "./harness";

function jaegerParts(ev: Evaluation) {
  const ns = `email-platform-${ev.stack}`;
  const deployment = findObject(ev, "Deployment", "jaeger", ns);
  const service = findObject(ev, "Service", "jaeger", ns);
  const configMap = findObject(ev, "ConfigMap", "jaeger-config", ns);
  const config = JSON.parse(configMap.data["config.yaml"]);
  return { ns, deployment, service, configMap, config, container: deployment.spec.template.spec.containers[0] };
}

describe("jaeger", () => {
  for (const stack of STACKS) {
    describe(stack, () => {
      it("runs a pinned Jaeger v2 with OTLP gRPC/HTTP, UI, health and metrics ports, and a Service with named ports", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        const { container, service } = jaegerParts(ev);
        expect(container.image).to.equal(cfg.jaeger.image).and.match(/^jaegertracing\/jaeger:2\.\d+\.\d+$/);
        const ports = Object.fromEntries(container.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]));
        expect(ports).to.deep.equal({ "otlp-grpc": 4317, "otlp-http": 4318, http: 16686, health: 13133, metrics: 8888 });
        const svc = Object.fromEntries(service.spec.ports.map((p: { name: string; port: number; targetPort: string }) => [p.name, [p.port, p.targetPort]]));
        expect(svc).to.deep.equal({ "otlp-grpc": [4317, "otlp-grpc"], "otlp-http": [4318, "otlp-http"], http: [16686, "http"], metrics: [8888, "metrics"] });
        expect(service.spec.selector).to.deep.equal({ "app.kubernetes.io/name": "jaeger", "app.kubernetes.io/instance": `email-platform-${stack}` });
        expect(container.resources).to.deep.equal(cfg.jaeger.resources);
      });

      it("probes the health-check extension and passes Pod Security restricted", async () => {
        const { deployment, container, config } = jaegerParts(ok(await evaluateStack(stack)));
        for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
          expect(container[probe].httpGet, probe).to.deep.equal({ path: "/status", port: "health" });
        }
        expect(config.extensions.healthcheckv2.http.endpoint).to.equal(`0.0.0.0:${PORTS.jaeger.health}`);
        const pod = deployment.spec.template.spec;
        expect(pod.securityContext).to.include({ runAsNonRoot: true });
        expect(pod.securityContext.seccompProfile).to.deep.equal({ type: "RuntimeDefault" });
        expect(container.securityContext).to.deep.include({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ["ALL"] } });
        expect(pod.serviceAccountName).to.equal("jaeger");
        expect(pod.automountServiceAccountToken).to.equal(false);
        expect(deployment.spec.strategy).to.deep.equal({ type: "Recreate" });
        expect(deployment.spec.template.metadata.annotations["checksum/config"]).to.match(/^[0-9a-f]{64}$/);
      });

      it("renders its config into a ConfigMap: OTLP receivers, UI under /jaeger, storage and retention from config", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(stack);
        const { config, container, deployment } = jaegerParts(ev);
        expect(container.args).to.deep.equal(["--config=file:/etc/jaeger/config.yaml"]);
        expect(config.receivers.otlp.protocols).to.deep.equal({ grpc: { endpoint: "0.0.0.0:4317" }, http: { endpoint: "0.0.0.0:4318" } });
        expect(config.extensions.jaeger_query.base_path).to.equal("/jaeger");
        expect(config.service.pipelines.traces.exporters).to.deep.equal(["jaeger_storage_exporter"]);
        const backend = config.extensions.jaeger_storage.backends.main;
        const pvcs = objectsOfKind(ev, "PersistentVolumeClaim").filter((p) => p.metadata.name === "jaeger-data");
        if (cfg.jaeger.storage.type === "memory") {
          expect(stack).to.equal("dev");
          expect(backend).to.deep.equal({ memory: { max_traces: cfg.jaeger.storage.maxTraces } });
          expect(pvcs).to.have.length(0);
        } else {
          expect(cfg.jaeger.storage.type).to.equal("badger");
          expect(backend.badger).to.deep.equal({ directories: { keys: "/badger/keys", values: "/badger/values" }, ephemeral: false, ttl: { spans: cfg.jaeger.retention } });
          expect(pvcs).to.have.length(1);
          expect(pvcs[0].spec.resources.requests.storage).to.equal(cfg.jaeger.storage.volume.size);
          const rec = recordOf(ev, "PersistentVolumeClaim", "jaeger-data");
          expect(rec.options.retainOnDelete).to.equal(true);
          expect(rec.options.protect).to.equal(stack === "prod");
          const pod = deployment.spec.template.spec;
          expect(pod.volumes.find((v: { name: string }) => v.name === "data").persistentVolumeClaim.claimName).to.equal("jaeger-data");
          expect(container.volumeMounts).to.deep.include({ name: "data", mountPath: "/badger" });
        }
        // The inventory (quotas) counts the volume exactly when it exists, and the metrics port the Service names.
        const group = inventory(cfg).find((g) => g.name === "jaeger")!;
        expect(group.volumes).to.equal(pvcs.length);
        expect(group.metricsPort).to.equal(PORTS.jaeger.metrics);
      });

      it("validates against the Kubernetes schema", async () => {
        const ev = ok(await evaluateStack(stack));
        const { deployment, service, configMap } = jaegerParts(ev);
        await validateObject(deployment);
        await validateObject(service);
        await validateObject(configMap);
        for (const pvc of objectsOfKind(ev, "PersistentVolumeClaim").filter((p) => p.metadata.name === "jaeger-data")) {
          await validateObject(pvc);
        }
      });
    });
  }

  it("uses an external Elasticsearch/OpenSearch from config, without a volume, and enforces retention with a daily index cleaner", async () => {
    const external = { serverUrls: ["https://search.logging.svc:9200"], indexPrefix: "tracing", namespace: "logging", port: 9200 };
    const ev = ok(await evaluate({ stack: "prod", set: { "jaeger.storage": { type: "opensearch", external } } }));
    const cfg = configOf("prod");
    const { config, ns } = jaegerParts(ev);
    expect(config.extensions.jaeger_storage.backends.main).to.deep.equal({ opensearch: { server_urls: external.serverUrls, indices: { index_prefix: "tracing" } } });
    expect(objectsOfKind(ev, "PersistentVolumeClaim").filter((p) => p.metadata.name === "jaeger-data")).to.have.length(0);
    const cron = findObject(ev, "CronJob", "jaeger-index-cleaner", ns);
    expect(cron.spec.schedule).to.equal(cfg.jaeger.indexCleaner.schedule);
    expect(cron.spec.concurrencyPolicy).to.equal("Forbid");
    const pod = cron.spec.jobTemplate.spec.template.spec;
    // prod keeps 168h of spans: 7 days.
    expect(pod.containers[0].args).to.deep.equal([String(retentionDays(cfg.jaeger.retention)), external.serverUrls[0]]).and.deep.equal(["7", external.serverUrls[0]]);
    expect(pod.containers[0].env).to.deep.equal([{ name: "INDEX_PREFIX", value: "tracing" }]);
    expect(pod.containers[0].securityContext).to.deep.include({ allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: { drop: ["ALL"] } });
    await validateObject(cron);
    expect(inventory(configOf("prod", { jaeger: { storage: { type: "opensearch", external } } })).map((g) => g.name)).to.include("jaeger-index-cleaner");
    // Badger and memory stores expire spans themselves: no cleaner.
    expect(objectsOfKind(ok(await evaluateStack("prod")), "CronJob").filter((c) => c.metadata.name === "jaeger-index-cleaner")).to.have.length(0);
    expect([retentionDays("24h"), retentionDays("25h"), retentionDays("1h")]).to.deep.equal([1, 2, 1]);
  });

  it("authenticates to the external store with a user-supplied secret, through secretKeyRefs only", async () => {
    const external = { serverUrls: ["https://es.example.net:9243"], indexPrefix: "tracing", port: 9243, username: "jaeger", passwordSecret: "tracingStorePassword" };
    const set = { "jaeger.storage": { type: "elasticsearch", external } };
    const missing = await evaluate({ stack: "prod", set });
    expect(missing.error?.message).to.contain("tracingStorePassword: is a required secret (asked for by jaeger.storage.external.passwordSecret)");
    expect(missing.resources).to.have.length(0);

    const ev = ok(await evaluate({ stack: "prod", set, secrets: { tracingStorePassword: "s3cret-value" } }));
    const { config, container, ns } = jaegerParts(ev);
    expect(config.extensions.jaeger_storage.backends.main.elasticsearch.auth).to.deep.equal({ basic: { username: "jaeger", password: "${env:ES_PASSWORD}" } });
    const ref = { secretKeyRef: { name: "jaeger-storage-credentials", key: "ES_PASSWORD" } };
    expect(container.env).to.deep.include({ name: "ES_PASSWORD", valueFrom: ref });
    const cleaner = findObject(ev, "CronJob", "jaeger-index-cleaner", ns).spec.jobTemplate.spec.template.spec.containers[0];
    expect(cleaner.env).to.deep.include({ name: "ES_PASSWORD", valueFrom: ref });
    const secret = findObject(ev, "Secret", "jaeger-storage-credentials", ns);
    expect(secret.stringData.ES_PASSWORD).to.equal("s3cret-value");
    expect(recordOf(ev, "Secret", "jaeger-storage-credentials").secretPaths.some((p) => "stringData.ES_PASSWORD".startsWith(p))).to.equal(true);
    // The password never lands in a ConfigMap or a plain env value.
    expect(JSON.stringify(objectsOfKind(ev, "ConfigMap"))).not.to.contain("s3cret-value");
    expect(JSON.stringify(objectsOfKind(ev, "Deployment"))).not.to.contain("s3cret-value");

    const half = await evaluate({ stack: "prod", set: { "jaeger.storage": { type: "elasticsearch", external: { ...external, passwordSecret: undefined } } } });
    expect(half.error?.message).to.contain("jaeger.storage.external.passwordSecret: must be set together with username");
  });

  it("refuses external storage without its connection settings, naming the key", async () => {
    const ev = await evaluate({ stack: "prod", set: { "jaeger.storage.type": "elasticsearch" } });
    expect(ev.error?.message).to.contain("jaeger.storage.external: is required when storage.type is elasticsearch");
    expect(ev.resources).to.have.length(0);
    const bad = await evaluate({ stack: "staging", set: { "jaeger.samplingRatio": 1.5, "jaeger.retention": "7d" } });
    expect(bad.error?.message).to.contain("jaeger.samplingRatio").and.contain("jaeger.retention");
    expect(bad.resources).to.have.length(0);
  });

  it("creates nothing for Jaeger when it is disabled, and the OTEL env is then empty", async () => {
    const ev = ok(await evaluate({ stack: "dev", set: { "jaeger.enabled": false } }));
    expect(objectsOfKind(ev, "Deployment").filter((d) => d.metadata.name === "jaeger")).to.have.length(0);
    expect(otelEnv(configOf("dev", { jaeger: { enabled: false } }), "api")).to.deep.equal([]);
  });
});

describe("telemetry: OTEL env for instrumented workloads", () => {
  for (const stack of STACKS) {
    it(`${stack}: points at Jaeger's OTLP gRPC endpoint with the per-environment sampling ratio`, () => {
      const cfg = configOf(stack);
      const env = Object.fromEntries(otelEnv(cfg, "api").map((e) => [e.name, e.value]));
      expect(env.OTEL_EXPORTER_OTLP_ENDPOINT).to.equal(`http://jaeger.email-platform-${stack}.svc.cluster.local:4317`);
      expect(env.OTEL_EXPORTER_OTLP_ENDPOINT).to.equal(otlpEndpoints(cfg).grpc);
      expect(env.OTEL_EXPORTER_OTLP_PROTOCOL).to.equal("grpc");
      expect(env.OTEL_SERVICE_NAME).to.equal("api");
      expect(env.OTEL_TRACES_SAMPLER).to.equal("parentbased_traceidratio");
      // Seed-derived defaults: everything in dev, half in staging, a tenth in prod.
      expect(Number(env.OTEL_TRACES_SAMPLER_ARG)).to.equal({ dev: 1, staging: 0.5, prod: 0.1 }[stack]);
      expect(Number(env.OTEL_TRACES_SAMPLER_ARG)).to.equal(cfg.jaeger.samplingRatio);
      expect(env.OTEL_RESOURCE_ATTRIBUTES).to.equal(`deployment.environment=${stack},service.namespace=email-platform,service.version=${stack === "dev" ? "3.12.7-alpine3.20" : "1.0.0"}`);
    });
  }

  it("names workers by pool and omits service.version when the image is unknown", () => {
    const cfg = configOf("prod");
    const env = Object.fromEntries(otelEnv(cfg, "worker-default").map((e) => [e.name, e.value]));
    expect(env.OTEL_SERVICE_NAME).to.equal("worker-default");
    expect(env.OTEL_RESOURCE_ATTRIBUTES).to.contain("service.version=1.0.0");
    const other = Object.fromEntries(otelEnv(cfg, "something").map((e) => [e.name, e.value]));
    expect(other.OTEL_RESOURCE_ATTRIBUTES).to.equal("deployment.environment=prod,service.namespace=email-platform");
  });

  it("is wired into the API and worker pods", async () => {
    const ev = ok(await evaluateStack("staging"));
    const cfg = configOf("staging");
    const apps = objectsOfKind(ev, "Deployment").filter((d) => d.metadata.name === "api" || d.metadata.name.startsWith("worker-"));
    expect(apps.map((d) => d.metadata.name)).to.include.members(["api", "worker-default"]);
    for (const d of apps) {
      const env = d.spec.template.spec.containers[0].env ?? [];
      for (const want of otelEnv(cfg, d.metadata.name)) expect(env, `${d.metadata.name} ${want.name}`).to.deep.include(want);
    }
  });
});
