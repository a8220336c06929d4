// What the app workloads (HTTP services and Celery workers) share: the tiers they can depend on and
// the small config vocabulary both use.
import { z } from "zod";
import type { Environment } from "./common";
import { perEnv } from "./common";

/** Tiers an app workload can talk to; each becomes graph edges and env wiring. */
export const DEPENDENCIES = ["postgres", "redis", "mongo", "chroma", "jaeger", "mail"] as const;
export type Dependency = (typeof DEPENDENCIES)[number];
/** The stores among them: what a schema migration may connect to. */
export const STORE_DEPENDENCIES = ["postgres", "redis", "mongo", "chroma"] as const satisfies readonly Dependency[];

/**
 * Longest service or worker pool name. Kubernetes limits names and label values to 63 characters,
 * and the objects of a workload carry derived names (`allow-worker-<name>`, `<name>-config`) and
 * the name as the app.kubernetes.io/name label value; 32 leaves room for every prefix and suffix.
 */
export const SHORT_NAME_MAX = 32;
export const shortName = z
  .string()
  .max(SHORT_NAME_MAX, {
    error: (iss) =>
      `must be at most ${SHORT_NAME_MAX} characters (got ${String(iss.input).length}): Kubernetes names and label values are limited to 63, and derived names such as allow-worker-<name> and <name>-config add to it`,
  })
  .regex(/^[a-z]([-a-z0-9]*[a-z0-9])?$/, "must be a DNS label: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit");
const envName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "must be an env var name such as LOG_LEVEL");
/** ConfigMap values; YAML numbers and booleans are accepted and stored as strings. */
export const envMap = z.record(envName, z.union([z.string(), z.number(), z.boolean()]).transform(String));

type Tiers = Record<Dependency, { enabled: boolean }>;

/** Explicit dependsOn, or every enabled tier (the single-API default of seed 000). */
export function resolveDependsOn(cfg: Tiers, dependsOn: readonly Dependency[] | undefined): Dependency[] {
  return dependsOn ? [...new Set(dependsOn)] : DEPENDENCIES.filter((d) => cfg[d].enabled);
}

/** Log level by environment: debug in dev, info in staging, warnings in prod (seed 000 overlays). */
export function logLevel(env: Environment): string {
  return perEnv(env, { dev: "DEBUG", staging: "INFO", prod: "WARNING" });
}

/** A default without an image: outside dev the user's own image is required (appImage). */
export type WithoutImage<T> = Omit<T, "image"> & { image?: string };
