// The restore procedures of docs/*.md as the Jobs they create: every
// `kubectl create job --from=cronjob/<cronjob> <job> ... | jq '<program>'` is read from the doc and its
// jq program applied to the rendered CronJob, as kubectl and jq would. Used by the unit tests
// (chroma-backup.test.ts) and the daemon tier (daemons/lib/kube.ts).
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type { K8sObject } from "./harness";
import { ROOT } from "./harness";

/** Every `kubectl create job --from=cronjob/<cronjob> <job> ... | jq '<program>'` of a doc, by job name. */
export function docJobs(doc: string): Map<string, { cronJob: string; program: string }> {
  const text = fs.readFileSync(path.join(ROOT, "docs", doc), "utf8").replace(/\\\n\s*/g, " ");
  const out = new Map<string, { cronJob: string; program: string }>();
  for (const m of text.matchAll(/create job --from=cronjob\/([\w-]+) ([\w-]+) [^|]*\|\s*jq '([^']*)'/g)) out.set(m[2], { cronJob: m[1], program: m[3] });
  return out;
}

/** `kubectl create job --from=cronjob/<cron> <job> -o json | jq <program>`: the Job the command applies. */
export function jobFromCronJob(cron: K8sObject, job: string, program: string): K8sObject {
  const created = { apiVersion: "batch/v1", kind: "Job", metadata: { name: job, namespace: cron.metadata.namespace, labels: cron.spec.jobTemplate.metadata?.labels }, spec: cron.spec.jobTemplate.spec };
  return JSON.parse(execFileSync("jq", [program], { input: JSON.stringify(created), encoding: "utf8" }));
}
