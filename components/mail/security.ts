// Security contexts and protocol-speaking probes for the mail daemons. Both masters start as root
// (they bind ports < 1024 and switch to per-service users), so the namespace is Pod Security
// "baseline"; everything except the capabilities below is dropped. docs/mail.md explains each one.
import type * as k8s from "@pulumi/kubernetes";
import { execProbe, startupProbe } from "../lib/pod";

type SecurityContext = k8s.types.input.core.v1.SecurityContext;
type Probe = k8s.types.input.core.v1.Probe;

/** Why each capability is kept, per container; the keys are what the pods get. */
export const CAPABILITIES: Record<"postfix" | "opendkim" | "dovecot", Record<string, string>> = {
  postfix: {
    NET_BIND_SERVICE: "master binds 25, 465 and 587",
    SETUID: "master runs smtpd/qmgr/... as the postfix user",
    SETGID: "master switches to the postfix and postdrop groups",
    CHOWN: "postfix start creates the queue directories on a fresh volume owned by postfix:postdrop",
    FOWNER: "postfix start sets modes on queue directories it has just given to the postfix user",
    DAC_OVERRIDE: "root-run postfix check and postsuper read queue directories that are mode 0700 postfix",
    KILL: "master signals its children, which run as the postfix user, on reload and stop",
  },
  opendkim: {
    SETUID: "reads the DKIM key as root, then becomes the opendkim user",
    SETGID: "switches to the opendkim group",
  },
  dovecot: {
    NET_BIND_SERVICE: "master binds 24, 110, 143, 993 and 995",
    SETUID: "master runs login processes as dovenull, auth as dovecot, mail processes as vmail",
    SETGID: "same switch for groups",
    CHOWN: "master creates its runtime sockets owned by the service users; run.sh gives the user list to group dovecot",
    KILL: "master signals its children, which run as other users, on reload and stop",
    SYS_CHROOT: "pre-authentication login processes are chrooted (Dovecot's default hardening)",
  },
};

/** Root, but with only the listed capabilities, no privilege escalation and the runtime seccomp profile. */
export function mailContainerSecurity(daemon: keyof typeof CAPABILITIES): SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    privileged: false,
    // The daemons write their own runtime state (/etc/postfix copies, /run/dovecot, /var/lib/*).
    readOnlyRootFilesystem: false,
    runAsUser: 0,
    runAsNonRoot: false,
    capabilities: { drop: ["ALL"], add: Object.keys(CAPABILITIES[daemon]) },
    seccompProfile: { type: "RuntimeDefault" },
  };
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
