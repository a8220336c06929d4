// Mocha wiring shared by the daemon groups: one sandbox per group (cleaned up also when a test
// fails), the containers' last log lines attached to a failing test, and the version of each
// Debian program the group ran against, printed once.
import { spawnSync } from "child_process";
import { shimFor } from "./images";
import { Sandbox } from "./sandbox";

export interface GroupContext {
  sb: Sandbox;
}

/** Creates the group's sandbox before its tests and removes it after them, whatever happened. */
export function useSandbox(group: string): GroupContext {
  const ctx = {} as GroupContext;
  before(async () => {
    ctx.sb = await Sandbox.create(group);
  });
  afterEach(function () {
    if (this.currentTest?.state === "failed" && ctx.sb) {
      console.log(`\n--- container logs after "${this.currentTest.title}":\n${ctx.sb.logs(25)}`);
    }
  });
  after(async () => {
    await ctx.sb?.cleanup();
  });
  return ctx;
}

/** "postgres (PostgreSQL) 15.x" for an image's Debian stand-in. */
export function versionOf(image: string): string {
  const [cmd, ...args] = shimFor(image).version;
  const r = spawnSync(cmd, args, { encoding: "utf8", env: { PATH: "/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/sbin:/bin" } });
  return `${(r.stdout || r.stderr).trim().split("\n")[0]} (for ${image})`;
}
