// The static frontend (a `kind: static` service, seed 004's example) from its rendered Deployment
// and nginx ConfigMap: the config passes `nginx -t` as the image's uid 101 with a read-only root,
// the health path and readiness probe, the single-page-app fallback, and the caching headers:
// index.html revalidated, fingerprinted assets immutable, and a missing asset (an old page asking
// for a bundle a rolling update removed) never cacheable, nor any other error on an asset.
//
// The example's image is the application's own build on nginx-unprivileged; the group renders the
// base image (the static template's default) and mounts a small site fixture read-only at
// /usr/share/nginx/html, where the build would copy the site.
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { staticServiceTemplate } from "../../config/app";
import type { StaticServiceConfig } from "../../config/app";
import { STATIC_HEALTH_PATH } from "../../components/lib/nginx";
import { configOf } from "../harness";
import type { Evaluation } from "../harness";
import { useSandbox, versionOf } from "./lib/group";
import { object, renderReal, startPod, waitReady } from "./lib/kube";
import type { RunningPod } from "./lib/kube";
import type { Pod } from "./lib/sandbox";

const EXAMPLE = "seed-004-autoscaling";
const SITE = path.join(__dirname, "fixtures", "frontend");
const HTTP_GET = path.join(__dirname, "clients", "http_get.py");
/** The image a static service runs unless the stack names its own. */
const IMAGE = staticServiceTemplate("prod").image ?? "";
const ASSET = "/assets/app.3f9c2b1e.js";
const LOCKED = "/assets/vendor.9e8d7c6b.js";

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

describe(`nginx: ${versionOf(IMAGE)}`, () => {
  const ctx = useSandbox("nginx");
  let ev: Evaluation;
  let svc: StaticServiceConfig;
  let frontend: RunningPod;
  let client: Pod;
  let base: string;
  const get = async (p: string): Promise<Answer> => {
    const r = await client.exec(["/usr/bin/python3", HTTP_GET, `${base}${p}`]);
    expect(r.code, r.stderr).to.equal(0);
    return JSON.parse(r.stdout);
  };
  const index = fs.readFileSync(path.join(SITE, "index.html"), "utf8");

  before(async () => {
    ev = await renderReal({ stack: EXAMPLE, file: `examples/Pulumi.${EXAMPLE}.yaml`, set: { "services.frontend.image": IMAGE } });
    const s = configOf(ev).services.frontend;
    if (s.kind !== "static") throw new Error("the example's frontend is no longer a static service");
    svc = s;
    // The application image's site, as its build would lay it out, plus one asset nginx may not
    // read (a copy: git keeps no such file mode).
    const site = path.join(ctx.sb.dir, "site");
    fs.cpSync(SITE, site, { recursive: true });
    fs.writeFileSync(path.join(site, LOCKED), "secret", { mode: 0o600 });
    frontend = await startPod(ctx.sb, ev, object(ev, "Deployment", "frontend"), {
      adjust: (c) => ({ ...c, mounts: [...c.mounts, { src: site, dst: "/usr/share/nginx/html", readOnly: true }] }),
    });
    client = ctx.sb.pod("client", { namespace: configOf(ev).platform.namespace });
    base = `http://frontend.${configOf(ev).platform.namespace}.svc.cluster.local:${svc.port}`;
    await waitReady(frontend, "frontend", 15_000);
  });

  it("the rendered config passes `nginx -t` as uid 101 with a read-only root filesystem", async () => {
    const nginx = frontend.containers.frontend;
    const t = await nginx.exec(["nginx", "-t"]);
    expect(t.code, t.stderr).to.equal(0);
    expect(t.stderr).to.match(/syntax is ok/).and.to.match(/test is successful/);
    // The server itself (the container's PID 1) runs as the image's user, not root.
    const status = (await nginx.exec(["cat", "/proc/1/status"])).stdout;
    expect(/^Uid:\s+(\d+)\s+(\d+)/m.exec(status)?.slice(1, 3)).to.deep.equal(["101", "101"]);
    const write = await nginx.exec(["touch", "/etc/nginx/probe"]);
    expect(write.code).to.not.equal(0);
    expect(write.stderr).to.match(/Read-only file system/);
  });

  it(`answers the health path ${STATIC_HEALTH_PATH} (the probes' path) with 200`, async () => {
    const r = await get(STATIC_HEALTH_PATH);
    expect([r.status, r.body]).to.deep.equal([200, "ok\n"]);
  });

  it("serves index.html with Cache-Control no-cache, so a deploy is seen at once", async () => {
    for (const p of ["/", "/index.html"]) {
      const r = await get(p);
      expect(r.status, p).to.equal(200);
      expect(r.body, p).to.equal(index);
      expect(r.headers["cache-control"], p).to.equal("no-cache");
    }
  });

  it("falls back to index.html for the single-page app's own routes", async () => {
    const r = await get("/settings/profile?tab=2");
    expect(r.status).to.equal(200);
    expect(r.body).to.equal(index);
    expect(r.headers["cache-control"]).to.equal("no-cache");
  });

  it("serves fingerprinted assets as immutable for assetMaxAgeSeconds", async () => {
    const r = await get(ASSET);
    expect(r.status).to.equal(200);
    expect(r.body).to.equal(fs.readFileSync(path.join(SITE, ASSET), "utf8"));
    expect(r.headers["cache-control"]).to.equal(`public, max-age=${svc.assetMaxAgeSeconds}, immutable`);
  });

  it("answers a missing asset with 404 that no cache may keep (no-store), not the immutable header", async () => {
    // During a rolling update an old page asks for a bundle this pod does not have (yet): were the
    // 404 cacheable, a CDN or browser would keep serving it after the rollout finished.
    const r = await get("/assets/app.0badc0de.js");
    expect(r.status).to.equal(404);
    expect(r.headers["cache-control"]).to.equal("no-store");
  });

  it("marks no other error on an asset immutable either (403 for a file nginx may not read)", async () => {
    const r = await get(LOCKED);
    expect(r.status).to.equal(403);
    expect(r.headers["cache-control"] ?? "").to.not.match(/immutable|max-age=[1-9]/);
  });
});
