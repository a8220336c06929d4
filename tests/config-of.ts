import { parseConfig } from "../config/loader";
import type { PlatformConfig } from "../config/schema";
import { PROJECT, stackValues } from "./harness";

/** The validated config of a stack (plus top-level overrides), exactly as the program sees it. */
export function configOf(stack: string, set: Record<string, unknown> = {}): PlatformConfig {
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(stackValues(`Pulumi.${stack}.yaml`))) raw[k.slice(PROJECT.length + 1)] = v;
  return parseConfig({ ...raw, ...set }, { stack });
}
