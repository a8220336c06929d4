// Checks an evaluated stack the way the API server and admission would: OpenAPI schema, Pod
// Security Standards, and the cross-object references kubectl apply would not catch. The rules
// that work on plain objects live in policy/rules.ts, shared with the policy pack: one
// implementation, run here over every stack and by `pulumi preview --policy-pack policy`.

import { STORES } from "../config/data";
import type { Level, Tier } from "../config/scheduling";
import { priorityClassName } from "../config/scheduling";
import type { PlatformConfig } from "../config/schema";
import { podSpecs, referenceFindings } from "../policy/rules";
import type { Evaluation, K8sObject } from "./harness";
import { k8sObjects } from "./harness";

export { BASELINE_CAPS, isNamespaced, podSecurityViolations, podSpecs } from "../policy/rules";

const MODEL_PACKAGES: Record<string, string> = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "cert-manager.io": "@kubernetes-models/cert-manager",
};

/** Schema problems of one object (empty when valid); unknown kinds are a problem too. */
export async function schemaProblems(obj: K8sObject): Promise<string[]> {
  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
  const pkg = MODEL_PACKAGES[group] ?? "kubernetes-models";
  const modulePath = group ? `${pkg}/${group}/${version}/${obj.kind}` : `${pkg}/${version}/${obj.kind}`;
  let Model: any;
  try {
    Model = (await import(modulePath))[obj.kind];
  } catch {
    return [`no schema for ${obj.apiVersion} ${obj.kind}`];
  }
  try {
    new Model(obj).validate();
    return [];
  } catch (e) {
    return [String((e as Error).message)];
  }
}

/** Throws with the schema problems of an object (kubernetes-models, CRDs included). */
export async function validateObject(obj: K8sObject): Promise<void> {
  const problems = await schemaProblems(obj);
  if (problems.length) throw new Error(`${obj.kind} ${obj.metadata?.name}: ${problems.join("; ")}`);
}

/** References between objects that must resolve inside what the program creates (policy/rules.ts). */
export function referenceProblems(ev: Evaluation): string[] {
  return referenceFindings(k8sObjects(ev).map((x) => x.obj)).map((f) => f.message);
}

/**
 * Inputs that are secret because they carry a credential, by resource type and top-level field.
 * Kubernetes Secrets are credentials as a whole; every other Kubernetes object must have none:
 * one secret value anywhere in a top-level input (a checksum of a password in a pod template)
 * makes Pulumi hide that whole input (`spec: [secret]`) in `pulumi preview`.
 */
export const SECRET_INPUTS_ALLOWED: Record<string, Record<string, string>> = {
  "tls:index/selfSignedCert:SelfSignedCert": { privateKeyPem: "the private key the certificate is signed with" },
};

/** Every secret top-level input of a resource that is not a credential: `<type> <name>: <field> (at <path>)`. */
export function secretTaintProblems(ev: Evaluation): string[] {
  const problems: string[] = [];
  for (const r of ev.resources) {
    if (r.inputs.kind === "Secret" && r.type.startsWith("kubernetes:")) continue;
    const allowed = SECRET_INPUTS_ALLOWED[r.type] ?? {};
    for (const p of new Set(r.secretPaths)) {
      const field = p.split(".")[0];
      if (!(field in allowed)) problems.push(`${r.type} ${r.name}: input ${field || "(all)"} is secret (at ${p || "the root"})`);
    }
  }
  return problems;
}

/**
 * The scheduling tier of a pod, by its app.kubernetes.io/name: what each pod is, written here as
 * data (stores and mail hold state, the services serve, ...), not read from the program.
 */
export function tierOf(name: string, cfg: PlatformConfig): Tier {
  if ((STORES as readonly string[]).includes(name)) return "stores";
  if (name === "postfix" || name === "dovecot") return "mail";
  if (name in cfg.services) return "services";
  if (name.startsWith("worker-") || name === "beat") return "workers";
  if (["flower", "jaeger", "blackbox-exporter"].includes(name)) return "observability";
  if (/-backup$|-migrate$|^postgres-(basebackup|import)$|^smoke$|^jaeger-index-cleaner$/.test(name)) return "batch";
  throw new Error(`no scheduling tier known for pod ${name}: say in tests/checks.ts (tierOf) which tier it belongs to`);
}

/** The order the platform promises: stores and mail > services > workers > observability > batch. */
const LEVEL_OF: Record<Tier, Level> = { stores: "stateful", mail: "stateful", services: "serving", workers: "workers", observability: "observability", batch: "batch" };

/** Every pod template of an evaluation: its object, app.kubernetes.io/name and spec. */
export function podTemplates(ev: Evaluation): { obj: K8sObject; name: string; spec: K8sObject }[] {
  return k8sObjects(ev).flatMap(({ obj }) => podSpecs(obj).map(({ spec, labels }) => ({ obj, name: labels["app.kubernetes.io/name"], spec })));
}

/** Pods whose priorityClassName is not their tier's class (none expected where classes are off). */
export function priorityProblems(ev: Evaluation, cfg: PlatformConfig): string[] {
  return podTemplates(ev).flatMap((p) => {
    const want = cfg.scheduling.priorityClasses.enabled ? priorityClassName(cfg.platform.namespace, LEVEL_OF[tierOf(p.name, cfg)]) : undefined;
    return p.spec.priorityClassName === want ? [] : [`${p.obj.kind} ${p.obj.metadata.name}: priorityClassName ${p.spec.priorityClassName} instead of ${want} (tier ${tierOf(p.name, cfg)})`];
  });
}
