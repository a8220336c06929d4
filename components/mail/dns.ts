// The DNS records an operator publishes for the mail domain, computed from config and the
// generated DKIM public key. Values are ready to paste: each record as name/type/value and the
// whole set as zone-file lines (long TXT values split into 255-character strings, per RFC 1035).

export interface DnsRecord {
  name: string;
  type: "MX" | "TXT";
  value: string;
  ttl: number;
}

export interface MailDnsInput {
  domain: string;
  hostname: string;
  selector: string;
  /** The DKIM public key, PEM (SubjectPublicKeyInfo). */
  publicKeyPem: string;
  dmarcPolicy: "none" | "quarantine" | "reject";
  spfExtra: string[];
}

/** The base64 body of a PEM block: the DER bytes as DKIM's p= tag wants them. */
export function pemBody(pem: string): string {
  return pem
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.startsWith("-----"))
    .map((l) => l.trim())
    .join("");
}

export function mailDnsRecords(i: MailDnsInput): Record<"mx" | "spf" | "dkim" | "dmarc", DnsRecord> {
  const ttl = 3600;
  return {
    mx: { name: `${i.domain}.`, type: "MX", value: `10 ${i.hostname}.`, ttl },
    spf: { name: `${i.domain}.`, type: "TXT", value: ["v=spf1", "mx", ...i.spfExtra, "-all"].join(" "), ttl },
    dkim: { name: `${i.selector}._domainkey.${i.domain}.`, type: "TXT", value: `v=DKIM1; k=rsa; p=${pemBody(i.publicKeyPem)}`, ttl },
    dmarc: {
      name: `_dmarc.${i.domain}.`,
      type: "TXT",
      value: `v=DMARC1; p=${i.dmarcPolicy}; rua=mailto:dmarc-reports@${i.domain}; adkim=r; aspf=r`,
      ttl,
    },
  };
}

/** TXT character-strings are at most 255 bytes; resolvers concatenate the pieces. */
export function txtStrings(value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(`"${value.slice(i, i + 255).replace(/"/g, '\\"')}"`);
  return parts.join(" ");
}

export function zoneLines(records: Record<string, DnsRecord>): string {
  return (
    Object.values(records)
      .map((r) => `${r.name} ${r.ttl} IN ${r.type} ${r.type === "TXT" ? txtStrings(r.value) : r.value}`)
      .join("\n") + "\n"
  );
}
