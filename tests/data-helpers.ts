// Shared by the data-tier tests: the parsed config of a stack and quick lookups into pod specs.
import type { StoreName } from "../config/data";
import type { PlatformConfig } from "../config/schema";
import type { Evaluation, K8sObject } from "./harness";
import { findObject } from "./harness";

/** The images' own users: Postgres' depends on its mode (official alpine 70, Percona 26). */
export const STORE_UIDS = { postgres: { uid: 70, gid: 70 }, patroni: { uid: 26, gid: 26 }, redis: { uid: 999, gid: 1000 }, mongo: { uid: 999, gid: 999 } } as const;

export function storeUids(cfg: PlatformConfig, store: StoreName): { uid: number; gid: number } {
  return store === "postgres" && cfg.postgres.mode === "patroni" ? STORE_UIDS.patroni : STORE_UIDS[store];
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
