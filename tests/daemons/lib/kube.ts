// What the kubelet would do with the rendered objects, for the daemon tier: render a stack with
// real generated values, then turn a workload's pod template into running containers. Volumes
// are materialised from the rendered ConfigMaps and Secrets (and persistent directories for
// claims), env is resolved (secretKeyRef, configMapKeyRef, fieldRef, envFrom, $(VAR)), security
// contexts become uid/gid/groups/capabilities/no_new_privs/read-only root, and the image's
// entrypoint is emulated by its shim (images.ts). Probes run as the kubelet runs them.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type { EvaluateOptions, Evaluation, K8sObject } from "../../harness";
import { evaluate, k8sObjects } from "../../harness";
import { docJobs, jobFromCronJob } from "../../docjobs";
import { realMocks } from "./real-mocks";
import { shimFor } from "./images";
import type { Container, ContainerSpec, Mount, Pod, Sandbox } from "./sandbox";
import { waitFor } from "./sandbox";

/** Evaluates a stack like the unit tests do, but with real passwords, hashes, keys and certificates. */
export async function renderReal(opts: Omit<EvaluateOptions, "mocks">): Promise<Evaluation> {
  const ev = await evaluate({ ...opts, mocks: realMocks });
  if (ev.error) throw ev.error;
  return ev;
}

/**
 * The evaluation plus objects that exist in the cluster without the program rendering them (the
 * Secret cert-manager writes for a Certificate): test fixtures, found by object(), secretData()
 * and the pod volumes like rendered objects. The evaluation itself is left as it was.
 */
export function withObjects(ev: Evaluation, objects: K8sObject[]): Evaluation {
  const fixtures = objects.map((obj) => ({
    type: `kubernetes:${String(obj.apiVersion).includes("/") ? obj.apiVersion : `core/${obj.apiVersion}`}:${obj.kind}`,
    name: `fixture-${obj.metadata.name}`,
    urn: "",
    custom: true,
    inputs: obj,
    secretPaths: [],
    state: {},
    parent: "",
    provider: "",
    options: { protect: false, retainOnDelete: false, deleteBeforeReplace: false, dependsOn: [], ignoreChanges: [], replaceOnChanges: [] },
  }));
  return { ...ev, resources: [...ev.resources, ...fixtures] };
}

export function objectsOf(ev: Evaluation, kind: string): K8sObject[] {
  return k8sObjects(ev).filter(({ obj }) => obj.kind === kind).map(({ obj }) => obj);
}

export function object(ev: Evaluation, kind: string, name: string, namespace?: string): K8sObject {
  const found = objectsOf(ev, kind).filter((o) => o.metadata.name === name && (!namespace || o.metadata.namespace === namespace));
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name}${namespace ? ` in ${namespace}` : ""}, found ${found.length}`);
  return found[0];
}

/** Every key of a Secret, decoded (stringData as given, data from base64). */
export function secretData(ev: Evaluation, name: string, namespace?: string): Record<string, string> {
  const s = object(ev, "Secret", name, namespace);
  const data = Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(String(v), "base64").toString("utf8")]));
  return { ...data, ...(s.stringData ?? {}) };
}

export function configMapData(ev: Evaluation, name: string, namespace?: string): Record<string, string> {
  return object(ev, "ConfigMap", name, namespace).data ?? {};
}

/** The pod template of a workload (Deployment, StatefulSet, Job, CronJob). */
export function podTemplate(obj: K8sObject): { metadata: K8sObject; spec: K8sObject } {
  if (obj.kind === "CronJob") return obj.spec.jobTemplate.spec.template;
  return obj.spec.template;
}

/** k8s `$(VAR)` expansion: defined names are replaced, `$$(X)` is the literal `$(X)`, unknown references stay. */
export function expand(s: string, env: Record<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name) => (m === "$$" ? "$" : name in env ? env[name] : m));
}

export interface StartOptions {
  /** StatefulSet ordinal (pod name `<set>-<ordinal>`, claims `<template>-<set>-<ordinal>`). */
  ordinal?: number;
  /** Pod name for Deployments and Jobs. */
  podName?: string;
  /** Reuse an existing pod (network namespace) instead of creating one: a restart in place. */
  pod?: Pod;
  /** Per-container changes the tier needs (e.g. a mount the image would have). */
  adjust?: (c: ContainerSpec, name: string) => ContainerSpec;
  /** Containers to leave out (e.g. an exporter whose binary Debian does not ship). */
  skip?: string[];
}

export interface RunningPod {
  pod: Pod;
  containers: Record<string, Container>;
  /** The init containers that ran, in order (all of them, unless one of a Job's pod failed). */
  init: Record<string, Container>;
  template: { metadata: K8sObject; spec: K8sObject };
}

/**
 * Starts a workload's pod as the kubelet would: init containers one after another, then every
 * container. Claims live in the sandbox (`claims/<claim>`) and survive the pod.
 */
export async function startPod(sb: Sandbox, ev: Evaluation, obj: K8sObject, opts: StartOptions = {}): Promise<RunningPod> {
  const template = podTemplate(obj);
  const spec = template.spec;
  const namespace: string = obj.metadata.namespace;
  const isSet = obj.kind === "StatefulSet";
  const podName = opts.podName ?? (isSet ? `${obj.metadata.name}-${opts.ordinal ?? 0}` : `${obj.metadata.name}-pod`);
  const labels = template.metadata?.labels ?? {};
  const services = objectsOf(ev, "Service")
    .filter((s) => s.metadata.namespace === namespace && s.spec.selector && Object.entries(s.spec.selector).every(([k, v]) => labels[k] === v))
    .map((s) => s.metadata.name as string);
  // Every Service that selects the pod answers with its address, the StatefulSet's governing
  // Service too (a ClusterIP one routes to it; a headless one lists it).
  const pod = opts.pod ?? sb.pod(podName, { namespace, subdomain: isSet ? obj.spec.serviceName : undefined, services });
  if (!opts.pod) {
    await sb.applyDns();
    mapServicePorts(ev, pod, namespace, labels, spec);
  }

  const podDir = path.join(sb.dir, "pods", podName, "volumes");
  const volumes = materializeVolumes(sb, ev, obj, podName, podDir, opts.ordinal ?? 0);
  const build = (c: K8sObject) => {
    const built = containerSpec(ev, namespace, podName, pod.ip, spec, c, volumes);
    return opts.adjust ? opts.adjust(built, c.name) : built;
  };
  const init: Record<string, Container> = {};
  for (const c of spec.initContainers ?? []) {
    if (opts.skip?.includes(c.name)) continue;
    if (spec.restartPolicy !== "Never") {
      // The kubelet would restart a failing one forever: the error (with its log) says more.
      init[c.name] = await pod.runToCompletion(build(c));
      continue;
    }
    // A Job's pod (restartPolicy Never) fails at its first failing init container: nothing after it starts.
    const ran = (init[c.name] = pod.start(build(c)));
    const code = await Promise.race([ran.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 120_000).unref())]);
    if (code === "timeout") {
      ran.kill();
      throw new Error(`${ran.name} did not finish within 120000 ms:\n${ran.tail()}`);
    }
    if (code !== 0) return { pod, containers: {}, init, template };
  }
  const containers: Record<string, Container> = {};
  for (const c of spec.containers) {
    if (opts.skip?.includes(c.name)) continue;
    containers[c.name] = pod.start(build(c));
  }
  return { pod, containers, init, template };
}

/**
 * What kube-proxy does for a ClusterIP Service whose port differs from its target (143 -> 10143):
 * in the sandbox a Service name resolves to the pod itself, so the pod's network namespace
 * redirects the Service port to the container port. Headless Services, NodePort and LoadBalancer
 * ones are not mapped (clients of those use the container port or come from outside). A side
 * effect the cluster lacks: the Service port also answers on the pod's own address.
 */
function mapServicePorts(ev: Evaluation, pod: Pod, namespace: string, labels: Record<string, string>, spec: K8sObject): void {
  const containerPorts: K8sObject[] = (spec.containers ?? []).flatMap((c: K8sObject) => c.ports ?? []);
  const seen = new Set<number>();
  for (const s of objectsOf(ev, "Service")) {
    if (s.metadata.namespace !== namespace || !s.spec.selector || s.spec.clusterIP === "None" || (s.spec.type ?? "ClusterIP") !== "ClusterIP") continue;
    if (!Object.entries(s.spec.selector).every(([k, v]) => labels[k] === v)) continue;
    for (const p of s.spec.ports ?? []) {
      const target = typeof p.targetPort === "string" ? containerPorts.find((c) => c.name === p.targetPort)?.containerPort : (p.targetPort ?? p.port);
      if (target === undefined || target === p.port || seen.has(p.port)) continue;
      seen.add(p.port);
      for (const chain of ["PREROUTING", "OUTPUT"]) {
        // -w: groups run side by side, and the legacy backend's lock is one for the whole host.
        const r = spawnSync("ip", ["netns", "exec", pod.netns, "iptables", "-w", "-t", "nat", "-A", chain, "-p", "tcp", "-d", pod.ip, "--dport", String(p.port), "-j", "REDIRECT", "--to-ports", String(target)], { encoding: "utf8" });
        if (r.status !== 0) throw new Error(`mapping Service ${s.metadata.name} port ${p.port} -> ${target}: ${r.stderr}`);
      }
    }
  }
}

type Volumes = Record<string, string>;

function materializeVolumes(sb: Sandbox, ev: Evaluation, obj: K8sObject, podName: string, dir: string, ordinal: number): Volumes {
  const spec = podTemplate(obj).spec;
  const ns = obj.metadata.namespace;
  const fsGroup: number | undefined = spec.securityContext?.fsGroup;
  const out: Volumes = {};
  const claim = (name: string) => {
    const d = path.join(sb.dir, "claims", name);
    if (!fs.existsSync(d)) {
      // A fresh filesystem: root-owned, with lost+found (initdb refuses such a directory, which is why PGDATA is a subdirectory).
      fs.mkdirSync(path.join(d, "lost+found"), { recursive: true, mode: 0o700 });
      fs.chmodSync(d, 0o755);
    }
    if (fsGroup !== undefined) {
      fs.chownSync(d, 0, fsGroup);
      fs.chmodSync(d, 0o2775);
    }
    return d;
  };
  for (const t of obj.kind === "StatefulSet" ? (obj.spec.volumeClaimTemplates ?? []) : []) out[t.metadata.name] = claim(`${t.metadata.name}-${obj.metadata.name}-${ordinal}`);
  for (const v of spec.volumes ?? []) {
    const d = path.join(dir, v.name);
    if (v.persistentVolumeClaim) {
      out[v.name] = claim(v.persistentVolumeClaim.claimName);
      continue;
    }
    fs.mkdirSync(d, { recursive: true });
    out[v.name] = d;
    if (v.emptyDir) {
      fs.chmodSync(d, 0o777);
      if (fsGroup !== undefined) {
        fs.chownSync(d, 0, fsGroup);
        fs.chmodSync(d, 0o2777);
      }
      continue;
    }
    if (v.projected) {
      materializeProjected(ev, ns, podName, v, d, fsGroup);
      continue;
    }
    const source = v.configMap ?? v.secret;
    if (!source) throw new Error(`${podName}: volume ${v.name} has a type the daemon tier does not materialise yet: ${Object.keys(v).join(",")}`);
    const data = v.configMap ? configMapData(ev, v.configMap.name, ns) : secretData(ev, v.secret.secretName, ns);
    const items: { key: string; path: string; mode?: number }[] = source.items ?? Object.keys(data).map((key) => ({ key, path: key }));
    for (const item of items) {
      if (!(item.key in data)) throw new Error(`${podName}: volume ${v.name} wants key ${item.key}, which its ${v.configMap ? "ConfigMap" : "Secret"} lacks`);
      const file = path.join(d, item.path);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, data[item.key]);
      // As the kubelet: the mode asked for; with fsGroup the group owns it and may read it.
      let mode = item.mode ?? source.defaultMode ?? 0o644;
      if (fsGroup !== undefined) {
        fs.chownSync(file, 0, fsGroup);
        mode |= 0o440;
      }
      fs.chmodSync(file, mode);
    }
  }
  return out;
}

/** ConfigMaps every namespace has without the program creating them (kube-root-ca.crt: the cluster CA). */
const CLUSTER_CONFIGMAPS: Record<string, Record<string, string>> = { "kube-root-ca.crt": { "ca.crt": "-----BEGIN CERTIFICATE-----\n(daemon tier: no cluster CA)\n-----END CERTIFICATE-----\n" } };

/**
 * A projected volume as the kubelet writes it: a service account token (a placeholder: the daemon
 * tier has no API server), ConfigMap/Secret items and downward API fields, in one directory.
 */
function materializeProjected(ev: Evaluation, ns: string, podName: string, v: K8sObject, dir: string, fsGroup: number | undefined): void {
  const write = (rel: string, content: string, mode?: number) => {
    const file = path.join(dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
    let m = mode ?? v.projected.defaultMode ?? 0o644;
    if (fsGroup !== undefined) {
      fs.chownSync(file, 0, fsGroup);
      m |= 0o440;
    }
    fs.chmodSync(file, m);
  };
  for (const src of v.projected.sources ?? []) {
    if (src.serviceAccountToken) write(src.serviceAccountToken.path, `daemon-tier-token-for-${podName}`);
    else if (src.configMap || src.secret) {
      const ref = src.configMap ?? src.secret;
      const known = objectsOf(ev, src.configMap ? "ConfigMap" : "Secret").some((o) => o.metadata.name === ref.name && o.metadata.namespace === ns);
      const data = known ? (src.configMap ? configMapData(ev, ref.name, ns) : secretData(ev, ref.name, ns)) : src.configMap ? CLUSTER_CONFIGMAPS[ref.name] : undefined;
      if (!data) throw new Error(`${podName}: projected volume ${v.name} wants ${src.configMap ? "ConfigMap" : "Secret"} ${ref.name}, which neither the program nor the cluster provides`);
      for (const item of ref.items ?? Object.keys(data).map((key) => ({ key, path: key }))) write(item.path, data[item.key], item.mode);
    } else if (src.downwardAPI) {
      const fields: Record<string, string> = { "metadata.name": podName, "metadata.namespace": ns };
      for (const item of src.downwardAPI.items ?? []) {
        const value = fields[item.fieldRef?.fieldPath];
        if (value === undefined) throw new Error(`${podName}: downward API field ${item.fieldRef?.fieldPath} is not emulated`);
        write(item.path, value, item.mode);
      }
    } else throw new Error(`${podName}: projected source ${Object.keys(src).join(",")} is not emulated`);
  }
}

function resolveEnv(ev: Evaluation, ns: string, podName: string, podIp: string, c: K8sObject): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const data = from.secretRef ? secretData(ev, from.secretRef.name, ns) : configMapData(ev, from.configMapRef.name, ns);
    for (const [k, v] of Object.entries(data)) env[`${from.prefix ?? ""}${k}`] = v;
  }
  for (const e of c.env ?? []) {
    const vf = e.valueFrom;
    if (!vf) env[e.name] = expand(e.value ?? "", env);
    else if (vf.secretKeyRef) {
      const data = secretData(ev, vf.secretKeyRef.name, ns);
      if (vf.secretKeyRef.key in data) env[e.name] = data[vf.secretKeyRef.key];
      else if (!vf.secretKeyRef.optional) throw new Error(`${podName}/${c.name}: env ${e.name} wants key ${vf.secretKeyRef.key} of Secret ${vf.secretKeyRef.name}, which lacks it`);
    } else if (vf.configMapKeyRef) env[e.name] = configMapData(ev, vf.configMapKeyRef.name, ns)[vf.configMapKeyRef.key];
    else if (vf.fieldRef) {
      const field = vf.fieldRef.fieldPath;
      const values: Record<string, string> = { "metadata.name": podName, "metadata.namespace": ns, "status.podIP": podIp, "spec.nodeName": "node-1", "status.hostIP": "10.96.0.1" };
      if (!(field in values)) throw new Error(`${podName}/${c.name}: fieldRef ${field} is not emulated`);
      env[e.name] = values[field];
    } else throw new Error(`${podName}/${c.name}: env ${e.name} uses ${Object.keys(vf).join(",")}, not emulated`);
  }
  return env;
}

/** Linux capabilities a container runtime grants a root process by default (containerd/Docker). */
const RUNTIME_DEFAULT_CAPS = ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"];

function containerSpec(ev: Evaluation, ns: string, podName: string, podIp: string, pod: K8sObject, c: K8sObject, volumes: Volumes): ContainerSpec {
  const shim = shimFor(c.image);
  const psc = pod.securityContext ?? {};
  const sc = c.securityContext ?? {};
  const env = { ...shim.env, ...resolveEnv(ev, ns, podName, podIp, c) };
  const command = (c.command as string[] | undefined)?.map((s) => expand(s, env));
  const args = (c.args as string[] | undefined)?.map((s) => expand(s, env));
  const mounts: Mount[] = (c.volumeMounts ?? []).map((m: K8sObject) => {
    const src = volumes[m.name];
    if (!src) throw new Error(`${podName}/${c.name}: mounts volume ${m.name}, which the pod does not define`);
    return { src: m.subPath ? path.join(src, m.subPath) : src, dst: m.mountPath, readOnly: !!m.readOnly };
  });
  const uid: number = sc.runAsUser ?? psc.runAsUser ?? shim.uid ?? 0;
  const gid: number = sc.runAsGroup ?? psc.runAsGroup ?? shim.gid ?? (uid === 0 ? 0 : uid);
  const groups = [...new Set([...(psc.fsGroup !== undefined ? [psc.fsGroup] : []), ...(psc.supplementalGroups ?? [])])];
  const caps = sc.capabilities ?? {};
  const dropAll = (caps.drop ?? []).includes("ALL");
  const capabilities = [...new Set([...(dropAll ? [] : RUNTIME_DEFAULT_CAPS.filter((x) => !(caps.drop ?? []).includes(x))), ...(caps.add ?? [])])];
  const spec: ContainerSpec = {
    name: c.name,
    argv: shim.argv(command, args),
    env: { HOSTNAME: podName, ...env },
    uid,
    gid,
    groups,
    mounts: [...(shim.mounts ?? []), ...mounts],
    capabilities: uid === 0 ? capabilities : [],
    noNewPrivs: sc.allowPrivilegeEscalation === false,
    readOnlyRoot: !!sc.readOnlyRootFilesystem,
    workdir: c.workingDir ?? shim.workdir,
    passwd: shim.passwd,
    group: shim.group,
    files: shim.files,
  };
  return spec;
}

/** Runs one probe the way the kubelet does (exec in the container, TCP or HTTP against the pod IP). */
export async function probe(pod: Pod, container: Container, p: K8sObject, ports: K8sObject[] = []): Promise<boolean> {
  const timeoutMs = (p.timeoutSeconds ?? 1) * 1000;
  const port = (x: string | number) => (typeof x === "number" ? x : ports.find((cp) => cp.name === x)?.containerPort);
  if (p.exec) return (await container.exec(p.exec.command, { timeoutMs })).code === 0;
  if (p.tcpSocket) return (await pod.exec(["nc", "-z", "-w", String(Math.ceil(timeoutMs / 1000)), pod.ip, String(port(p.tcpSocket.port))])).code === 0;
  if (p.httpGet) {
    const url = `http://${pod.ip}:${port(p.httpGet.port)}${p.httpGet.path ?? "/"}`;
    const py = "import sys,urllib.request as u\ntry:\n  r=u.urlopen(sys.argv[1],timeout=float(sys.argv[2])); sys.exit(0 if 200<=r.status<400 else 1)\nexcept Exception: sys.exit(1)";
    return (await pod.exec(["/usr/bin/python3", "-c", py, url, String(timeoutMs / 1000)])).code === 0;
  }
  throw new Error(`probe type not emulated: ${Object.keys(p).join(",")}`);
}

/** Waits until a container's readiness probe passes (its startup probe's budget, else 60 s). */
export async function waitReady(running: RunningPod, name: string, timeoutMs?: number): Promise<void> {
  const c = running.template.spec.containers.find((x: K8sObject) => x.name === name);
  const container = running.containers[name];
  if (!c?.readinessProbe) throw new Error(`${name} has no readiness probe`);
  const budget = timeoutMs ?? (c.startupProbe ? c.startupProbe.periodSeconds * c.startupProbe.failureThreshold * 1000 : 60_000);
  await waitFor(`${running.pod.name}/${name} to become ready`, async () => {
    if (!container.running) throw new Error(`exited with ${container.exitCode}:\n${container.tail()}`);
    return probe(running.pod, container, c.readinessProbe, c.ports);
  }, budget, 250);
}

export interface JobRun extends RunningPod {
  /** Exit code of each container that ran, init containers included (a failed init container leaves out the rest). */
  codes: Record<string, number | null>;
  /** Every container's output, in the order they ran (init containers first). */
  output: string;
}

/** Runs a Job's (or CronJob's) pod once, like `kubectl create job --from=cronjob/...`, and waits for it. */
export async function runJob(sb: Sandbox, ev: Evaluation, obj: K8sObject, podName: string, opts: Omit<StartOptions, "podName"> = {}, timeoutMs = 120_000): Promise<JobRun> {
  const running = await startPod(sb, ev, obj, { ...opts, podName });
  const codes: Record<string, number | null> = Object.fromEntries(Object.entries(running.init).map(([name, c]) => [name, c.exitCode ?? null]));
  await Promise.all(
    Object.entries(running.containers).map(async ([name, c]) => {
      const code = await Promise.race([c.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), timeoutMs).unref())]);
      if (code === "timeout") {
        c.kill();
        throw new Error(`${c.name} did not finish within ${timeoutMs} ms:\n${c.tail()}`);
      }
      codes[name] = code;
    }),
  );
  const output = [...Object.values(running.init), ...Object.values(running.containers)].map((c) => c.log.join("\n")).join("\n");
  return { ...running, codes, output };
}

export { docJobs };

/** `kubectl create job --from=cronjob/<name> <job> -o json | jq <program>`: the Job the docs apply. */
export function docJob(ev: Evaluation, doc: string, job: string): K8sObject {
  const found = docJobs(doc).get(job);
  if (!found) throw new Error(`docs/${doc} has no "create job ... ${job} ... | jq" command`);
  return jobFromCronJob(object(ev, "CronJob", found.cronJob), job, found.program);
}
