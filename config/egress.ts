// Outbound destinations outside the cluster (third-party APIs, a managed database, the internet),
// declared by the workload that calls them. One shape for services, worker pools and stores:
//
//   egress:
//     openai: { internet: true, ports: [443] }          # every public address
//     stripe: { cidrs: [203.0.113.0/24], ports: [443] } # fixed ranges only
//
// Each entry becomes graph edges (components/lib/egress.ts), so NetworkPolicy egress rules and
// the reachability test follow it; a workload without entries reaches nothing outside.
import { z } from "zod";
import { port } from "./common";

/** Never "internet": the RFC 1918 ranges, link-local (cloud metadata), carrier-grade NAT. */
export const PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"];

/** An IPv4 network address with its prefix; host bits must be zero so the range reads as written. */
export const ipv4Cidr = z
  .string()
  .regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/, "must be an IPv4 CIDR such as 203.0.113.0/24")
  .refine((c) => parseCidr(c) !== undefined, "must have octets 0-255 and a prefix 0-32")
  .refine((c) => {
    const p = parseCidr(c);
    return p === undefined || (p.base & maskOf(p.bits)) >>> 0 === p.base;
  }, "must be a network address (host bits zero), e.g. 203.0.113.0/24 rather than 203.0.113.7/24");

export const egressDestination = z
  .strictObject({
    /** Fixed address ranges of the destination. */
    cidrs: z.array(ipv4Cidr).min(1, "must list at least one CIDR").optional(),
    /** Every public IPv4 address: 0.0.0.0/0 minus PRIVATE_RANGES and platform.clusterCidrs. */
    internet: z.literal(true, { error: "must be true (or left out, with cidrs)" }).optional(),
    ports: z.array(port).min(1, "must list at least one port"),
  })
  .superRefine((d, ctx) => {
    if ((d.cidrs === undefined) === (d.internet === undefined)) {
      ctx.addIssue({ code: "custom", path: [], message: "must set exactly one of cidrs (fixed ranges) or internet: true" });
    }
    if (new Set(d.ports).size !== d.ports.length) ctx.addIssue({ code: "custom", path: ["ports"], message: "must not repeat a port" });
  });
export type EgressDestination = z.infer<typeof egressDestination>;

const destinationName = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, "must be a short lowercase name such as openai or payments-api");

/** Named outbound destinations of one workload; empty means nothing outside the cluster. */
export const egress = z.record(destinationName, egressDestination);
export type Egress = z.infer<typeof egress>;

/** Pod and Service ranges of the cluster: never reachable as "internet", and no egress CIDR may overlap them. */
export const clusterCidrs = z.array(ipv4Cidr);

/** Problems of one workload's egress against the cluster's ranges (key paths relative to the workload). */
export function egressIssues(e: Egress, cluster: readonly string[], at: (string | number)[]): { path: (string | number)[]; message: string }[] {
  const out: { path: (string | number)[]; message: string }[] = [];
  for (const [name, d] of Object.entries(e)) {
    (d.cidrs ?? []).forEach((c, i) => {
      const hit = cluster.find((k) => overlaps(c, k));
      // An ipBlock over pod addresses would open egress to every pod there, past the graph.
      if (hit) out.push({ path: [...at, name, "cidrs", i], message: `overlaps the cluster range ${hit} (platform.clusterCidrs): in-cluster peers are declared with dependsOn, not CIDRs` });
    });
  }
  return out;
}

/** What "internet" excludes for this cluster. */
export function internetExcept(cluster: readonly string[]): string[] {
  return [...PRIVATE_RANGES, ...cluster.filter((c) => !PRIVATE_RANGES.some((p) => contains(p, c)))];
}

function parseCidr(c: string): { base: number; bits: number } | undefined {
  const [ip, bitsText] = c.split("/");
  const octets = ip.split(".").map(Number);
  const bits = Number(bitsText);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o > 255) || !Number.isInteger(bits) || bits > 32) return undefined;
  return { base: octets.reduce((n, o) => n * 256 + o, 0) >>> 0, bits };
}

function maskOf(bits: number): number {
  return bits === 0 ? 0 : (2 ** 32 - 2 ** (32 - bits)) >>> 0;
}

/** Does range `outer` contain range `inner`? */
export function contains(outer: string, inner: string): boolean {
  const [o, i] = [parseCidr(outer), parseCidr(inner)];
  if (!o || !i || i.bits < o.bits) return false;
  return ((i.base & maskOf(o.bits)) >>> 0) === o.base;
}

export function overlaps(a: string, b: string): boolean {
  return contains(a, b) || contains(b, a);
}
