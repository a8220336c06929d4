import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseAllDocuments, stringify } from "yaml";
import { render } from "../scripts/render";
import { PROJECT, evaluateStack, generatedValues, k8sObjects, ok } from "./harness";

describe("offline render (npm run render -- <stack> [dir])", () => {
  it("writes every object of the stack as YAML with Secret values masked", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "render-"));
    const count = await render("prod", dir);
    const ev = ok(await evaluateStack("prod"));
    expect(count).to.equal(k8sObjects(ev).length);
    const docs = parseAllDocuments(fs.readFileSync(path.join(dir, "_all.yaml"), "utf8")).map((d) => d.toJS());
    expect(docs).to.have.length(count);
    const secrets = docs.filter((d) => d.kind === "Secret");
    expect(secrets.length).to.be.greaterThan(0);
    for (const s of secrets) for (const v of Object.values(s.stringData ?? s.data ?? {})) expect(v).to.equal("<generated: masked>");
    const generated = generatedValues(ev);
    expect(generated.length).to.be.greaterThan(3);
    const text = fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f), "utf8")).join("\n");
    for (const value of generated) expect(text).to.not.include(value);
    fs.rmSync(dir, { recursive: true });
  });

  it("fails with the configuration error when the stack is invalid, writing nothing", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "render-"));
    // A stack file that exists and parses, so only the program's validation can refuse it.
    const file = path.join(dir, "Pulumi.broken.yaml");
    fs.writeFileSync(file, stringify({ config: { [`${PROJECT}:environment`]: "dev", [`${PROJECT}:services`]: { api: { replcias: 2 } } } }));
    const out = path.join(dir, "out");
    let message = "";
    await render("broken", out, file).catch((e: Error) => (message = e.message));
    expect(message).to.include("services.api.replcias: unknown key");
    expect(fs.existsSync(out), "render output directory").to.equal(false);
    fs.rmSync(dir, { recursive: true });
  });
});
