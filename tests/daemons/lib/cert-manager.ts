// cert-manager's part, for the daemon tier: the program renders a Certificate and never the Secret
// cert-manager writes for it, so a pod that mounts that Secret needs it made. This issues what the
// Certificate asks for (key algorithm and size, common name, DNS names, duration) from a throw-away
// test CA and returns the kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) as cert-manager
// would write it. Clients verify the chain against `ca.file`, as they would a public CA.
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { K8sObject } from "../../harness";

export interface TestCa {
  /** CA certificate (PEM) on disk, for clients' trust stores. */
  file: string;
  certPem: string;
  keyFile: string;
}

/** A self-signed CA in `dir` (the sandbox's directory: it goes with the sandbox). */
export function testCa(dir: string): TestCa {
  fs.mkdirSync(dir, { recursive: true });
  const keyFile = path.join(dir, "ca.key");
  const file = path.join(dir, "ca.crt");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyFile, "-out", file, "-subj", "/CN=daemon-tier test CA", "-days", "2", "-sha256"], { stdio: "pipe" });
  return { file, certPem: fs.readFileSync(file, "utf8"), keyFile };
}

/** Go duration ("2160h", "90m") in whole days, at least one. */
function days(duration: string | undefined): number {
  const m = /^(\d+)h$/.exec(duration ?? "");
  return m ? Math.max(1, Math.ceil(Number(m[1]) / 24)) : 90;
}

/** The Secret cert-manager writes for a rendered Certificate, signed by `ca`. */
export function issue(certificate: K8sObject, ca: TestCa): K8sObject {
  const spec = certificate.spec;
  const dir = path.dirname(ca.file);
  const name = `${certificate.metadata.name}-${crypto.randomBytes(4).toString("hex")}`;
  const algorithm = spec.privateKey?.algorithm ?? "RSA";
  const pair =
    algorithm === "RSA"
      ? crypto.generateKeyPairSync("rsa", { modulusLength: spec.privateKey?.size ?? 2048 })
      : crypto.generateKeyPairSync("ec", { namedCurve: spec.privateKey?.size === 384 ? "secp384r1" : "prime256v1" });
  // cert-manager's default encoding: PKCS#1 for RSA, SEC1 for ECDSA.
  const keyPem = pair.privateKey.export({ type: algorithm === "RSA" ? "pkcs1" : "sec1", format: "pem" }) as string;
  const keyFile = path.join(dir, `${name}.key`);
  fs.writeFileSync(keyFile, keyPem, { mode: 0o600 });
  const usages: string[] = spec.usages ?? ["digital signature", "key encipherment"];
  const keyUsage = usages.filter((u) => u !== "server auth" && u !== "client auth").map((u) => u.replace(/ (\w)/g, (_, c: string) => c.toUpperCase()));
  const extUsage = usages.filter((u) => u === "server auth" || u === "client auth").map((u) => (u === "server auth" ? "serverAuth" : "clientAuth"));
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(
    ext,
    [
      `subjectAltName = ${(spec.dnsNames as string[]).map((d) => `DNS:${d}`).join(",")}`,
      ...(keyUsage.length ? [`keyUsage = critical, ${keyUsage.join(", ")}`] : []),
      ...(extUsage.length ? [`extendedKeyUsage = ${extUsage.join(", ")}`] : []),
      "basicConstraints = CA:FALSE",
      "",
    ].join("\n"),
  );
  const csr = execFileSync("openssl", ["req", "-new", "-key", keyFile, "-subj", `/CN=${spec.commonName ?? spec.dnsNames[0]}`], { encoding: "utf8", stdio: "pipe" });
  const certPem = execFileSync(
    "openssl",
    ["x509", "-req", "-CA", ca.file, "-CAkey", ca.keyFile, "-CAcreateserial", "-days", String(days(spec.duration)), "-sha256", "-extfile", ext],
    { input: csr, encoding: "utf8", stdio: "pipe" },
  );
  return {
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/tls",
    metadata: { name: spec.secretName, namespace: certificate.metadata.namespace, annotations: { "cert-manager.io/certificate-name": certificate.metadata.name } },
    stringData: { "tls.crt": certPem, "tls.key": keyPem, "ca.crt": ca.certPem },
  };
}
