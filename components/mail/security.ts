// Security contexts and protocol-speaking probes for the mail daemons. Only Postfix's master must
// start as root (it binds 25/465/587 and switches to per-service users), so the namespace stays
// Pod Security "baseline" and the postfix container keeps the capabilities below; every other
// mail container (Rspamd, its Redis, the exporter, ClamAV, Dovecot) runs as an unprivileged user
// with nothing added. docs/mail.md explains each capability and each accepted lint finding.
import type * as k8s from "@pulumi/kubernetes";
import { execProbe, restrictedContainer, startupProbe } from "../lib/pod";

type SecurityContext = k8s.types.input.core.v1.SecurityContext;
type Probe = k8s.types.input.core.v1.Probe;

/** Why each capability is kept: the postfix container is the only one that adds any. */
export const CAPABILITIES: Record<"postfix", Record<string, string>> = {
  postfix: {
    NET_BIND_SERVICE: "master binds 25, 465 and 587",
    SETUID: "master runs smtpd/qmgr/... as the postfix user",
    SETGID: "master switches to the postfix and postdrop groups",
    CHOWN: "postfix start creates the queue directories on a fresh volume owned by postfix:postdrop",
    FOWNER: "postfix start sets modes on queue directories it has just given to the postfix user",
    DAC_OVERRIDE: "root-run postfix check and postsuper read queue directories that are mode 0700 postfix",
    KILL: "master signals its children, which run as the postfix user, on reload and stop",
  },
};

/**
 * Findings an outside linter (kube-linter) reports for the postfix container and that stay, each
 * with its reason. They are written on the Postfix StatefulSet as kube-linter's own ignore
 * annotations, so a reviewer sees them on the object; nothing else in the mail tier carries one.
 */
export const LINT_EXCEPTIONS: Record<string, string> = {
  "run-as-non-root": "Postfix's master must start as root to bind 25/465/587 and run each daemon as the postfix user; it keeps only the capabilities listed in docs/mail.md",
  "no-read-only-root-fs": "Postfix writes its runtime copies of the rendered configuration (/etc/postfix), pid and lock files and /var/lib/postfix at start",
  "privileged-ports": "SMTP's well-known ports 25, 465 and 587 are served directly so the load balancer needs no port mapping and logs name the real ports",
};

/** kube-linter's annotation for a check it should not report on this object. */
export function lintIgnoreAnnotations(exceptions: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(exceptions).map(([check, reason]) => [`ignore-check.kube-linter.io/${check}`, reason]));
}

/** Root, but with only the listed capabilities, no privilege escalation and the runtime seccomp profile. */
export function mailContainerSecurity(daemon: keyof typeof CAPABILITIES): SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    privileged: false,
    // Postfix writes its own runtime state (/etc/postfix copies, /var/lib/postfix); see LINT_EXCEPTIONS.
    readOnlyRootFilesystem: false,
    runAsUser: 0,
    runAsNonRoot: false,
    capabilities: { drop: ["ALL"], add: Object.keys(CAPABILITIES[daemon]) },
    seccompProfile: { type: "RuntimeDefault" },
  };
}

/** An image's unprivileged user, nothing added, read-only root: what Pod Security "restricted" asks of a container. */
export function unprivileged(uid: number, gid: number): SecurityContext {
  return { ...restrictedContainer({ runAsUser: uid }), runAsGroup: gid, privileged: false };
}

/**
 * Connects to a local port and checks the server's greeting with bash's /dev/tcp (bash is in both
 * images; Debian-based). A hung daemon that still holds the port fails this; a TCP check would pass.
 */
export function greetingCheck(port: number, expect: string, quit: string): string[] {
  return [
    "bash",
    "-c",
    `exec 3<>/dev/tcp/127.0.0.1/${port} && IFS= read -r -t 5 line <&3 && printf '${quit}\\r\\n' >&3; [[ "$line" == "${expect}"* ]]`,
  ];
}

export const SMTP_GREETING = (port: number) => greetingCheck(port, "220 ", "QUIT");
export const IMAP_GREETING = (port: number) => greetingCheck(port, "* OK", "a LOGOUT");

export function protocolProbes(command: string[]): { readinessProbe: Probe; livenessProbe: Probe; startupProbe: Probe } {
  const readiness = execProbe(command, { periodSeconds: 10, timeoutSeconds: 8 });
  return {
    readinessProbe: readiness,
    livenessProbe: execProbe(command, { periodSeconds: 20, timeoutSeconds: 8, failureThreshold: 3 }),
    // A fresh queue/mailbox volume and the first config check take a while.
    startupProbe: startupProbe(readiness, 120, 10),
  };
}
