// Runs the policy pack's policies over an evaluated stack the way the Pulumi CLI's analyzer does,
// without the CLI: each resource policy's validateResource once per registered resource (props =
// its inputs, opts = its resource options), each stack policy's validateStack once with every
// resource. Props go through @pulumi/policy's own unknown-checking proxy, so a rule that reads a
// value unknown during preview fails here as it would there.
import * as path from "path";
import type { PolicyResource, PolicyResourceOptions, ResourceValidationArgs, ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy } from "../policy/policies";
import { policies } from "../policy/policies";
import type { Evaluation, Recorded } from "./harness";
import { ROOT } from "./harness";

export const POLICY_DIR = path.join(ROOT, "policy");

/* eslint-disable @typescript-eslint/no-require-imports */
const { unknownCheckingProxy } = require(require.resolve("@pulumi/policy/proxy", { paths: [POLICY_DIR] }));
/* eslint-enable @typescript-eslint/no-require-imports */

export type Policy = ResourceValidationPolicy | StackValidationPolicy;

export interface Violation {
  policy: string;
  message: string;
  /** The resource the violation is about (stack policies name it; resource policies report on their own). */
  urn?: string;
}

class NotApplicable extends Error {}

function options(r: Recorded): PolicyResourceOptions {
  return {
    protect: r.options.protect,
    ignoreChanges: r.options.ignoreChanges,
    deleteBeforeReplace: r.options.deleteBeforeReplace,
    aliases: [],
    customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
    additionalSecretOutputs: [],
    parent: r.parent || undefined,
  };
}

const unsupported = () => {
  throw new Error("isType/asType: the platform's policies match on type strings");
};

/** Every violation the given policies (default: the whole pack) report for an evaluation. */
export async function runPolicies(ev: Evaluation, which: Policy[] = policies): Promise<Violation[]> {
  const out: Violation[] = [];
  const notApplicable = (reason?: string): never => {
    throw new NotApplicable(reason);
  };
  // A policy that calls notApplicable() has nothing to say about that resource (or stack).
  const attempt = async (run: () => void | Promise<void>) => {
    try {
      await run();
    } catch (e) {
      if (!(e instanceof NotApplicable)) throw e;
    }
  };
  for (const policy of which) {
    const report = (message: string, urn?: string) => out.push({ policy: policy.name, message, urn });
    if ("validateStack" in policy) {
      const resources: PolicyResource[] = ev.resources.map((r) => ({
        type: r.type,
        props: unknownCheckingProxy(r.inputs),
        urn: r.urn,
        name: r.name,
        opts: options(r),
        dependencies: [],
        propertyDependencies: {},
        isType: unsupported,
        asType: unsupported,
      }));
      const args: StackValidationArgs = { resources, stackTags: new Map(), getConfig: <T>() => ({}) as T, notApplicable };
      await attempt(() => policy.validateStack(args, report));
      continue;
    }
    for (const r of ev.resources) {
      const args: ResourceValidationArgs = {
        type: r.type,
        props: unknownCheckingProxy(r.inputs),
        urn: r.urn,
        name: r.name,
        opts: options(r),
        stackTags: new Map(),
        isType: unsupported,
        asType: unsupported,
        getConfig: <T>() => ({}) as T,
        notApplicable,
      };
      for (const validate of [policy.validateResource ?? []].flat()) await attempt(() => validate(args, (message) => report(message, r.urn)));
    }
  }
  return out;
}
