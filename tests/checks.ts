// Checks an evaluated stack the way the API server and admission would: OpenAPI schema, Pod
// Security Standards, and the cross-object references kubectl apply would not catch.

import type { Evaluation, K8sObject } from "./harness";
import { k8sObjects } from "./harness";

const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "StorageClass", "PersistentVolume", "CustomResourceDefinition", "ClusterIssuer"]);

const MODEL_PACKAGES: Record<string, string> = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "cert-manager.io": "@kubernetes-models/cert-manager",
};

/** Schema problems of one object (empty when valid); unknown kinds are a problem too. */
export async function schemaProblems(obj: K8sObject): Promise<string[]> {
  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
  const pkg = MODEL_PACKAGES[group] ?? "kubernetes-models";
  const modulePath = group ? `${pkg}/${group}/${version}/${obj.kind}` : `${pkg}/${version}/${obj.kind}`;
  let Model: any;
  try {
    Model = (await import(modulePath))[obj.kind];
  } catch {
    return [`no schema for ${obj.apiVersion} ${obj.kind}`];
  }
  try {
    new Model(obj).validate();
    return [];
  } catch (e) {
    return [String((e as Error).message)];
  }
}

export function isNamespaced(obj: K8sObject): boolean {
  return !CLUSTER_SCOPED.has(obj.kind);
}

/** Throws with the schema problems of an object (kubernetes-models, CRDs included). */
export async function validateObject(obj: K8sObject): Promise<void> {
  const problems = await schemaProblems(obj);
  if (problems.length) throw new Error(`${obj.kind} ${obj.metadata?.name}: ${problems.join("; ")}`);
}

/** Pod specs inside any workload kind, with the labels of their pods. */
export function podSpecs(obj: K8sObject): { spec: any; labels: Record<string, string> }[] {
  const t =
    obj.kind === "CronJob"
      ? obj.spec?.jobTemplate?.spec?.template
      : ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"].includes(obj.kind)
        ? obj.spec?.template
        : obj.kind === "Pod"
          ? { metadata: obj.metadata, spec: obj.spec }
          : undefined;
  return t?.spec ? [{ spec: t.spec, labels: t.metadata?.labels ?? {} }] : [];
}

function containersOf(spec: any): any[] {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])];
}

/** Pod Security Standards' baseline list (kubernetes.io/docs/concepts/security/pod-security-standards). */
export const BASELINE_CAPS = new Set(["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]);
const SAFE_SYSCTLS = new Set([
  "kernel.shm_rmid_forced",
  "net.ipv4.ip_local_port_range",
  "net.ipv4.ip_unprivileged_port_start",
  "net.ipv4.tcp_syncookies",
  "net.ipv4.ping_group_range",
  "net.ipv4.ip_local_reserved_ports",
  "net.ipv4.tcp_keepalive_time",
  "net.ipv4.tcp_fin_timeout",
  "net.ipv4.tcp_keepalive_intvl",
  "net.ipv4.tcp_keepalive_probes",
]);
const SELINUX_TYPES = new Set(["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"]);
const RESTRICTED_VOLUMES = new Set(["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"]);

/** Pod Security Standards (v1.30 rules) for "baseline" or "restricted"; returns the violations. */
export function podSecurityViolations(spec: any, level: "baseline" | "restricted"): string[] {
  const v: string[] = [];
  const pod = spec.securityContext ?? {};
  for (const host of ["hostNetwork", "hostPID", "hostIPC"]) if (spec[host]) v.push(`host namespaces (${host})`);
  if (pod.windowsOptions?.hostProcess) v.push("hostProcess");
  for (const vol of spec.volumes ?? []) if (vol.hostPath) v.push(`hostPath volume ${vol.name}`);
  for (const s of pod.sysctls ?? []) if (!SAFE_SYSCTLS.has(s.name)) v.push(`sysctl ${s.name}`);
  const profiles = (where: string, ctx: any) => {
    if (ctx.seccompProfile?.type === "Unconfined") v.push(`${where}: seccomp Unconfined`);
    if (ctx.appArmorProfile?.type === "Unconfined") v.push(`${where}: AppArmor Unconfined`);
    const se = ctx.seLinuxOptions;
    if (se && (se.user || se.role || !SELINUX_TYPES.has(se.type ?? ""))) v.push(`${where}: custom SELinux options`);
  };
  profiles("pod", pod);
  for (const c of containersOf(spec)) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) v.push(`${c.name}: privileged`);
    if (sc.windowsOptions?.hostProcess) v.push(`${c.name}: hostProcess`);
    for (const cap of sc.capabilities?.add ?? []) if (!BASELINE_CAPS.has(cap)) v.push(`${c.name}: capability ${cap} beyond baseline`);
    for (const p of c.ports ?? []) if (p.hostPort) v.push(`${c.name}: hostPort`);
    if (sc.procMount && sc.procMount !== "Default") v.push(`${c.name}: procMount`);
    profiles(c.name, sc);
  }
  if (level === "baseline") return v;

  for (const vol of spec.volumes ?? []) {
    for (const k of Object.keys(vol).filter((k) => k !== "name")) if (!RESTRICTED_VOLUMES.has(k)) v.push(`volume ${vol.name} of type ${k}`);
  }
  if (pod.runAsUser === 0) v.push("pod runAsUser 0");
  for (const c of containersOf(spec)) {
    const sc = c.securityContext ?? {};
    if (sc.allowPrivilegeEscalation !== false) v.push(`${c.name}: allowPrivilegeEscalation must be false`);
    if (!(sc.runAsNonRoot === true || (pod.runAsNonRoot === true && sc.runAsNonRoot !== false))) v.push(`${c.name}: runAsNonRoot must be true`);
    if (sc.runAsUser === 0) v.push(`${c.name}: runAsUser 0`);
    const seccomp = sc.seccompProfile?.type ?? pod.seccompProfile?.type;
    if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") v.push(`${c.name}: seccompProfile must be RuntimeDefault`);
    if (!(sc.capabilities?.drop ?? []).includes("ALL")) v.push(`${c.name}: must drop ALL capabilities`);
    for (const cap of sc.capabilities?.add ?? []) if (cap !== "NET_BIND_SERVICE") v.push(`${c.name}: adds ${cap}`);
  }
  return v;
}

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
  !!selector && Object.entries(selector).every(([k, v]) => labels[k] === v);

/** References between objects that must resolve inside what the program creates. */
export function referenceProblems(ev: Evaluation): string[] {
  const objs = k8sObjects(ev).map((x) => x.obj);
  const problems: string[] = [];
  const byKind = (kind: string, ns: string) => objs.filter((o) => o.kind === kind && o.metadata?.namespace === ns);
  const keysOf = (o: K8sObject) => [...Object.keys(o.data ?? {}), ...Object.keys(o.stringData ?? {}), ...Object.keys(o.binaryData ?? {})];
  const secretNames = (ns: string) => [
    ...byKind("Secret", ns).map((s) => s.metadata.name),
    ...byKind("Certificate", ns).map((c) => c.spec?.secretName), // created by cert-manager
  ];
  const findKeys = (kind: "Secret" | "ConfigMap", ns: string, name: string): string[] | undefined => {
    const o = byKind(kind, ns).find((x) => x.metadata.name === name);
    if (o) return keysOf(o);
    if (kind === "Secret" && secretNames(ns).includes(name)) return ["tls.crt", "tls.key", "ca.crt"];
    return undefined;
  };

  for (const o of objs) {
    const ns = o.metadata?.namespace;
    const where = `${o.kind} ${ns}/${o.metadata?.name}`;
    for (const { spec, labels } of podSpecs(o)) {
      const sel = o.spec?.selector?.matchLabels;
      if (["Deployment", "StatefulSet"].includes(o.kind) && !matches(sel, labels)) problems.push(`${where}: selector does not match its pod template labels`);
      if (o.kind === "StatefulSet" && !byKind("Service", ns).some((s) => s.metadata.name === o.spec.serviceName)) problems.push(`${where}: serviceName ${o.spec.serviceName} is not a Service`);
      if (spec.serviceAccountName && !byKind("ServiceAccount", ns).some((s) => s.metadata.name === spec.serviceAccountName)) {
        problems.push(`${where}: serviceAccountName ${spec.serviceAccountName} does not exist`);
      }
      const volumeNames = new Set([...(spec.volumes ?? []).map((v: any) => v.name), ...(o.spec?.volumeClaimTemplates ?? []).map((t: any) => t.metadata.name)]);
      for (const vol of spec.volumes ?? []) {
        if (vol.secret && !vol.secret.optional) {
          const keys = findKeys("Secret", ns, vol.secret.secretName);
          if (!keys) problems.push(`${where}: volume ${vol.name} mounts missing Secret ${vol.secret.secretName}`);
          for (const item of vol.secret.items ?? []) if (keys && !keys.includes(item.key)) problems.push(`${where}: Secret ${vol.secret.secretName} has no key ${item.key}`);
        }
        if (vol.configMap && !vol.configMap.optional) {
          const keys = findKeys("ConfigMap", ns, vol.configMap.name);
          if (!keys) problems.push(`${where}: volume ${vol.name} mounts missing ConfigMap ${vol.configMap.name}`);
          for (const item of vol.configMap.items ?? []) if (keys && !keys.includes(item.key)) problems.push(`${where}: ConfigMap ${vol.configMap.name} has no key ${item.key}`);
        }
        if (vol.persistentVolumeClaim && !byKind("PersistentVolumeClaim", ns).some((p) => p.metadata.name === vol.persistentVolumeClaim.claimName)) {
          problems.push(`${where}: volume ${vol.name} claims missing PVC ${vol.persistentVolumeClaim.claimName}`);
        }
      }
      for (const c of containersOf(spec)) {
        const portNames = new Set((c.ports ?? []).map((p: any) => p.name).filter(Boolean));
        for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
          const port = probe?.httpGet?.port ?? probe?.tcpSocket?.port ?? probe?.grpc?.port;
          if (typeof port === "string" && !portNames.has(port)) problems.push(`${where}: container ${c.name} probe names missing port ${port}`);
        }
        for (const m of c.volumeMounts ?? []) if (!volumeNames.has(m.name)) problems.push(`${where}: container ${c.name} mounts undefined volume ${m.name}`);
        for (const e of c.env ?? []) {
          for (const [kind, ref] of [
            ["Secret", e.valueFrom?.secretKeyRef],
            ["ConfigMap", e.valueFrom?.configMapKeyRef],
          ] as const) {
            if (!ref || ref.optional) continue;
            const keys = findKeys(kind, ns, ref.name);
            if (!keys) problems.push(`${where}: env ${e.name} refers to missing ${kind} ${ref.name}`);
            else if (!keys.includes(ref.key)) problems.push(`${where}: env ${e.name} refers to missing key ${ref.key} of ${kind} ${ref.name}`);
          }
        }
        for (const from of c.envFrom ?? []) {
          if (from.secretRef && !from.secretRef.optional && !findKeys("Secret", ns, from.secretRef.name)) problems.push(`${where}: envFrom missing Secret ${from.secretRef.name}`);
          if (from.configMapRef && !from.configMapRef.optional && !findKeys("ConfigMap", ns, from.configMapRef.name)) problems.push(`${where}: envFrom missing ConfigMap ${from.configMapRef.name}`);
        }
      }
    }
    if (o.kind === "Service" && o.spec?.selector) {
      // Labels the pods get at run time (Patroni's role label) are not in the template; the rest must match.
      const runtime = String(o.metadata?.annotations?.["platform/runtime-labels"] ?? "").split(",").filter(Boolean);
      const selector = Object.fromEntries(Object.entries(o.spec.selector as Record<string, string>).filter(([k]) => !runtime.includes(k)));
      const pods = objs.filter((w) => w.metadata?.namespace === ns).flatMap((w) => podSpecs(w).filter((p) => matches(selector, p.labels)));
      if (pods.length === 0) problems.push(`${where}: selector matches no pod template`);
      for (const p of o.spec.ports ?? []) {
        if (typeof p.targetPort !== "string") continue;
        const named = pods.some(({ spec }) => containersOf(spec).some((c) => (c.ports ?? []).some((cp: any) => cp.name === p.targetPort)));
        if (!named) problems.push(`${where}: targetPort ${p.targetPort} is not a named container port of its pods`);
      }
    }
    if (o.kind === "HorizontalPodAutoscaler") {
      const t = o.spec.scaleTargetRef;
      if (!byKind(t.kind, ns).some((w) => w.metadata.name === t.name)) problems.push(`${where}: scale target ${t.kind}/${t.name} does not exist`);
    }
    if (o.kind === "PodDisruptionBudget" || (o.kind === "NetworkPolicy" && Object.keys(o.spec?.podSelector?.matchLabels ?? {}).length)) {
      const sel = o.kind === "PodDisruptionBudget" ? o.spec.selector?.matchLabels : o.spec.podSelector.matchLabels;
      const any = objs.filter((w) => w.metadata?.namespace === ns).some((w) => podSpecs(w).some((p) => matches(sel, p.labels)));
      if (!any) problems.push(`${where}: selector matches no pods`);
    }
    if (o.kind === "Ingress") {
      for (const rule of o.spec?.rules ?? []) {
        for (const p of rule.http?.paths ?? []) {
          const svc = byKind("Service", ns).find((s) => s.metadata.name === p.backend?.service?.name);
          if (!svc) problems.push(`${where}: path ${p.path} routes to missing Service ${p.backend?.service?.name}`);
          else if (!(svc.spec.ports ?? []).some((sp: any) => sp.port === p.backend.service.port?.number || sp.name === p.backend.service.port?.name)) {
            problems.push(`${where}: path ${p.path} routes to a port Service ${svc.metadata.name} does not expose`);
          }
        }
      }
    }
  }
  return problems;
}


/**
 * Inputs that are secret because they carry a credential, by resource type and top-level field.
 * Kubernetes Secrets are credentials as a whole; every other Kubernetes object must have none:
 * one secret value anywhere in a top-level input (a checksum of a password in a pod template)
 * makes Pulumi hide that whole input (`spec: [secret]`) in `pulumi preview`.
 */
export const SECRET_INPUTS_ALLOWED: Record<string, Record<string, string>> = {
  "tls:index/selfSignedCert:SelfSignedCert": { privateKeyPem: "the private key the certificate is signed with" },
};

/** Every secret top-level input of a resource that is not a credential: `<type> <name>: <field> (at <path>)`. */
export function secretTaintProblems(ev: Evaluation): string[] {
  const problems: string[] = [];
  for (const r of ev.resources) {
    if (r.inputs.kind === "Secret" && r.type.startsWith("kubernetes:")) continue;
    const allowed = SECRET_INPUTS_ALLOWED[r.type] ?? {};
    for (const p of new Set(r.secretPaths)) {
      const field = p.split(".")[0];
      if (!(field in allowed)) problems.push(`${r.type} ${r.name}: input ${field || "(all)"} is secret (at ${p || "the root"})`);
    }
  }
  return problems;
}
