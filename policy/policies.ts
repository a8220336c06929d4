// The pack's policies: each wraps one rule of rules.ts. Resource policies run on every Kubernetes
// object before it is created or updated (their props are the object as the program wrote it);
// stack policies see every object of the stack at once. Every policy is mandatory: a violation
// fails `pulumi preview --policy-pack policy` and stops `pulumi up`.
//
// Only types come from @pulumi/policy here, so the unit tests run these exact functions without
// starting the pack's gRPC server (index.ts does that).
import type { EnforcementLevel, PolicyResource, ResourceValidationArgs, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";

// For the repository's tests, which resolve packages from the root and do not see this directory's node_modules.
export type { PolicyResource, PolicyResourceOptions, ResourceValidationArgs, ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy } from "@pulumi/policy";
import type { Finding, K8sObject } from "./rules";
import { imageProblems, isolationFindings, labelProblems, pdbFindings, podSecurityFindings, priorityFindings, protectionProblems, referenceFindings, resourceProblems } from "./rules";

const enforcementLevel: EnforcementLevel = "mandatory";

/** A Kubernetes object registered through the Kubernetes provider (not a Helm chart or a YAML group). */
function isObject(type: string, props: K8sObject): boolean {
  return type.startsWith("kubernetes:") && !type.startsWith("kubernetes:helm") && !type.startsWith("kubernetes:yaml") && typeof props?.kind === "string";
}

function perObject(name: string, description: string, rule: (obj: K8sObject, args: ResourceValidationArgs) => string[]): ResourceValidationPolicy {
  return {
    name,
    description,
    enforcementLevel,
    validateResource: (args, reportViolation) => {
      if (!isObject(args.type, args.props)) return;
      for (const message of rule(args.props, args)) reportViolation(message);
    },
  };
}

function acrossObjects(name: string, description: string, rule: (objects: K8sObject[]) => Finding[]): StackValidationPolicy {
  return {
    name,
    description,
    enforcementLevel,
    validateStack: (args, reportViolation) => {
      const resources = args.resources.filter((r: PolicyResource) => isObject(r.type, r.props));
      // Rules return the objects they were given, so each finding points at its resource's URN.
      const urns = new Map<K8sObject, string>(resources.map((r) => [r.props, r.urn]));
      for (const f of rule(resources.map((r) => r.props))) reportViolation(f.message, urns.get(f.object));
    },
  };
}

export const containerResources = perObject("container-resources", "Every container requests and limits cpu and memory.", resourceProblems);

export const recommendedLabels = perObject("recommended-labels", "Workloads and their pods carry the app.kubernetes.io name, instance, component, part-of and managed-by labels.", labelProblems);

export const imagesPinned = perObject("images-pinned", "Every container image pins a tag or digest; the mutable tag 'latest' only in dev.", imageProblems);

export const statefulProtected = perObject(
  "stateful-protected",
  "In prod, StatefulSets and persistent volume claims are registered with protect: true.",
  (obj, args) => protectionProblems(obj, args.opts.protect),
);

export const podSecurity = acrossObjects("pod-security", "Namespaces enforce Pod Security baseline or restricted, and every pod passes its namespace's level.", podSecurityFindings);

export const referencesResolve = acrossObjects(
  "references-resolve",
  "Namespaces, selectors, named ports, Secret and ConfigMap keys, service accounts, claims, scale targets and ingress backends resolve to objects of the stack.",
  referenceFindings,
);

export const disruptionBudgetsAllowDrain = acrossObjects(
  "pdb-allows-drain",
  "Every PodDisruptionBudget allows at least one eviction at its workloads' fewest pods and lets unhealthy pods be evicted.",
  pdbFindings,
);

export const podsIsolated = acrossObjects("pods-isolated", "Every pod is selected by NetworkPolicies for ingress and egress (default deny plus its declared edges).", isolationFindings);

export const podsPrioritized = acrossObjects(
  "pods-prioritized",
  "Where the stack creates PriorityClasses, every pod names one of them; no pod names a class the cluster lacks.",
  priorityFindings,
);

export const resourcePolicies: ResourceValidationPolicy[] = [containerResources, recommendedLabels, imagesPinned, statefulProtected];
export const stackPolicies: StackValidationPolicy[] = [podSecurity, referencesResolve, disruptionBudgetsAllowDrain, podsIsolated, podsPrioritized];
export const policies = [...resourcePolicies, ...stackPolicies];
