// Generated credentials: the seeds' keys exist, every value stays a Pulumi secret, rotation is a keeper.
import { expect } from "chai";
import { STACKS, configOf, evaluate, evaluateStack, findObject, generatedValues, isSecretAt, ok, recordOf } from "./harness";

const SEED_APP_KEYS = ["DB_USER", "DB_PASSWORD", "JWT_SECRET", "ENCRYPTION_KEY"]; // seed 000 email-service-secrets

describe("generated secrets", () => {
  for (const stack of STACKS) {
    describe(stack, () => {
      it("app-secrets holds the seed's keys, and every value is a Pulumi secret", async () => {
        const ev = ok(await evaluateStack(stack));
        const app = findObject(ev, "Secret", "app-secrets", `email-platform-${stack}`);
        expect(Object.keys(app.stringData)).to.include.members(SEED_APP_KEYS);
        const rec = recordOf(ev, "Secret", "app-secrets");
        for (const key of Object.keys(app.stringData)) expect(isSecretAt(rec, `stringData.${key}`), key).to.equal(true);
      });

      it("every Secret value of every generated Secret is a Pulumi secret", async () => {
        const ev = ok(await evaluateStack(stack));
        for (const r of ev.resources.filter((x) => x.inputs.kind === "Secret" && x.inputs.stringData)) {
          for (const key of Object.keys(r.inputs.stringData)) expect(isSecretAt(r, `stringData.${key}`), `${r.inputs.metadata.name}.${key}`).to.equal(true);
        }
      });

      it("JWT_SECRET and ENCRYPTION_KEY are 32 random bytes in base64 (openssl rand -base64 32)", async () => {
        const ev = ok(await evaluateStack(stack));
        const app = findObject(ev, "Secret", "app-secrets");
        for (const key of ["JWT_SECRET", "ENCRYPTION_KEY"]) {
          expect(Buffer.from(app.stringData[key], "base64")).to.have.length(32);
        }
        const bytes = ev.resources.filter((r) => r.type === "random:index/randomBytes:RandomBytes");
        expect(bytes.filter((b) => b.name !== "mongo-keyfile").map((b) => b.inputs.length)).to.deep.equal([32, 32]);
      });

      it("database, cache, document store and Flower credentials are generated into their Secrets", async () => {
        const ev = ok(await evaluateStack(stack));
        const passwords = ev.resources.filter((r) => r.type === "random:index/randomPassword:RandomPassword");
        expect(passwords.every((p) => p.inputs.length >= 32)).to.equal(true);
        const pg = findObject(ev, "Secret", "postgres-credentials");
        const app = findObject(ev, "Secret", "app-secrets");
        expect(app.stringData.DB_PASSWORD).to.equal(pg.stringData.APP_DB_PASSWORD);
        expect(pg.stringData.POSTGRES_PASSWORD).to.not.equal(pg.stringData.APP_DB_PASSWORD);
        // Sentinel has its own password (clients and Sentinels authenticate to the Sentinels with it).
        const redisKeys = Object.keys(findObject(ev, "Secret", "redis-credentials").stringData);
        expect(redisKeys).to.deep.equal(configOf(stack).redis.sentinel.enabled ? ["REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD"] : ["REDIS_PASSWORD"]);
        expect(Object.keys(findObject(ev, "Secret", "mongo-credentials").stringData)).to.include.members([
          "MONGO_INITDB_ROOT_USERNAME",
          "MONGO_INITDB_ROOT_PASSWORD",
          "MONGO_APP_USERNAME",
          "MONGO_APP_PASSWORD",
        ]);
      });

      it("no stack output carries a generated value in plain text", async () => {
        const ev = ok(await evaluateStack(stack));
        const generated = generatedValues(ev);
        expect(generated.length).to.be.greaterThan(3);
        for (const [name, value] of Object.entries(ev.outputs)) {
          if (ev.secretOutputs.includes(name)) continue;
          const text = JSON.stringify(value);
          for (const g of generated) expect(text, `output ${name}`).to.not.include(g);
        }
      });
    });
  }

  it("MongoDB's replica-set keyfile: 756 random bytes (1008 base64 characters, within mongod's 1024), in mongo-credentials as a secret", async () => {
    const ev = ok(await evaluateStack("prod"));
    const keyfile = ev.resources.find((r) => r.type === "random:index/randomBytes:RandomBytes" && r.name === "mongo-keyfile")!;
    expect(keyfile.inputs.length).to.equal(756);
    const value: string = findObject(ev, "Secret", "mongo-credentials").stringData.MONGO_KEYFILE;
    expect(value).to.equal(keyfile.state.base64).and.match(/^[A-Za-z0-9+/]+=*$/);
    expect(value.length).to.equal(1008);
    expect(isSecretAt(recordOf(ev, "Secret", "mongo-credentials"), "stringData.MONGO_KEYFILE")).to.equal(true);
    // Rotated with the mongo group only.
    expect(keyfile.inputs.keepers.rotation).to.equal(`${configOf("prod").secrets.rotation}.0`);
  });

  it("Flower credentials exist only where Flower runs (dev and staging by default, not prod)", async () => {
    const [dev, prod] = [ok(await evaluateStack("dev")), ok(await evaluateStack("prod"))];
    expect(() => findObject(dev, "Secret", "flower-auth")).to.not.throw();
    expect(() => findObject(prod, "Secret", "flower-auth")).to.throw(/found 0/);
  });

  it("rotation is a keeper: bumping secrets.rotation changes every generator's keepers, a per-group bump only its group", async () => {
    const base = ok(await evaluateStack("prod"));
    const all = ok(await evaluate({ stack: "prod", set: { "secrets.rotation": 2 } }));
    const redisOnly = ok(await evaluate({ stack: "prod", set: { "secrets.rotate": { redis: 2 } } }));
    const keepers = (ev: typeof base) => Object.fromEntries(ev.resources.filter((r) => r.type.startsWith("random:")).map((r) => [r.name, r.inputs.keepers.rotation]));
    const [k0, k1, k2] = [keepers(base), keepers(all), keepers(redisOnly)];
    for (const name of Object.keys(k0)) {
      expect(k1[name], name).to.not.equal(k0[name]);
      expect(k2[name] !== k0[name], name).to.equal(name === "redis" || name === "redis-sentinel");
    }
  });

  it("an external credential (seed 001's API keys) reaches external-secrets as a secret once set", async () => {
    const ev = ok(await evaluate({ stack: "prod", set: { "secrets.external": { OPENAI_API_KEY: "openaiApiKey" } }, secrets: { openaiApiKey: "sk-test-123" } }));
    const ext = findObject(ev, "Secret", "external-secrets");
    expect(ext.stringData.OPENAI_API_KEY).to.equal("sk-test-123");
    expect(isSecretAt(recordOf(ev, "Secret", "external-secrets"), "stringData.OPENAI_API_KEY")).to.equal(true);
  });

  it("an external credential that is required but unset fails before anything registers", async () => {
    const ev = await evaluate({ stack: "prod", set: { "secrets.external": { STRIPE_SECRET_KEY: "stripeSecretKey" } } });
    expect(ev.error?.message).to.match(/stripeSecretKey: is a required secret/);
    expect(ev.resources).to.have.length(0);
  });
});
