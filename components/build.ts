// Builds the whole platform from a validated config: cluster provider, platform layer, generated
// secrets, then each tier, then the NetworkPolicies that the tiers' declared edges imply.
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import { inventory, namespaceOf } from "../config/inventory";
import type { LoadedConfig } from "../config/loader";
import { internetExcept } from "../config/egress";
import { DataTier } from "./data";
import { DependencyGraph } from "./lib/graph";
import { selectorLabels } from "./lib/labels";
import { otelEnv } from "./lib/telemetry";
import { Edge, controllerSettings, edgeRoutes } from "./edge";
import { Jaeger } from "./jaeger";
import { MailTier } from "./mail";
import { Monitoring, declareMonitoringEdges } from "./monitoring";
import { NetworkPolicies } from "./network";
import { Platform } from "./platform";
import { RolloutReport } from "./rollout";
import { GeneratedSecrets } from "./secrets";
import { HttpServices } from "./services";
import { SmokeTest, declareSmokeEdges } from "./smoke";
import { Workers } from "./workers";

export interface BuiltPlatform {
  outputs: Record<string, pulumi.Input<unknown>>;
}

export function buildPlatform({ config: cfg, secret }: LoadedConfig): BuiltPlatform {
  // An explicit provider: staging/prod always name their context (enforced by the schema), and no
  // object relies on a provider default namespace.
  const provider = new k8s.Provider("cluster", {
    ...(cfg.cluster.context ? { context: cfg.cluster.context } : {}),
    ...(cfg.cluster.kubeconfig ? { kubeconfig: cfg.cluster.kubeconfig } : {}),
    enableServerSideApply: true,
  });
  const opts = { providers: [provider] };

  // The graph's nodes are the inventory's pod groups; tiers only declare edges between them.
  const pods = inventory(cfg);
  const graph = new DependencyGraph({ internetExcept: internetExcept(cfg.platform.clusterCidrs) });
  for (const g of pods) graph.addWorkload({ name: g.name, namespace: namespaceOf(cfg, g.namespace), selector: selectorLabels(cfg, { name: g.name, component: g.name }) });

  const platform = new Platform("platform", { config: cfg, inventory: pods }, opts);
  const secrets = new GeneratedSecrets("secrets", { config: cfg, namespace: platform.namespaces.app, external: secret }, opts);

  // Providers before consumers: the app tiers read the stores' connection Secret and mail's submission Secret.
  const data = new DataTier("data", { config: cfg, namespace: platform.namespaces.app, serviceAccount: (n) => platform.serviceAccount(n), secrets, graph, secret }, opts);
  const mail = cfg.mail.enabled
    ? new MailTier("mail", { config: cfg, namespace: platform.namespaces.mail, appNamespace: platform.namespaces.app, serviceAccount: (n) => platform.serviceAccount(n), graph, secret }, opts)
    : undefined;
  const jaeger = cfg.jaeger.enabled
    ? new Jaeger("jaeger", { config: cfg, namespace: platform.namespaces.app, serviceAccountName: platform.serviceAccount("jaeger"), graph, secret }, opts)
    : undefined;

  // From mail's submission Secret the apps take the credentials; host and port are plain config.
  const mailSubmission = mail?.submission && { ...mail.submission, keys: mail.submission.keys.filter((k) => !["SMTP_HOST", "SMTP_PORT"].includes(k)) };
  // A schema migration Job starts once the stores and its NetworkPolicy exist; the policies come
  // from the finished graph, after every tier, so the services get a promise of them.
  let releaseMigrations: (after: pulumi.Resource[]) => void = () => undefined;
  const migrationsAfter = new Promise<pulumi.Resource[]>((resolve) => (releaseMigrations = resolve));
  const app = { config: cfg, platform, secrets, graph, connections: data.connections, mailSubmission, telemetryEnv: (w: string) => otelEnv(cfg, w), migrationsAfter };
  const services = new HttpServices("services", app, opts);
  const workers = cfg.workers.enabled ? new Workers("workers", app, opts) : undefined;

  // Edges from outside the tiers: the ingress controller to what it routes, Prometheus to every metrics port.
  const routes = edgeRoutes(cfg, services.routes, workers?.routes ?? []);
  const edge = cfg.edge.enabled ? new Edge("edge", { config: cfg, namespace: platform.namespaces.app, ...routes, graph }, opts) : undefined;
  declareMonitoringEdges(cfg, graph, pods);
  const monitoring = cfg.monitoring.enabled ? new Monitoring("monitoring", { config: cfg, namespaces: platform.namespaces, inventory: pods, serviceAccount: (n) => platform.serviceAccount(n) }, opts) : undefined;
  declareSmokeEdges(cfg, graph);

  const network = new NetworkPolicies("network", { config: cfg, graph }, opts);
  releaseMigrations([data, network]);

  // Verification after every tier: the smoke test Job (fails `pulumi up` when the platform does
  // not work), then the rollout report on the operator's machine (docs/verify.md).
  const tiers = [data, mail, jaeger, services, workers, edge, monitoring, network].filter((t): t is NonNullable<typeof t> => t !== undefined);
  const smoke = cfg.verify.smoke.enabled
    ? new SmokeTest("smoke", { config: cfg, namespace: platform.namespaces.app, serviceAccountName: platform.serviceAccount("smoke"), secrets }, { ...opts, dependsOn: tiers })
    : undefined;
  const mailReport = mail && { hostname: mail.model.hostname, dnsZone: mail.dnsZone };
  if (cfg.verify.rollout.enabled) new RolloutReport("rollout", { config: cfg, urls: edge?.urls ?? {}, mail: mailReport }, { dependsOn: smoke ? [...tiers, smoke] : tiers });

  return {
    outputs: {
      environment: cfg.environment,
      kubeContext: cfg.cluster.context ?? "(current context)",
      namespaces: platform.namespaces,
      routes: [...routes.routes, ...routes.protectedRoutes],
      dataStores: data.outputs,
      connectionSecret: data.connections?.name,
      urls: edge?.urls ?? {},
      // Keys for the ingress controller's own ConfigMap (the platform does not run the controller).
      ingressControllerSettings: edge ? controllerSettings(cfg) : undefined,
      opsUser: edge?.opsPassword ? edge.opsUser : undefined,
      opsPassword: edge?.opsPassword,
      // The declared traffic graph (who may talk to whom): for docs and the reachability test.
      dependencyGraph: { workloads: graph.workloads, edges: graph.edges, internetExcept: graph.internetExcept },
      secretNames: { app: secrets.app.name, postgres: secrets.postgres?.name, redis: secrets.redis?.name, mongo: secrets.mongo?.name, chroma: secrets.chroma?.name },
      ...(mail ? mail.outputs() : {}),
      smokeTest: smoke ? { job: smoke.job.metadata.name, checks: smoke.checks } : undefined,
    },
  };
}
