// Shared by the data-tier tests: the parsed config of a stack and quick lookups into pod specs.
import { parseConfig } from "../config/loader";
import type { PlatformConfig } from "../config/schema";
import { PROJECT, stackValues } from "./harness";
import type { Evaluation, K8sObject } from "./harness";
import { findObject } from "./harness";

export const STORE_UIDS = { postgres: { uid: 70, gid: 70 }, redis: { uid: 999, gid: 1000 }, mongo: { uid: 999, gid: 999 } } as const;

/** The validated config of a stack file, as the program sees it (defaults merged). */
export function configOf(stack: string): PlatformConfig {
  const raw = Object.fromEntries(Object.entries(stackValues(`Pulumi.${stack}.yaml`)).map(([k, v]) => [k.slice(PROJECT.length + 1), v]));
  return parseConfig(raw, { stack });
}

export function podSpec(obj: K8sObject): K8sObject {
  return obj.kind === "CronJob" ? obj.spec.jobTemplate.spec.template.spec : obj.spec.template.spec;
}

export function container(obj: K8sObject, name: string): K8sObject {
  const c = podSpec(obj).containers.find((x: K8sObject) => x.name === name);
  if (!c) throw new Error(`no container ${name} in ${obj.kind}/${obj.metadata.name}`);
  return c;
}

/** name -> {secret, key} of every secretKeyRef env var, or name -> literal value. */
export function envOf(c: K8sObject): Record<string, { secret: string; key: string } | string> {
  return Object.fromEntries(
    (c.env ?? []).map((e: K8sObject) => [e.name, e.valueFrom?.secretKeyRef ? { secret: e.valueFrom.secretKeyRef.name, key: e.valueFrom.secretKeyRef.key } : e.value]),
  );
}

export function probeCommand(p: K8sObject): string {
  return (p.exec?.command ?? []).join(" ");
}

export function sts(ev: Evaluation, name: string): K8sObject {
  return findObject(ev, "StatefulSet", name);
}
