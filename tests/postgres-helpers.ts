// Shared by the Postgres tests: an object store setting with its secrets, and small readers.
import type { Evaluation } from "./harness";
import { evaluate } from "./harness";

export const OBJECT_STORE = { endpoint: "https://minio.example.com:9000", bucket: "backups", prefix: "email-platform/prod", cidrs: ["203.0.113.7/32"], pathStyle: true };
export const S3_SECRETS = { objectStoreAccessKeyId: "AKIAEXAMPLEKEYID0001", objectStoreSecretAccessKey: "example-secret-access-key-0001" };

/** prod with the shared object store set: WAL archiving and base backups on. */
export function prodWithArchive(set: Record<string, unknown> = {}): Promise<Evaluation> {
  return evaluate({ stack: "prod", set: { "backups.objectStore": OBJECT_STORE, ...set }, secrets: S3_SECRETS });
}

/** `key=value` lines of a pgbackrest.conf section. */
export function ini(text: string, section: string): Record<string, string> {
  const out: Record<string, string> = {};
  let current = "";
  for (const line of text.split("\n")) {
    const s = /^\[(.+)\]$/.exec(line);
    if (s) current = s[1];
    else if (current === section && line.includes("=") && !line.startsWith("#")) out[line.slice(0, line.indexOf("="))] = line.slice(line.indexOf("=") + 1);
  }
  return out;
}
