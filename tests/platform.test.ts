import { expect } from "chai";
import { POD_SECURITY } from "../components/platform";
import { evaluateStack, findObject, ok, STACKS } from "./harness";

describe("platform layer", () => {
  for (const stack of STACKS) {
    describe(stack, () => {
      it("labels the app namespace restricted and the mail namespace baseline (enforce, audit, warn)", async () => {
        const ev = ok(await evaluateStack(stack));
        const app = findObject(ev, "Namespace", `email-platform-${stack}`);
        const mail = findObject(ev, "Namespace", `email-platform-mail-${stack}`);
        for (const mode of ["enforce", "audit", "warn"]) {
          expect(app.metadata.labels[`pod-security.kubernetes.io/${mode}`]).to.equal("restricted");
          expect(mail.metadata.labels[`pod-security.kubernetes.io/${mode}`]).to.equal("baseline");
        }
        expect(POD_SECURITY.app).to.equal("restricted");
      });
    });
  }
});
