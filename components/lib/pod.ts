// Pod-spec building blocks shared by every tier: Pod Security "restricted" contexts, probes,
// scratch volumes, spreading and config checksums. Plain data, no resources.
import * as crypto from "crypto";
import type * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

type Container = k8s.types.input.core.v1.Container;
type Probe = k8s.types.input.core.v1.Probe;
type SecurityContext = k8s.types.input.core.v1.SecurityContext;
type PodSecurityContext = k8s.types.input.core.v1.PodSecurityContext;

/** Container context that passes Pod Security "restricted". */
export function restrictedContainer(opts: { readOnlyRootFilesystem?: boolean; runAsUser?: number } = {}): SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: opts.readOnlyRootFilesystem ?? true,
    runAsNonRoot: true,
    ...(opts.runAsUser !== undefined ? { runAsUser: opts.runAsUser } : {}),
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  };
}

/** Pod context that passes Pod Security "restricted"; uid/gid default to 10001 (no image user assumed). */
export function restrictedPod(opts: { uid?: number; gid?: number; fsGroup?: number } = {}): PodSecurityContext {
  const uid = opts.uid ?? 10001;
  const gid = opts.gid ?? uid;
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: gid,
    fsGroup: opts.fsGroup ?? gid,
    fsGroupChangePolicy: "OnRootMismatch",
    seccompProfile: { type: "RuntimeDefault" },
  };
}

export interface ProbeTiming {
  periodSeconds: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
  initialDelaySeconds?: number;
}

export function httpProbe(path: string, port: string | number, t: ProbeTiming): Probe {
  return { httpGet: { path, port }, timeoutSeconds: 3, failureThreshold: 3, ...t };
}

export function execProbe(command: string[], t: ProbeTiming): Probe {
  return { exec: { command }, timeoutSeconds: 5, failureThreshold: 3, ...t };
}

export function tcpProbe(port: string | number, t: ProbeTiming): Probe {
  return { tcpSocket: { port }, timeoutSeconds: 3, failureThreshold: 3, ...t };
}

/** A startup probe that gives a slow boot `seconds` before liveness may kill it. */
export function startupProbe(base: Probe, seconds: number, periodSeconds = 5): Probe {
  return { ...base, periodSeconds, failureThreshold: Math.ceil(seconds / periodSeconds), initialDelaySeconds: 0 };
}

/** A writable /tmp (and any other scratch path) for read-only root filesystems. */
export function scratchVolume(name = "tmp", sizeLimit = "64Mi"): k8s.types.input.core.v1.Volume {
  return { name, emptyDir: { sizeLimit } };
}

/** Soft anti-affinity across nodes and soft spread across zones: one node or zone loss never takes every pod. */
export function spread(selector: Record<string, string>) {
  return {
    affinity: {
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: 100, podAffinityTerm: { labelSelector: { matchLabels: selector }, topologyKey: "kubernetes.io/hostname" } },
        ],
      },
    },
    topologySpreadConstraints: [
      { maxSkew: 1, topologyKey: "topology.kubernetes.io/zone", whenUnsatisfiable: "ScheduleAnyway", labelSelector: { matchLabels: selector } },
    ],
  };
}

/**
 * sha256 of any (possibly secret) input: a pod-template annotation that rolls pods when config
 * changes. Never a secret itself: the inputs hashed are high-entropy generated values, so the hash
 * reveals nothing, while a secret annotation would make Pulumi treat the workload's whole `spec` as
 * secret and `pulumi preview` would show `[secret]` instead of the diff a reviewer needs.
 */
export function checksum(value: pulumi.Input<object | string>): pulumi.Output<string> {
  return pulumi.unsecret(pulumi.output(value).apply((v) => crypto.createHash("sha256").update(JSON.stringify(v)).digest("hex")));
}

/** Env var read from a Secret key (credentials never appear as literal env values). */
export function secretEnv(name: string, secretName: pulumi.Input<string>, key: string): k8s.types.input.core.v1.EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: secretName, key } } };
}

export type { Container };
