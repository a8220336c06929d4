// Engine behaviour for the daemon tier: the same mocks as the unit tests, except that generated
// values are real. Passwords are random, bcrypt hashes verify, TLS keys and certificates parse,
// so the program's own derived values (the DKIM TXT record, Dovecot's passwd-file, htpasswd)
// are computed from real material and every rendered byte can be handed to the real daemons.
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type * as pulumi from "@pulumi/pulumi";
import { mocks as unitMocks, plainInputs } from "../../harness";

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

function randomPassword(length: number): string {
  return Array.from(crypto.randomBytes(length), (b) => ALNUM[b % ALNUM.length]).join("");
}

/**
 * bcrypt (cost 10) as the random provider computes it. Node has no bcrypt, Debian's libxcrypt has
 * (through Python's crypt module); it writes the `$2b$` prefix where Go's library writes `$2a$`,
 * the same algorithm for passwords this short, so the provider's prefix is restored.
 */
export function bcrypt(password: string): string {
  const script = "import crypt,sys; print(crypt.crypt(sys.stdin.read(), crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024)))";
  const out = execFileSync("/usr/bin/python3", ["-W", "ignore", "-c", script], { input: password, encoding: "utf8" }).trim();
  if (!out.startsWith("$2b$10$")) throw new Error(`unexpected bcrypt output: ${out.slice(0, 7)}`);
  return `$2a$${out.slice(4)}`;
}

function privateKey(inputs: Record<string, any>): Record<string, string> {
  const algorithm = inputs.algorithm ?? "RSA";
  const pair =
    algorithm === "RSA"
      ? crypto.generateKeyPairSync("rsa", { modulusLength: inputs.rsaBits ?? 2048 })
      : crypto.generateKeyPairSync("ec", { namedCurve: { P256: "prime256v1", P384: "secp384r1", P521: "secp521r1" }[String(inputs.ecdsaCurve ?? "P224")] ?? "prime256v1" });
  return {
    // Like the provider: PKCS#1 for RSA ("RSA PRIVATE KEY"), SEC1 for ECDSA, plus PKCS#8 and PKIX.
    privateKeyPem: pair.privateKey.export({ type: algorithm === "RSA" ? "pkcs1" : "sec1", format: "pem" }) as string,
    privateKeyPemPkcs8: pair.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    publicKeyPem: pair.publicKey.export({ type: "spki", format: "pem" }) as string,
  };
}

/** A self-signed certificate for the given key with the subject and SANs asked for (openssl). */
function selfSignedCert(inputs: Record<string, any>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cert-"));
  try {
    const key = path.join(dir, "key.pem");
    fs.writeFileSync(key, inputs.privateKeyPem, { mode: 0o600 });
    const subject = inputs.subject ?? {};
    const subj = [["CN", subject.commonName], ["O", subject.organization]].filter(([, v]) => v).map(([k, v]) => `/${k}=${v}`).join("") || "/CN=self-signed";
    const sans = [...(inputs.dnsNames ?? []).map((d: string) => `DNS:${d}`), ...(inputs.ipAddresses ?? []).map((ip: string) => `IP:${ip}`)];
    const days = String(Math.max(1, Math.ceil((inputs.validityPeriodHours ?? 24) / 24)));
    const args = ["req", "-x509", "-new", "-key", key, "-subj", subj, "-days", days, "-sha256", ...(sans.length ? ["-addext", `subjectAltName=${sans.join(",")}`] : [])];
    return execFileSync("openssl", args, { encoding: "utf8" });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const realMocks: pulumi.runtime.Mocks = {
  newResource(raw) {
    const args = { ...raw, inputs: plainInputs(raw.inputs) };
    const base = unitMocks.newResource(args) as { id: string; state: Record<string, any> };
    const s = base.state;
    switch (args.type) {
      case "random:index/randomPassword:RandomPassword":
        s.result = randomPassword(args.inputs.length ?? 32);
        s.bcryptHash = bcrypt(s.result);
        break;
      case "random:index/randomBytes:RandomBytes": {
        const buf = crypto.randomBytes(args.inputs.length ?? 32);
        s.base64 = buf.toString("base64");
        s.hex = buf.toString("hex");
        break;
      }
      case "tls:index/privateKey:PrivateKey":
        Object.assign(s, privateKey(args.inputs));
        break;
      case "tls:index/selfSignedCert:SelfSignedCert":
        s.certPem = selfSignedCert(args.inputs);
        break;
    }
    return base;
  },
  call: unitMocks.call,
};
