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
