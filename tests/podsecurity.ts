// Pod Security Standards "baseline" checks on a pod spec (kubernetes.io/docs/concepts/security/
// pod-security-standards, v1.23+), so tests can prove a pod would be admitted to the mail namespace.
 
import { BASELINE_ALLOWED_CAPABILITIES } from "../components/mail/security";

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

/** Every way the pod spec breaks "baseline"; empty when it would be admitted. */
export function baselineViolations(spec: any): string[] {
  const out: string[] = [];
  if (spec.hostNetwork) out.push("hostNetwork");
  if (spec.hostPID) out.push("hostPID");
  if (spec.hostIPC) out.push("hostIPC");
  if (spec.securityContext?.windowsOptions?.hostProcess) out.push("hostProcess");
  for (const v of spec.volumes ?? []) if (v.hostPath) out.push(`hostPath volume ${v.name}`);
  for (const s of spec.securityContext?.sysctls ?? []) if (!SAFE_SYSCTLS.has(s.name)) out.push(`sysctl ${s.name}`);
  const podCtx = spec.securityContext ?? {};
  const checkCtx = (where: string, ctx: any) => {
    if (ctx.seccompProfile?.type === "Unconfined") out.push(`${where}: seccomp Unconfined`);
    if (ctx.appArmorProfile?.type === "Unconfined") out.push(`${where}: AppArmor Unconfined`);
    const se = ctx.seLinuxOptions;
    if (se && (se.user || se.role || !SELINUX_TYPES.has(se.type ?? ""))) out.push(`${where}: custom SELinux options`);
  };
  checkCtx("pod", podCtx);
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])]) {
    const ctx = c.securityContext ?? {};
    const where = `container ${c.name}`;
    if (ctx.privileged) out.push(`${where}: privileged`);
    if (ctx.windowsOptions?.hostProcess) out.push(`${where}: hostProcess`);
    if (ctx.procMount && ctx.procMount !== "Default") out.push(`${where}: procMount ${ctx.procMount}`);
    for (const cap of ctx.capabilities?.add ?? []) {
      if (!(BASELINE_ALLOWED_CAPABILITIES as readonly string[]).includes(cap)) out.push(`${where}: capability ${cap}`);
    }
    for (const p of c.ports ?? []) if (p.hostPort) out.push(`${where}: hostPort ${p.hostPort}`);
    checkCtx(where, ctx);
  }
  return out;
}
