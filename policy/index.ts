// The policy pack the Pulumi CLI runs: `pulumi preview --policy-pack policy` (after
// `npm ci --prefix policy`). Constructing the PolicyPack starts the analyzer the CLI talks to, so
// this file holds nothing else; the policies are in policies.ts, their logic in rules.ts.
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("app-platform", {
  description: "The app-platform's Kubernetes invariants: Pod Security, pinned images, resources, labels, references, drain-safe PDBs, isolated pods, protected data in prod.",
  enforcementLevel: "mandatory",
  policies,
});
