// A local S3-compatible object store for the daemon tier: npm's s3rver in a pod of the sandbox,
// over TLS with a certificate from a throw-away CA (the endpoint must be https, as in production).
// s3rver knows one account, access key id S3RVER (secret S3RVER), and refuses any other key id
// (InvalidAccessKeyId); it does not verify v4 signatures, so only the key id is proven by it. The
// tests hand these keys to the program as the secret config, so an upload that works used the
// rendered credentials.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ROOT } from "../../harness";
import type { ContainerSpec, Pod, Sandbox } from "./sandbox";

export const S3_HOST = "s3.objectstore.test";
export const S3_KEYS = { objectStoreAccessKeyId: "S3RVER", objectStoreSecretAccessKey: "S3RVER" };

export interface ObjectStore {
  pod: Pod;
  endpoint: string;
  bucket: string;
  caPem: string;
  /** Directory where s3rver keeps the bucket's objects. */
  dataDir: string;
  /** `backups.objectStore` for a stack, and the secret config values it needs. */
  config(prefix: string): { set: Record<string, unknown>; secrets: Record<string, string> };
  /** Keys under a prefix, sorted. */
  list(prefix: string): string[];
  /** Adds the test CA to a container's trust store (as an image built for a private CA would have it). */
  trust(spec: ContainerSpec): ContainerSpec;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: "pipe" });
}

export async function startObjectStore(sb: Sandbox, bucket = "backups"): Promise<ObjectStore> {
  const dir = path.join(sb.dir, "s3");
  const dataDir = path.join(dir, "data");
  fs.mkdirSync(dataDir, { recursive: true });
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=daemon tier test CA"], dir);
  openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr", "-subj", `/CN=${S3_HOST}`], dir);
  fs.writeFileSync(path.join(dir, "ext"), `subjectAltName=DNS:${S3_HOST}\n`);
  openssl(["x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "tls.crt", "-days", "2", "-extfile", "ext"], dir);
  const caPem = fs.readFileSync(path.join(dir, "ca.crt"), "utf8");

  const pod = sb.pod("s3", { namespace: "objectstore" });
  sb.addA(S3_HOST, pod.ip);
  await sb.applyDns();
  const s3rver = path.join(ROOT, "node_modules", "s3rver", "bin", "s3rver.js");
  const c = pod.start({
    name: "s3rver",
    argv: [process.execPath, s3rver, "-d", "/data", "-a", "0.0.0.0", "-p", "443", "--key", "/tls/tls.key", "--cert", "/tls/tls.crt", "--no-vhost-buckets", "--configure-bucket", bucket],
    env: { PATH: "/usr/bin:/bin", HOME: "/tmp" },
    mounts: [
      { src: dataDir, dst: "/data" },
      { src: dir, dst: "/tls", readOnly: true },
    ],
  });
  await c.waitLog(/S3rver listening|listening on/i, 20_000);
  await pod.waitTcp(443);

  const bundle = fs.readFileSync("/etc/ssl/certs/ca-certificates.crt", "utf8");
  return {
    pod,
    endpoint: `https://${S3_HOST}`,
    bucket,
    caPem,
    dataDir,
    config: (prefix) => ({
      set: { "backups.objectStore": { endpoint: `https://${S3_HOST}`, bucket, prefix, pathStyle: true, cidrs: [`${pod.ip}/32`] } },
      secrets: { ...S3_KEYS },
    }),
    list: (prefix) => {
      const root = path.join(dataDir, bucket);
      const out: string[] = [];
      const walk = (d: string) => {
        if (!fs.existsSync(d)) return;
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          const p = path.join(d, e.name);
          if (e.isDirectory()) walk(p);
          else if (e.name.endsWith("._S3rver_object")) out.push(path.relative(root, p).slice(0, -"._S3rver_object".length));
        }
      };
      walk(root);
      return out.filter((k) => k.startsWith(prefix)).sort();
    },
    trust: (spec) => ({ ...spec, files: [...(spec.files ?? []), { path: "/etc/ssl/certs/ca-certificates.crt", content: bundle + caPem }] }),
  };
}
