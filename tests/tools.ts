// Programs some unit tests run for real (the rendered Python scripts, the docs' jq programs). A
// machine without them fails those tests with this message; it never skips them.
import { spawnSync } from "child_process";

const CHECKS: Record<string, string[]> = { python3: ["-c", "import sys"], jq: ["--version"] };

export function requireTools(...tools: (keyof typeof CHECKS)[]): void {
  const missing = tools.filter((t) => spawnSync(t, CHECKS[t]).status !== 0);
  if (missing.length) throw new Error(`this test runs ${missing.join(" and ")} for real; install ${missing.length > 1 ? "them" : "it"} (apt-get install ${missing.join(" ")}), see README, Prerequisites`);
}
