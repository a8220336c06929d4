// The one configuration of a stack: every tier's settings, validated as a whole.
// Tier schemas and their environment defaults live beside this file, one file per area.
import { z } from "zod";
import { backupsDefaults, backupsSchema } from "./backups";
import { ENVIRONMENTS } from "./common";
import type { Environment } from "./common";
import type { Dependency } from "./dependencies";
import { resolveDependsOn } from "./dependencies";
import { egressIssues } from "./egress";
import { quotaIssues } from "./quota";
import { servicesDefaults, servicesSchema } from "./app";
import { workersDefaults, workersSchema } from "./workers";
import { STORES, chromaDefaults, chromaSchema, dataCrossTierIssues, mongoDefaults, mongoSchema, postgresDefaults, postgresSchema, redisDefaults, redisSchema } from "./data";
import { postgresIssues, resolvePostgres } from "./postgres";
import { mailDefaults, mailSchema } from "./mail";
import { MAIL_PROBE_SLACK_SECONDS, edgeDefaults, edgeSchema, jaegerDefaults, jaegerSchema, mailProbeScrapeTimeoutSeconds, monitoringDefaults, monitoringSchema } from "./observability";
import { clusterDefaults, clusterSchema, platformDefaults, platformSchema, secretsDefaults, secretsSchema } from "./platform";
import { schedulingDefaults, schedulingSchema } from "./scheduling";
import { verifyDefaults, verifySchema } from "./verify";

/** Secret config keys (`pulumi config set --secret <key>`) a user may bring; never generated. */
export const externalSecretKey = z.string().regex(/^[a-z][A-Za-z0-9]*$/, "must be a camelCase config key");

const rootObject = z.strictObject({
  environment: z.enum(ENVIRONMENTS),
  cluster: clusterSchema,
  platform: platformSchema,
  secrets: secretsSchema.extend({
    /**
     * Credentials that cannot be generated (seed 001's third-party API keys): env var name ->
     * secret config key. Required as soon as they are listed; exposed to the services as a Secret.
     */
    external: z.record(z.string().regex(/^[A-Z][A-Z0-9_]*$/, "must be an env var name"), externalSecretKey),
  }),
  services: servicesSchema,
  workers: workersSchema,
  postgres: postgresSchema,
  redis: redisSchema,
  mongo: mongoSchema,
  chroma: chromaSchema,
  mail: mailSchema,
  jaeger: jaegerSchema,
  edge: edgeSchema,
  monitoring: monitoringSchema,
  verify: verifySchema,
  backups: backupsSchema,
  scheduling: schedulingSchema,
});

/** The top-level keys a stack may set. */
export const ROOT_KEYS = Object.keys(rootObject.shape);

export const rootSchema = rootObject
  .superRefine((cfg, ctx) => {
    // A tier that needs a store cannot run while the store is off (config/data.ts).
    for (const issue of dataCrossTierIssues(cfg)) ctx.addIssue({ code: "custom", ...issue });
    // Postgres settings that contradict each other, the object store or the cluster settings.
    for (const issue of postgresIssues(cfg)) ctx.addIssue({ code: "custom", ...issue });
    // Staging and prod must say which cluster they deploy to.
    if (cfg.environment !== "dev" && !cfg.cluster.context) {
      ctx.addIssue({
        code: "custom",
        path: ["cluster", "context"],
        message: `is required for the ${cfg.environment} environment (the current kube context is only trusted in dev)`,
      });
    }
    // Outside dev the edge serves HTTPS only: a certificate issuer must be named.
    if (cfg.environment !== "dev" && cfg.edge.enabled && !cfg.edge.tls.issuer) {
      ctx.addIssue({ code: "custom", path: ["edge", "tls", "issuer"], message: `is required for the ${cfg.environment} environment (HTTPS with a cert-manager issuer)` });
    }
    // Mutable tags are refused outside dev: a rollback must redeploy the same bits.
    if (cfg.environment !== "dev") {
      for (const [path, ref] of imageRefs(cfg)) {
        if (/:latest(@|$)/.test(ref.split("/").pop() ?? "")) {
          ctx.addIssue({ code: "custom", path, message: `must not use the mutable tag 'latest' in ${cfg.environment}; pin a version or digest` });
        }
      }
    }
    // App dependencies (services.<name>.dependsOn, workers.dependsOn) must name enabled tiers.
    const dependents: [(string | number)[], string, readonly Dependency[] | undefined][] = [];
    for (const [name, s] of Object.entries(cfg.services)) {
      if (s.enabled && s.kind === "http") dependents.push([["services", name, "dependsOn"], `service "${name}"`, s.dependsOn]);
    }
    if (cfg.workers.enabled) dependents.push([["workers", "dependsOn"], "workers", cfg.workers.dependsOn]);
    for (const [name, s] of Object.entries(cfg.services)) {
      const m = s.enabled && s.kind === "http" ? s.migration : undefined;
      if (!m?.enabled || !m.dependsOn) continue;
      const path = ["services", name, "migration", "dependsOn"];
      dependents.push([path, `the migration of service "${name}"`, m.dependsOn]);
      // A migration connects to the service's own stores, nothing more (its edges and env follow).
      const own = resolveDependsOn(cfg, s.kind === "http" ? s.dependsOn : []);
      m.dependsOn.forEach((d, i) => {
        if (cfg[d].enabled && !own.includes(d)) ctx.addIssue({ code: "custom", path: [...path, i], message: `must be one of the service's own dependencies (${own.join(", ") || "none"})` });
      });
    }
    for (const [path, who, deps] of dependents) {
      (deps ?? []).forEach((d, i) => {
        if (!cfg[d].enabled) ctx.addIssue({ code: "custom", path: [...path, i], message: `${who} depends on ${d}, but ${d} is disabled (${d}.enabled: false)` });
      });
    }
    // The mail probes wait out postscreen's greeting delay, and a scrape may not outlast its interval.
    if (cfg.monitoring.enabled && cfg.mail.enabled) {
      const need = mailProbeScrapeTimeoutSeconds(cfg.mail.postscreen);
      if (parseInt(cfg.monitoring.scrapeInterval, 10) < need) {
        const wait = cfg.mail.postscreen.enabled ? `mail.postscreen.greetWaitSeconds (${cfg.mail.postscreen.greetWaitSeconds}) + ` : "";
        ctx.addIssue({ code: "custom", path: ["monitoring", "scrapeInterval"], message: `must be at least ${need}s, the mail probes' scrape timeout (${wait}${MAIL_PROBE_SLACK_SECONDS + 1} s: a probe of port 25 waits out postscreen's greeting delay)` });
      }
    }
    // Egress CIDRs must stay outside the cluster's own ranges.
    const cluster = cfg.platform.clusterCidrs;
    for (const [name, s] of Object.entries(cfg.services)) if (s.kind === "http") for (const issue of egressIssues(s.egress, cluster, ["services", name, "egress"])) ctx.addIssue({ code: "custom", ...issue });
    for (const [pool, p] of Object.entries(cfg.workers.pools)) for (const issue of egressIssues(p.egress, cluster, ["workers", "pools", pool, "egress"])) ctx.addIssue({ code: "custom", ...issue });
    for (const store of STORES) for (const issue of egressIssues(cfg[store].egress, cluster, [store, "egress"])) ctx.addIssue({ code: "custom", ...issue });
    // A managed database runs no pod here that could call out.
    if (cfg.postgres.external && Object.keys(cfg.postgres.egress).length) ctx.addIssue({ code: "custom", path: ["postgres", "egress"], message: `applies to Postgres pods, but postgres.external runs none here; got ${Object.keys(cfg.postgres.egress).join(", ")}` });
    // The quota ceiling, on the inventory the config implies. A malformed quantity is reported by
    // its own rule already; the sizing needs well-formed ones.
    let quota: ReturnType<typeof quotaIssues> = [];
    try {
      // Sized on the config as the program sees it: Postgres' mode-dependent defaults (replicas, sidecars) filled in.
      quota = quotaIssues({ ...cfg, postgres: resolvePostgres(cfg.postgres, cfg.environment, cfg.backups.objectStore !== undefined) } as PlatformConfig);
    } catch {
      quota = [];
    }
    for (const issue of quota) ctx.addIssue({ code: "custom", ...issue });
    // Celery needs its broker: beat and every pool talk to Redis.
    if (cfg.workers.enabled && !cfg.redis.enabled) {
      ctx.addIssue({ code: "custom", path: ["workers", "enabled"], message: "workers need the Celery broker, but redis is disabled (redis.enabled: false)" });
    } else if (cfg.workers.enabled && cfg.workers.dependsOn && !cfg.workers.dependsOn.includes("redis")) {
      ctx.addIssue({ code: "custom", path: ["workers", "dependsOn"], message: "must include redis (the Celery broker)" });
    }
  })
  // Defaults that depend on other settings (Postgres' mode), filled in once everything is valid.
  .transform((cfg) => ({ ...cfg, postgres: resolvePostgres(cfg.postgres, cfg.environment, cfg.backups.objectStore !== undefined) }));

export type PlatformConfig = z.infer<typeof rootSchema>;
export type RawConfig = z.input<typeof rootSchema>;

/**
 * Secret config keys the configuration needs, each with the setting that asks for it. A key listed
 * here must be set with `pulumi config set --secret`; a secret key not listed is an error too.
 */
export function requiredSecrets(cfg: PlatformConfig): Map<string, string> {
  const wanted = new Map<string, string>();
  for (const [envName, key] of Object.entries(cfg.secrets.external)) wanted.set(key, `secrets.external.${envName}`);
  // A relay with a user name needs its password; a relay without credentials (IP-allowlisted) needs none.
  if (cfg.mail.enabled && cfg.mail.relay?.username) wanted.set("smtpRelayPassword", "mail.relay.username");
  const spanStore = cfg.jaeger.enabled ? cfg.jaeger.storage.external : undefined;
  if (spanStore?.passwordSecret) wanted.set(spanStore.passwordSecret, "jaeger.storage.external.passwordSecret");
  const pgExternal = cfg.postgres.enabled ? cfg.postgres.external : undefined;
  if (pgExternal) wanted.set(pgExternal.passwordSecret, "postgres.external.passwordSecret");
  const objectStore = cfg.backups.objectStore;
  if (objectStore) {
    wanted.set(objectStore.accessKeyIdSecret, "backups.objectStore.accessKeyIdSecret");
    wanted.set(objectStore.secretAccessKeySecret, "backups.objectStore.secretAccessKeySecret");
  }
  return wanted;
}

/** Every `image` setting with its key path, wherever it sits in the tree. */
export function imageRefs(node: unknown, path: (string | number)[] = []): [(string | number)[], string][] {
  if (node === null || typeof node !== "object") return [];
  return Object.entries(node as Record<string, unknown>).flatMap(([k, v]) =>
    k === "image" && typeof v === "string" ? [[[...path, k], v] as [(string | number)[], string]] : imageRefs(v, [...path, k]),
  );
}

/** The full default configuration of an environment; a stack file is merged over it. */
export function defaultsFor(env: Environment): RawConfig {
  return {
    environment: env,
    cluster: clusterDefaults(),
    platform: platformDefaults(env),
    secrets: { ...secretsDefaults(), external: {} },
    // Outside dev the app images have no default: the schema then asks for them (appImage).
    services: servicesDefaults(env) as RawConfig["services"],
    workers: workersDefaults(env) as RawConfig["workers"],
    postgres: postgresDefaults(env),
    redis: redisDefaults(env),
    mongo: mongoDefaults(env),
    chroma: chromaDefaults(env),
    mail: mailDefaults(env),
    jaeger: jaegerDefaults(env),
    edge: edgeDefaults(env),
    monitoring: monitoringDefaults(env),
    verify: verifyDefaults(env),
    backups: backupsDefaults(),
    scheduling: schedulingDefaults(env),
  };
}
