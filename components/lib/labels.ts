// Recommended app.kubernetes.io labels, and the immutable subset used in selectors.
import type { PlatformConfig } from "../../config/schema";

export interface Identity {
  /** Workload name, unique in the platform: "api", "worker-default", "postgres". */
  name: string;
  /** What it is in the architecture: "api", "worker", "beat", "database", "cache", "mail". */
  component: string;
  /** The image it runs; its tag becomes app.kubernetes.io/version. */
  image?: string;
}

export function instanceName(cfg: PlatformConfig): string {
  return `${cfg.platform.name}-${cfg.environment}`;
}

/** Stable across releases: safe for Deployment/StatefulSet selectors, Services and NetworkPolicies. */
export function selectorLabels(cfg: PlatformConfig, id: Identity): Record<string, string> {
  return { "app.kubernetes.io/name": id.name, "app.kubernetes.io/instance": instanceName(cfg) };
}

export function labels(cfg: PlatformConfig, id: Identity): Record<string, string> {
  const out: Record<string, string> = {
    ...selectorLabels(cfg, id),
    "app.kubernetes.io/component": id.component,
    "app.kubernetes.io/part-of": cfg.platform.name,
    "app.kubernetes.io/managed-by": "pulumi",
  };
  const version = id.image ? imageVersion(id.image) : undefined;
  if (version) out["app.kubernetes.io/version"] = version;
  return out;
}

/** Labels for objects that belong to the platform as a whole (namespaces, quotas, policies). */
export function platformLabels(cfg: PlatformConfig): Record<string, string> {
  return {
    "app.kubernetes.io/instance": instanceName(cfg),
    "app.kubernetes.io/part-of": cfg.platform.name,
    "app.kubernetes.io/managed-by": "pulumi",
  };
}

/** The tag (or short digest) of an image, as a valid label value. */
export function imageVersion(image: string): string | undefined {
  const digest = image.split("@sha256:")[1];
  if (digest) return `sha256-${digest.slice(0, 12)}`;
  const last = image.split("/").pop() ?? "";
  const tag = last.includes(":") ? last.split(":").pop() : undefined;
  return tag?.replace(/[^A-Za-z0-9_.-]/g, "-").slice(0, 63);
}
