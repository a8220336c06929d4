// Checks an evaluated stack the way the API server and admission would: OpenAPI schema, Pod
// Security Standards, and the cross-object references kubectl apply would not catch. The rules
// that work on plain objects live in policy/rules.ts, shared with the policy pack: one
// implementation, run here over every stack and by `pulumi preview --policy-pack policy`.

import { referenceFindings } from "../policy/rules";
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
