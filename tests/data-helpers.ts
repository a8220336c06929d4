// Shared by the data-tier tests: the parsed config of a stack and quick lookups into pod specs.
import type { StoreName } from "../config/data";
import type { PlatformConfig } from "../config/schema";
import type { Evaluation, K8sObject } from "./harness";
import { configOf, evaluate, evaluateStack, findObject } from "./harness";

/** The images' own users: Postgres' depends on its mode (official alpine 70, Percona 26); Chroma's image has none, the platform runs it as 1000. */
export const STORE_UIDS = { postgres: { uid: 70, gid: 70 }, patroni: { uid: 26, gid: 26 }, redis: { uid: 999, gid: 1000 }, mongo: { uid: 999, gid: 999 }, chroma: { uid: 1000, gid: 1000 } } as const;

export function storeUids(cfg: PlatformConfig, store: StoreName): { uid: number; gid: number } {
  return store === "postgres" && cfg.postgres.mode === "patroni" ? STORE_UIDS.patroni : STORE_UIDS[store];
}

const turnedOn = new Map<string, Promise<Evaluation>>();

/**
 * A stack as the store tests see it: the stack file itself when it runs the store, else the stack
 * with `<store>.enabled: true` (ChromaDB is off in every stack file), so every per-store test
 * covers every store in every stack. One evaluation per stack and store, shared by the test files.
 */
export function storeStack(stack: string, store: StoreName): { cfg: PlatformConfig; load: () => Promise<Evaluation> } {
  if (configOf(stack)[store].enabled) return { cfg: configOf(stack), load: () => evaluateStack(stack) };
  const key = `${stack}+${store}`;
  return {
    cfg: configOf(stack, { [store]: { enabled: true } }),
    load: () => {
      if (!turnedOn.has(key)) turnedOn.set(key, evaluate({ stack, set: { [`${store}.enabled`]: true } }));
      return turnedOn.get(key)!;
    },
  };
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
