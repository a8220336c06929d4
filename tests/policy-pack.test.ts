// The policy pack started as the Pulumi CLI starts it for `pulumi preview --policy-pack policy`:
// `node node_modules/@pulumi/pulumi/cmd/run-policy-pack <engine> <pack>` inside policy/, with only
// that directory's node_modules, TypeScript compiled (and type-checked) by ts-node on the way in.
// The test then speaks the analyzer protocol to it over gRPC as the engine does. This is what
// shows the directory runs on its own, with nothing from the repository root.
import { expect } from "chai";
import type { ChildProcess } from "child_process";
import { spawn } from "child_process";
import * as path from "path";
import { policies } from "../policy/policies";
import { evaluateStack, k8sObjects, ok } from "./harness";
import type { Recorded } from "./harness";
import { POLICY_DIR } from "./policy-harness";

/* eslint-disable @typescript-eslint/no-require-imports */
const fromPack = (id: string) => require(require.resolve(id, { paths: [POLICY_DIR] }));
const pulumiDir = path.dirname(require.resolve("@pulumi/pulumi/package.json", { paths: [POLICY_DIR] }));
const fromPulumi = (id: string) => require(require.resolve(id, { paths: [pulumiDir] }));
/* eslint-enable @typescript-eslint/no-require-imports */

const grpc = fromPack("@grpc/grpc-js");
const analyzerGrpc = fromPack("@pulumi/pulumi/proto/analyzer_grpc_pb");
const analyzer = fromPack("@pulumi/pulumi/proto/analyzer_pb");
const { Struct } = fromPulumi("google-protobuf/google/protobuf/struct_pb");
const { Empty } = fromPulumi("google-protobuf/google/protobuf/empty_pb");

/** pulumirpc.EnforcementLevel */
const MANDATORY = 1;

function startPack(): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join("node_modules", "@pulumi", "pulumi", "cmd", "run-policy-pack"), "127.0.0.1:0", "."], {
      cwd: POLICY_DIR,
      // The pack must not lean on the test runner's loaders (tsx) or settings.
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => {
      stdout += d;
      const port = /^(\d+)\s*$/m.exec(stdout)?.[1];
      if (port) resolve({ child, port: Number(port) });
    });
    child.stderr!.on("data", (d) => (stderr += d));
    child.on("exit", (code) => reject(new Error(`policy pack exited (${code}) before serving:\n${stdout}\n${stderr}`)));
  });
}

function call<T>(client: any, method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => client[method](request, (err: Error | null, res: T) => (err ? reject(err) : resolve(res))));
}

function resourceOptions(r: Recorded): any {
  const o = new analyzer.AnalyzerResourceOptions();
  o.setProtect(r.options.protect);
  o.setIgnorechangesList(r.options.ignoreChanges);
  return o;
}

describe("policy pack served as the Pulumi CLI runs it (gRPC analyzer)", function () {
  this.timeout(120_000);
  let child: ChildProcess | undefined;
  let client: any;

  before(async () => {
    const served = await startPack();
    child = served.child;
    client = new analyzerGrpc.AnalyzerClient(`127.0.0.1:${served.port}`, grpc.credentials.createInsecure());
  });

  after(() => {
    client?.close();
    child?.kill();
  });

  it("announces every policy of policies.ts as mandatory", async () => {
    const info: any = await call(client, "getAnalyzerInfo", new Empty());
    expect(info.getName()).to.equal("app-platform");
    const served = info.getPoliciesList().map((p: any) => [p.getName(), p.getEnforcementlevel()]);
    expect(served).to.deep.equal(policies.map((p) => [p.name, MANDATORY]));
  });

  it("reports a resource violation with the policy's name and message, and passes the real objects", async () => {
    const ev = ok(await evaluateStack("prod"));
    const analyze = async (r: Recorded, props: object) => {
      const req = new analyzer.AnalyzeRequest();
      req.setType(r.type);
      req.setName(r.name);
      req.setUrn(r.urn);
      req.setProperties(Struct.fromJavaScript(props));
      req.setOptions(resourceOptions(r));
      const res: any = await call(client, "analyze", req);
      return res.getDiagnosticsList().map((d: any) => ({ policy: d.getPolicyname(), message: d.getMessage(), level: d.getEnforcementlevel() }));
    };
    const api = k8sObjects(ev).find(({ obj }) => obj.kind === "Deployment" && obj.metadata.name === "api")!.rec;
    expect(await analyze(api, api.inputs)).to.deep.equal([]);
    const broken = structuredClone(api.inputs);
    delete broken.spec.template.spec.containers[0].resources;
    const diags = await analyze(api, broken);
    expect(diags.map((d: any) => [d.policy, d.level])).to.deep.equal([["container-resources", MANDATORY]]);
    expect(diags[0].message).to.include(`Deployment ${api.inputs.metadata.namespace}/api: container`);
  });

  it("runs the stack policies over the whole stack: the real prod stack passes, a namespace without NetworkPolicies does not", async () => {
    const ev = ok(await evaluateStack("prod"));
    const analyzeStack = async (records: Recorded[]) => {
      const req = new analyzer.AnalyzeStackRequest();
      req.setResourcesList(
        records.map((r) => {
          const res = new analyzer.AnalyzerResource();
          res.setType(r.type);
          res.setName(r.name);
          res.setUrn(r.urn);
          res.setProperties(Struct.fromJavaScript(r.inputs));
          res.setOptions(resourceOptions(r));
          return res;
        }),
      );
      const res: any = await call(client, "analyzeStack", req);
      return res.getDiagnosticsList().map((d: any) => ({ policy: d.getPolicyname(), urn: d.getUrn() }));
    };
    const objects = k8sObjects(ev).map(({ rec }) => rec);
    expect(await analyzeStack(objects)).to.deep.equal([]);
    const withoutPolicies = objects.filter((r) => r.inputs.kind !== "NetworkPolicy");
    const diags = await analyzeStack(withoutPolicies);
    expect(new Set(diags.map((d: any) => d.policy))).to.deep.equal(new Set(["pods-isolated"]));
    const workloads = objects.filter((r) => ["Deployment", "StatefulSet", "Job", "CronJob"].includes(r.inputs.kind));
    expect(new Set(diags.map((d: any) => d.urn))).to.deep.equal(new Set(workloads.map((r) => r.urn)));
  });
});
