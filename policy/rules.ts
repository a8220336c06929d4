// The platform's invariants as pure functions over plain Kubernetes objects (what `kubectl get -o
// json` or a Pulumi resource's inputs look like). One implementation, two users: the policy pack
// (index.ts, run by `pulumi preview --policy-pack policy`) and the repository's unit tests
// (tests/checks.ts), which run every rule over every object of every stack. No imports: the pack
// stays self-contained and the tests need nothing from @pulumi/policy to run a rule.

/** A Kubernetes object as plain data; rules only read it. */
export type K8sObject = any;

/** One violation of a rule that looks at several objects, attributed to the object to fix. */
export interface Finding {
  object: K8sObject;
  message: string;
}

export const ENVIRONMENTS = ["dev", "staging", "prod"] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

const INSTANCE_LABEL = "app.kubernetes.io/instance";
export const POD_SECURITY_LABEL = "pod-security.kubernetes.io/enforce";
export const RECOMMENDED_LABELS = ["name", "instance", "component", "part-of", "managed-by"].map((k) => `app.kubernetes.io/${k}`);
const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "StorageClass", "PersistentVolume", "CustomResourceDefinition", "ClusterIssuer", "PriorityClass"]);

/** `Kind namespace/name`, how every message names its object. */
export function describe(o: K8sObject): string {
  const ns = o?.metadata?.namespace;
  return `${o?.kind} ${ns ? `${ns}/` : ""}${o?.metadata?.name}`;
}

export function isNamespaced(obj: K8sObject): boolean {
  return !CLUSTER_SCOPED.has(obj.kind);
}

/**
 * The environment an object belongs to, read from its app.kubernetes.io/instance label, which the
 * program sets to `<platform name>-<environment>` on every object (components/lib/labels.ts).
 * Undefined when the label is missing or has no environment suffix: rules then apply prod's.
 */
export function environmentOf(obj: K8sObject): Environment | undefined {
  const instance = obj?.metadata?.labels?.[INSTANCE_LABEL] ?? podSpecs(obj)[0]?.labels?.[INSTANCE_LABEL];
  const suffix = typeof instance === "string" ? instance.split("-").pop() : undefined;
  return ENVIRONMENTS.find((e) => e === suffix);
}

// ---------- pods ----------

/** Pod specs inside any workload kind, with the labels of their pods. */
export function podSpecs(obj: K8sObject): { spec: any; labels: Record<string, string> }[] {
  const t =
    obj?.kind === "CronJob"
      ? obj.spec?.jobTemplate?.spec?.template
      : ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"].includes(obj?.kind)
        ? obj.spec?.template
        : obj?.kind === "Pod"
          ? { metadata: obj.metadata, spec: obj.spec }
          : undefined;
  return t?.spec ? [{ spec: t.spec, labels: t.metadata?.labels ?? {} }] : [];
}

export function containersOf(spec: any): any[] {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])];
}

/** Does a LabelSelector (matchLabels and matchExpressions) select these labels? Empty selects all. */
export function selects(selector: any, labels: Record<string, string>): boolean {
  if (!selector) return false;
  const byLabels = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  const byExpressions = (selector.matchExpressions ?? []).every((e: any) => {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    switch (e.operator) {
      case "In":
        return has && (e.values ?? []).includes(labels[e.key]);
      case "NotIn":
        return !has || !(e.values ?? []).includes(labels[e.key]);
      case "Exists":
        return has;
      case "DoesNotExist":
        return !has;
      default:
        return false;
    }
  });
  return byLabels && byExpressions;
}

// ---------- Pod Security Standards ----------

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
export const POD_SECURITY_LEVELS = ["baseline", "restricted"] as const;
export type PodSecurityLevel = (typeof POD_SECURITY_LEVELS)[number];

/** Pod Security Standards (v1.30 rules) for "baseline" or "restricted"; returns the violations. */
export function podSecurityViolations(spec: any, level: PodSecurityLevel): string[] {
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

/**
 * Every namespace enforces baseline or restricted, and every pod passes its namespace's level (a
 * namespace the stack does not create counts as restricted). Admission would refuse such a pod
 * only after `pulumi up` started; this says so in the preview.
 */
export function podSecurityFindings(objects: K8sObject[]): Finding[] {
  const out: Finding[] = [];
  const levels = new Map<string, PodSecurityLevel>();
  for (const ns of objects.filter((o) => o.kind === "Namespace")) {
    const level = ns.metadata?.labels?.[POD_SECURITY_LABEL];
    if ((POD_SECURITY_LEVELS as readonly string[]).includes(level)) levels.set(ns.metadata.name, level);
    else {
      out.push({
        object: ns,
        message: `${describe(ns)}: label ${POD_SECURITY_LABEL} is ${level === undefined ? "missing" : `"${level}"`}; set it to "restricted" (or "baseline" for daemons that must start as root) so admission enforces the level`,
      });
    }
  }
  for (const o of objects) {
    for (const { spec } of podSpecs(o)) {
      const level = levels.get(o.metadata?.namespace) ?? "restricted";
      const v = podSecurityViolations(spec, level);
      if (v.length) {
        out.push({
          object: o,
          message: `${describe(o)}: violates Pod Security "${level}" of its namespace: ${v.join("; ")}; fix the pod and container securityContext (components/lib/pod.ts builds compliant ones)`,
        });
      }
    }
  }
  return out;
}

// ---------- one object at a time ----------

/** Every container requests and limits cpu and memory: quotas, scheduling and eviction work from them. */
export function resourceProblems(obj: K8sObject): string[] {
  const out: string[] = [];
  for (const { spec } of podSpecs(obj)) {
    for (const c of containersOf(spec)) {
      const missing = (["requests", "limits"] as const).flatMap((k) => ["cpu", "memory"].filter((r) => c.resources?.[k]?.[r] === undefined).map((r) => `${k}.${r}`));
      if (missing.length) {
        out.push(`${describe(obj)}: container ${c.name} sets no resources.${missing.join(", ")}; give every container cpu and memory requests and limits (the ResourceQuota, the scheduler and eviction work from them)`);
      }
    }
  }
  return out;
}

/** Workloads and their pods carry the recommended app.kubernetes.io labels (selectors, policies, dashboards use them). */
export function labelProblems(obj: K8sObject): string[] {
  const out: string[] = [];
  for (const { labels } of podSpecs(obj)) {
    for (const [where, have] of [
      ["its labels", obj.metadata?.labels ?? {}],
      ["its pod template's labels", labels],
    ] as const) {
      const missing = RECOMMENDED_LABELS.filter((k) => !(k in have));
      if (missing.length) out.push(`${describe(obj)}: ${where} lack ${missing.join(", ")}; build labels with labels() from components/lib/labels.ts`);
    }
  }
  return out;
}

/** Why an image reference is not pinned, or undefined when it is (a version tag, or a digest). */
export function imagePinProblem(image: string, allowLatest: boolean): string | undefined {
  if (/@sha256:[a-f0-9]{64}$/.test(image)) return undefined;
  const last = image.split("/").pop() ?? "";
  const tag = last.includes(":") ? last.slice(last.lastIndexOf(":") + 1) : undefined;
  if (!tag) return "pins no tag or digest";
  if (tag === "latest" && !allowLatest) return "uses the mutable tag 'latest'";
  return undefined;
}

/** Every image names a tag or digest; `latest` only in dev: a rollback must redeploy the same bits. */
export function imageProblems(obj: K8sObject): string[] {
  const env = environmentOf(obj);
  const out: string[] = [];
  for (const { spec } of podSpecs(obj)) {
    for (const c of containersOf(spec)) {
      const problem = typeof c.image === "string" ? imagePinProblem(c.image, env === "dev") : "names no image";
      if (problem) {
        out.push(`${describe(obj)}: container ${c.name} image ${JSON.stringify(c.image)} ${problem} in ${env ?? "an unlabelled environment (rules of prod)"}; pin a version tag (postgres:16.4-alpine) or a digest (name@sha256:...)`);
      }
    }
  }
  return out;
}

/** Kinds that hold data: deleting or replacing one loses it. */
export const STATEFUL_KINDS = ["StatefulSet", "PersistentVolumeClaim", "PersistentVolume"];

/**
 * In prod (or an object without an environment label) every stateful object is registered with
 * `protect`, so `pulumi destroy` or a replacing change fails instead of deleting data.
 */
export function protectionProblems(obj: K8sObject, protect: boolean): string[] {
  if (!STATEFUL_KINDS.includes(obj?.kind) || protect) return [];
  const env = environmentOf(obj);
  if (env === "dev" || env === "staging") return [];
  return [
    `${describe(obj)}: holds data but is not protected in ${env ?? "an unlabelled environment (rules of prod)"}; register it with the resource option protect: true (statefulOptions() in components/data/store.ts) so no destroy or replacement can delete it`,
  ];
}

// ---------- across objects ----------

/** The pods a controller keeps at the least: an HPA's minReplicas, else spec.replicas (default 1). */
function fewestPods(workload: K8sObject, objects: K8sObject[]): number | undefined {
  if (!["Deployment", "StatefulSet", "ReplicaSet"].includes(workload.kind)) return undefined;
  const hpa = objects.find(
    (h) =>
      h.kind === "HorizontalPodAutoscaler" &&
      h.metadata?.namespace === workload.metadata?.namespace &&
      h.spec?.scaleTargetRef?.kind === workload.kind &&
      h.spec?.scaleTargetRef?.name === workload.metadata?.name,
  );
  return hpa ? (hpa.spec.minReplicas ?? 1) : (workload.spec?.replicas ?? 1);
}

function scaled(value: number | string, total: number): number {
  return typeof value === "string" && value.endsWith("%") ? Math.ceil((Number(value.slice(0, -1)) / 100) * total) : Number(value);
}

/**
 * A PodDisruptionBudget never blocks a node drain: it allows at least one eviction at the fewest
 * pods its workloads run (maxUnavailable >= 1, or minAvailable below that count), and lets
 * unhealthy pods go (a crash-looping pod must not wedge a drain).
 */
export function pdbFindings(objects: K8sObject[]): Finding[] {
  const out: Finding[] = [];
  for (const pdb of objects.filter((o) => o.kind === "PodDisruptionBudget")) {
    const spec = pdb.spec ?? {};
    const where = describe(pdb);
    if (spec.unhealthyPodEvictionPolicy !== "AlwaysAllow") {
      out.push({ object: pdb, message: `${where}: unhealthy pods count against the budget; set spec.unhealthyPodEvictionPolicy: AlwaysAllow so a crash-looping pod never blocks a drain` });
    }
    const workloads = objects.filter((w) => w.metadata?.namespace === pdb.metadata?.namespace && podSpecs(w).some((p) => selects(spec.selector, p.labels)));
    const counts = workloads.map((w) => fewestPods(w, objects)).filter((n): n is number => n !== undefined);
    const pods = counts.reduce((a, b) => a + b, 0);
    if (spec.maxUnavailable !== undefined) {
      if (scaled(spec.maxUnavailable, Math.max(pods, 1)) < 1) {
        out.push({ object: pdb, message: `${where}: maxUnavailable ${spec.maxUnavailable} allows no eviction, so every node drain blocks; use maxUnavailable: 1` });
      }
    } else if (spec.minAvailable !== undefined && counts.length > 0 && scaled(spec.minAvailable, pods) >= pods) {
      out.push({
        object: pdb,
        message: `${where}: minAvailable ${spec.minAvailable} with ${pods} pod(s) at the fewest (${workloads.map(describe).join(", ")}) allows no eviction, so every node drain blocks; use maxUnavailable: 1`,
      });
    }
  }
  return out;
}

/** The policy types a NetworkPolicy restricts (Ingress always when unset, Egress when it has egress rules). */
function policyTypes(np: K8sObject): string[] {
  return np.spec?.policyTypes ?? ["Ingress", ...(np.spec?.egress ? ["Egress"] : [])];
}

/**
 * Every pod is selected by NetworkPolicies for both directions: a pod no policy selects accepts
 * and sends any traffic. The platform gets there with a default deny per namespace plus one
 * allow-policy per workload generated from the dependency graph (components/network.ts).
 */
export function isolationFindings(objects: K8sObject[]): Finding[] {
  const out: Finding[] = [];
  const policies = objects.filter((o) => o.kind === "NetworkPolicy");
  for (const o of objects) {
    for (const { labels } of podSpecs(o)) {
      const ns = o.metadata?.namespace;
      const covered = new Set(policies.filter((np) => np.metadata?.namespace === ns && selects(np.spec?.podSelector, labels)).flatMap(policyTypes));
      const missing = ["Ingress", "Egress"].filter((t) => !covered.has(t));
      if (missing.length) {
        out.push({
          object: o,
          message: `${describe(o)}: no NetworkPolicy selects its pods for ${missing.join(" or ")}, so they ${missing.length === 2 ? "accept and send" : missing[0] === "Ingress" ? "accept" : "send"} any traffic; namespace ${ns} needs a default deny (podSelector: {}, policyTypes: [Ingress, Egress]) and the workload's edges declared in the dependency graph`,
        });
      }
    }
  }
  return out;
}

/** Kubernetes' own classes, which exist in every cluster. */
const SYSTEM_PRIORITY_CLASSES = ["system-cluster-critical", "system-node-critical"];

/**
 * Pods have a priority the stack decides: where the stack creates PriorityClasses, every pod names
 * one of them (a pod without one has priority 0 and is the first preempted, whatever it runs), and
 * no pod names a class that is neither the stack's nor Kubernetes' own (admission refuses the pod).
 */
export function priorityFindings(objects: K8sObject[]): Finding[] {
  const out: Finding[] = [];
  const classes = new Set(objects.filter((o) => o.kind === "PriorityClass").map((o) => o.metadata?.name));
  for (const o of objects) {
    for (const { spec } of podSpecs(o)) {
      const name = spec.priorityClassName;
      if (name === undefined && classes.size > 0) {
        out.push({ object: o, message: `${describe(o)}: its pods set no priorityClassName, so they run at priority 0 and are preempted before everything else; set one of the stack's PriorityClasses (${[...classes].join(", ")})` });
      } else if (name !== undefined && typeof name === "string" && !classes.has(name) && !SYSTEM_PRIORITY_CLASSES.includes(name)) {
        out.push({ object: o, message: `${describe(o)}: priorityClassName ${name} is not a PriorityClass of the stack (${[...classes].join(", ") || "none"}), so admission refuses its pods` });
      }
    }
  }
  return out;
}

const UNKNOWN = Symbol("unknown until the update");

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string>) => !!selector && Object.entries(selector).every(([k, v]) => labels[k] === v);

/**
 * References that must resolve inside what the stack creates: namespaces, selectors, named ports,
 * Secret/ConfigMap keys, service accounts, PVCs, scale targets and ingress backends. kubectl apply
 * accepts every one of these broken; the pod or route then fails at run time.
 */
export function referenceFindings(objects: K8sObject[]): Finding[] {
  const out: Finding[] = [];
  const namespaces = new Set(objects.filter((o) => o.kind === "Namespace").map((o) => o.metadata?.name));
  const byKind = (kind: string, ns: string) => objects.filter((o) => o.kind === kind && o.metadata?.namespace === ns);
  // A claim the StatefulSet controller creates from a volumeClaimTemplate: <template>-<set>-<ordinal>.
  const claimExists = (ns: string, claim: string) =>
    byKind("PersistentVolumeClaim", ns).some((p) => p.metadata.name === claim) ||
    byKind("StatefulSet", ns).some((set) =>
      (set.spec?.volumeClaimTemplates ?? []).some((t: K8sObject) => Array.from({ length: set.spec.replicas ?? 1 }, (_, i) => `${t.metadata.name}-${set.metadata.name}-${i}`).includes(claim)),
    );
  // The data of a Secret built from generated values is not known in a preview before they exist;
  // reading it throws there (the policy SDK's unknown-value proxy). Such a Secret still counts as
  // present, and its keys are checked once they are known.
  const keysOf = (o: K8sObject): string[] | typeof UNKNOWN => {
    try {
      return [...Object.keys(o.data ?? {}), ...Object.keys(o.stringData ?? {}), ...Object.keys(o.binaryData ?? {})];
    } catch {
      return UNKNOWN;
    }
  };
  const secretNames = (ns: string) => [
    ...byKind("Secret", ns).map((s) => s.metadata.name),
    ...byKind("Certificate", ns).map((c) => c.spec?.secretName), // created by cert-manager
  ];
  /** The keys of a Secret or ConfigMap of the stack, UNKNOWN while its data is, undefined when it does not exist. */
  const findKeys = (kind: "Secret" | "ConfigMap", ns: string, name: string): string[] | typeof UNKNOWN | undefined => {
    const o = byKind(kind, ns).find((x) => x.metadata.name === name);
    if (o) return keysOf(o);
    if (kind === "Secret" && secretNames(ns).includes(name)) return ["tls.crt", "tls.key", "ca.crt"];
    return undefined;
  };
  const lacks = (keys: string[] | typeof UNKNOWN | undefined, key: string) => Array.isArray(keys) && !keys.includes(key);

  for (const o of objects) {
    const ns = o.metadata?.namespace;
    const where = describe(o);
    const problem = (message: string) => out.push({ object: o, message: `${where}: ${message}` });
    if (isNamespaced(o)) {
      if (typeof ns !== "string") problem("names no namespace (it would land in the provider's default); set metadata.namespace");
      else if (!namespaces.has(ns)) problem(`namespace ${ns} is not created by this stack`);
    }
    for (const { spec, labels } of podSpecs(o)) {
      const sel = o.spec?.selector?.matchLabels;
      if (["Deployment", "StatefulSet"].includes(o.kind) && !matches(sel, labels)) problem("selector does not match its pod template labels");
      if (o.kind === "StatefulSet" && !byKind("Service", ns).some((s) => s.metadata.name === o.spec.serviceName)) problem(`serviceName ${o.spec.serviceName} is not a Service`);
      if (spec.serviceAccountName && !byKind("ServiceAccount", ns).some((s) => s.metadata.name === spec.serviceAccountName)) {
        problem(`serviceAccountName ${spec.serviceAccountName} does not exist`);
      }
      const volumeNames = new Set([...(spec.volumes ?? []).map((v: any) => v.name), ...(o.spec?.volumeClaimTemplates ?? []).map((t: any) => t.metadata.name)]);
      for (const vol of spec.volumes ?? []) {
        if (vol.secret && !vol.secret.optional) {
          const keys = findKeys("Secret", ns, vol.secret.secretName);
          if (!keys) problem(`volume ${vol.name} mounts missing Secret ${vol.secret.secretName}`);
          for (const item of vol.secret.items ?? []) if (lacks(keys, item.key)) problem(`Secret ${vol.secret.secretName} has no key ${item.key}`);
        }
        if (vol.configMap && !vol.configMap.optional) {
          const keys = findKeys("ConfigMap", ns, vol.configMap.name);
          if (!keys) problem(`volume ${vol.name} mounts missing ConfigMap ${vol.configMap.name}`);
          for (const item of vol.configMap.items ?? []) if (lacks(keys, item.key)) problem(`ConfigMap ${vol.configMap.name} has no key ${item.key}`);
        }
        if (vol.persistentVolumeClaim && !claimExists(ns, vol.persistentVolumeClaim.claimName)) {
          problem(`volume ${vol.name} claims missing PVC ${vol.persistentVolumeClaim.claimName}`);
        }
      }
      for (const c of containersOf(spec)) {
        const portNames = new Set((c.ports ?? []).map((p: any) => p.name).filter(Boolean));
        for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
          const port = probe?.httpGet?.port ?? probe?.tcpSocket?.port ?? probe?.grpc?.port;
          if (typeof port === "string" && !portNames.has(port)) problem(`container ${c.name} probe names missing port ${port}`);
        }
        for (const m of c.volumeMounts ?? []) if (!volumeNames.has(m.name)) problem(`container ${c.name} mounts undefined volume ${m.name}`);
        for (const e of c.env ?? []) {
          for (const [kind, ref] of [
            ["Secret", e.valueFrom?.secretKeyRef],
            ["ConfigMap", e.valueFrom?.configMapKeyRef],
          ] as const) {
            if (!ref || ref.optional) continue;
            const keys = findKeys(kind, ns, ref.name);
            if (!keys) problem(`env ${e.name} refers to missing ${kind} ${ref.name}`);
            else if (lacks(keys, ref.key)) problem(`env ${e.name} refers to missing key ${ref.key} of ${kind} ${ref.name}`);
          }
        }
        for (const from of c.envFrom ?? []) {
          if (from.secretRef && !from.secretRef.optional && !findKeys("Secret", ns, from.secretRef.name)) problem(`envFrom missing Secret ${from.secretRef.name}`);
          if (from.configMapRef && !from.configMapRef.optional && !findKeys("ConfigMap", ns, from.configMapRef.name)) problem(`envFrom missing ConfigMap ${from.configMapRef.name}`);
        }
      }
    }
    if (o.kind === "Service" && o.spec?.selector) {
      // Labels the pods get at run time (Patroni's role label) are not in the template; the rest must match.
      const runtime = String(o.metadata?.annotations?.["platform/runtime-labels"] ?? "").split(",").filter(Boolean);
      const selector = Object.fromEntries(Object.entries(o.spec.selector as Record<string, string>).filter(([k]) => !runtime.includes(k)));
      const pods = objects.filter((w) => w.metadata?.namespace === ns).flatMap((w) => podSpecs(w).filter((p) => matches(selector, p.labels)));
      if (pods.length === 0) problem("selector matches no pod template");
      for (const p of o.spec.ports ?? []) {
        if (typeof p.targetPort !== "string") continue;
        const named = pods.some(({ spec }) => containersOf(spec).some((c) => (c.ports ?? []).some((cp: any) => cp.name === p.targetPort)));
        if (!named) problem(`targetPort ${p.targetPort} is not a named container port of its pods`);
      }
    }
    if (o.kind === "HorizontalPodAutoscaler") {
      const t = o.spec.scaleTargetRef;
      if (!byKind(t.kind, ns).some((w) => w.metadata.name === t.name)) problem(`scale target ${t.kind}/${t.name} does not exist`);
    }
    if (o.kind === "PodDisruptionBudget" || (o.kind === "NetworkPolicy" && Object.keys(o.spec?.podSelector?.matchLabels ?? {}).length)) {
      const sel = o.kind === "PodDisruptionBudget" ? o.spec.selector?.matchLabels : o.spec.podSelector.matchLabels;
      const any = objects.filter((w) => w.metadata?.namespace === ns).some((w) => podSpecs(w).some((p) => matches(sel, p.labels)));
      if (!any) problem("selector matches no pods");
    }
    if (o.kind === "Ingress") {
      for (const rule of o.spec?.rules ?? []) {
        for (const p of rule.http?.paths ?? []) {
          const svc = byKind("Service", ns).find((s) => s.metadata.name === p.backend?.service?.name);
          if (!svc) problem(`path ${p.path} routes to missing Service ${p.backend?.service?.name}`);
          else if (!(svc.spec.ports ?? []).some((sp: any) => sp.port === p.backend.service.port?.number || sp.name === p.backend.service.port?.name)) {
            problem(`path ${p.path} routes to a port Service ${svc.metadata.name} does not expose`);
          }
        }
      }
    }
  }
  return out;
}
