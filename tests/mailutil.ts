// Small helpers shared by the mail tier's tests.

/** key = value lines of a Postfix main.cf. */
export function postconf(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split("\n")
      .filter((l) => /^[a-z_]+ =/.test(l))
      .map((l) => [l.slice(0, l.indexOf(" =")), l.slice(l.indexOf("=") + 1).trim()]),
  );
}

/** kubernetes-models' Model#validate (its base types do not resolve under this tsconfig). */
export function validate(model: unknown): void {
  (model as { validate(): void }).validate();
}

/** True when the value at `at` (or an object holding it) was a Pulumi secret when registered. */
export function isSecretAt(rec: { secretPaths: string[] }, at: string): boolean {
  return rec.secretPaths.some((p) => p === at || at.startsWith(`${p}.`));
}

