// The rollout report (issue 7), the program's use of @pulumi/command: after every tier (and the
// smoke test), `pulumi up` runs `kubectl rollout status` for every Deployment and StatefulSet on
// the operator's machine, against the same cluster the provider uses, then prints the endpoints.
// A local Command runs on `pulumi up` only, never on `pulumi preview`. No secret goes into its
// script or environment: everything it reports is plain config (see docs/verify.md).
import * as crypto from "crypto";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { PlatformConfig } from "../config/schema";
import { STORES } from "../config/data";
import { BLACKBOX } from "./monitoring/blackbox";

export interface RolloutTarget {
  namespace: string;
  kind: "deployment" | "statefulset";
  name: string;
}

/** Every Deployment and StatefulSet the program creates, from config alone (tests compare it with the objects). */
export function rolloutTargets(cfg: PlatformConfig): RolloutTarget[] {
  const app = cfg.platform.namespace;
  const out: RolloutTarget[] = [];
  const deployment = (name: string) => out.push({ namespace: app, kind: "deployment", name });
  for (const [name, svc] of Object.entries(cfg.services)) if (svc.enabled) deployment(name);
  if (cfg.workers.enabled) {
    for (const pool of Object.keys(cfg.workers.pools)) deployment(`worker-${pool}`);
    if (cfg.workers.beat.enabled) deployment("beat");
    if (cfg.workers.flower.enabled) deployment("flower");
  }
  if (cfg.jaeger.enabled) deployment("jaeger");
  // A managed Postgres (postgres.external) runs no pod to wait for.
  for (const store of STORES) if (cfg[store].enabled && !(store === "postgres" && cfg.postgres.external)) out.push({ namespace: app, kind: "statefulset", name: store });
  if (cfg.mail.enabled) for (const name of ["postfix", "dovecot"]) out.push({ namespace: cfg.platform.mailNamespace, kind: "statefulset", name });
  if (cfg.mail.enabled && cfg.monitoring.enabled) out.push({ namespace: cfg.platform.mailNamespace, kind: "deployment", name: BLACKBOX });
  return out;
}

/** Single-quoted for sh. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** kubectl with the provider's cluster: the same --context and --kubeconfig (else the current context, as the provider). */
export function kubectl(cfg: PlatformConfig): string {
  const c = cfg.cluster;
  return ["kubectl", ...(c.context ? ["--context", shellQuote(c.context)] : []), ...(c.kubeconfig ? ["--kubeconfig", shellQuote(c.kubeconfig)] : [])].join(" ");
}

export const KUBECTL_MISSING =
  "rollout report: kubectl is not on PATH. Install kubectl (https://kubernetes.io/docs/tasks/tools/) where pulumi up runs, " +
  "or turn the report off: pulumi config set --path verify.rollout.enabled false";

const HEREDOC = "PLATFORM_ENDPOINTS_END";

/** The endpoints to print: edge URLs, mail host and the DNS records to publish. All plain config. */
export function endpointSummary(urls: Record<string, string>, mail?: { hostname: string; dnsZone: string }): string {
  const lines = ["URLs:", ...Object.entries(urls).map(([k, v]) => `  ${k}: ${v}`)];
  if (Object.keys(urls).length === 0) lines.push("  (edge disabled)");
  if (mail) lines.push(`Mail host: ${mail.hostname}`, "DNS records to publish:", ...mail.dnsZone.trimEnd().split("\n").map((l) => `  ${l}`));
  return lines.join("\n");
}

/** The `create` script: kubectl check, one `rollout status` per workload, then the endpoints. */
export function rolloutScript(cfg: PlatformConfig, endpoints: string): string {
  const k = kubectl(cfg);
  const t = cfg.verify.rollout.timeoutSeconds;
  if (endpoints.split("\n").includes(HEREDOC)) throw new Error(`endpoint summary contains the heredoc delimiter ${HEREDOC}`);
  const lines = [
    "set -u",
    "if ! command -v kubectl >/dev/null 2>&1; then",
    `  echo ${shellQuote(KUBECTL_MISSING)} >&2`,
    "  exit 127",
    "fi",
    'failed=""',
    `echo "== rollout status (each up to ${t}s)"`,
    ...rolloutTargets(cfg).map((r) => {
      const ref = `${r.kind}/${r.name}`;
      return `${k} --namespace ${shellQuote(r.namespace)} rollout status ${ref} --timeout=${t}s || failed="$failed ${r.namespace}/${ref}"`;
    }),
    'echo "== endpoints"',
    `cat <<'${HEREDOC}'`,
    endpoints,
    HEREDOC,
  ];
  // Addresses the cluster assigned (what the DNS records point at); informational only.
  if (cfg.edge.enabled) lines.push(`${k} --namespace ${shellQuote(cfg.platform.namespace)} get ingress || true`);
  if (cfg.mail.enabled) lines.push(`${k} --namespace ${shellQuote(cfg.platform.mailNamespace)} get service postfix-public dovecot-public || true`);
  lines.push('if [ -n "$failed" ]; then echo "not rolled out:$failed" >&2; exit 1; fi');
  return lines.join("\n") + "\n";
}

/**
 * Changes when a workload would roll: images and settings of every tier that runs a Deployment or
 * StatefulSet, and credential rotation (it rolls the pods that read the credentials). The script
 * text covers the rest (targets, endpoints, timeout): a changed `create` reruns it too.
 */
export function rolloutTrigger(cfg: PlatformConfig): string {
  const { services, workers, postgres, redis, mongo, mail, jaeger, secrets, platform } = cfg;
  return crypto.createHash("sha256").update(JSON.stringify({ services, workers, postgres, redis, mongo, mail, jaeger, secrets, platform })).digest("hex");
}

export interface RolloutReportArgs {
  config: PlatformConfig;
  /** The edge's URLs (plain strings). */
  urls: Record<string, string>;
  /** Mail host and its DNS zone lines (the DKIM public key, not secret), when mail is on. */
  mail?: { hostname: string; dnsZone: pulumi.Input<string> };
}

export class RolloutReport extends pulumi.ComponentResource {
  readonly command: command.local.Command;

  /** Pass every tier component (and the smoke test) in `opts.dependsOn`. */
  constructor(name: string, args: RolloutReportArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:verify:RolloutReport", name, {}, opts);
    const cfg = args.config;
    const mail = args.mail;
    const endpoints = mail
      ? pulumi.output(mail.dnsZone).apply((dnsZone) => endpointSummary(args.urls, { hostname: mail.hostname, dnsZone }))
      : pulumi.output(endpointSummary(args.urls));
    this.command = new command.local.Command(
      name,
      {
        // Only `create`: it runs on the first `pulumi up` and again whenever its inputs (the script)
        // or triggers change. Nothing runs on preview, and nothing on delete.
        create: endpoints.apply((e) => rolloutScript(cfg, e)),
        interpreter: ["/bin/sh", "-c"],
        triggers: [rolloutTrigger(cfg)],
        addPreviousOutputInEnv: false,
      },
      // A component's dependsOn does not reach its children: the Command itself waits for every tier.
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.registerOutputs({ stdout: this.command.stdout });
  }
}
