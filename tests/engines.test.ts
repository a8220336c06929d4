// `npm ci` on the Node version the README names prints no EBADENGINE warning: every locked
// package (the program's and the policy pack's) accepts the lowest Node our engines range allows.
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import * as semver from "semver";
import { ROOT } from "./harness";

const root = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
const lowest = semver.minVersion(root.engines.node)!.version;

describe("Node engines", () => {
  it("the README names the lowest Node version package.json accepts", () => {
    const [major, minor] = lowest.split(".");
    expect(fs.readFileSync(path.join(ROOT, "README.md"), "utf8")).to.include(`Node.js ${major}.${minor}+`);
  });

  for (const dir of [".", "policy"]) {
    it(`every package in ${dir}/package-lock.json runs on Node ${lowest}`, () => {
      const lock = JSON.parse(fs.readFileSync(path.join(ROOT, dir, "package-lock.json"), "utf8"));
      const refusing = Object.entries(lock.packages as Record<string, { version?: string; engines?: { node?: string } }>)
        .filter(([, p]) => p.engines?.node && !semver.satisfies(lowest, p.engines.node))
        .map(([name, p]) => `${name}@${p.version}: node ${p.engines!.node}`);
      expect(Object.keys(lock.packages).length).to.be.greaterThan(10);
      expect(refusing).to.deep.equal([]);
    });
  }
});
