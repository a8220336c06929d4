// The mail tier from the rendered dev and prod stacks: the Postfix pod (postfix + rspamd + redis +
// exporter) and the Dovecot pod started from their StatefulSets, with the rendered main.cf/
// master.cf/rspamd and dovecot.conf, Secrets and probes. Clients run next to them as the app would:
// submission with the app's Secret, SMTP from the internet on 25, IMAP/POP3 with the generated
// passwords, DKIM checked against the TXT record the program outputs. The variants (PROXY protocol,
// an authenticated smarthost, Dovecot on a shared ReadWriteMany volume) are mail-variants.test.ts.
import { expect } from "chai";
import { PORTS } from "../../components/lib/ports";
import { configOf } from "../harness";
import { useSandbox, versionOf } from "./lib/group";
import type { GroupContext } from "./lib/group";
import { address, dkimVerify, dovecotHost, imapRead, mailClient, postfixHost, queueId, startMail, startsTest, steps, submit, token } from "./lib/mail";
import type { Mail, Step } from "./lib/mail";
import type { Pod } from "./lib/sandbox";

const prod = configOf("prod");

/** The behaviour every stack must have; prod differs in TLS (cert-manager) and sizes. */
function coreTests(ctx: GroupContext, get: () => Mail) {
  startsTest(get);

  it("postfix check, postconf, doveconf -n and rspamadm configtest accept the rendered files without a warning", async () => {
    const m = get();
    const pf = m.postfix.containers.postfix;
    const check = await pf.exec(["postfix", "check"]);
    expect(check.code, check.stderr).to.equal(0);
    expect(check.stdout + check.stderr).to.equal("");
    // -n: only what main.cf sets; unknown or misspelled parameters are warned about on stderr.
    const n = await pf.exec(["postconf", "-n"]);
    expect(n.code, n.stderr).to.equal(0);
    expect(n.stderr).to.equal("");
    const main = Object.fromEntries(n.stdout.trim().split("\n").map((l) => [l.slice(0, l.indexOf(" = ")), l.slice(l.indexOf(" = ") + 3)]));
    expect(main.virtual_transport).to.equal(`lmtp:inet:${dovecotHost(m)}:${PORTS.dovecot.lmtp}`);
    expect(main.smtpd_sasl_path).to.equal(`inet:${dovecotHost(m)}:${PORTS.dovecot.auth}`);
    expect(Number(main.message_size_limit)).to.equal(m.cfg.mail.postfix.messageSizeLimit);
    const master = await pf.exec(["postconf", "-M"]);
    expect(master.code, master.stderr).to.equal(0);
    expect(master.stderr).to.equal("");
    const dove = await m.dovecot[0].containers.dovecot.exec(["doveconf", "-n"]);
    expect(dove.code, dove.stderr).to.equal(0);
    expect(dove.stderr).to.equal("");
    const rspamd = await m.postfix.containers.rspamd.exec(["rspamadm", "configtest"]);
    expect(rspamd.code, rspamd.stdout + rspamd.stderr).to.equal(0);
    expect(rspamd.stdout.trim()).to.equal("syntax OK");
  });

  it("submission (587): no AUTH before STARTTLS; then the app's Secret logs in over verified TLS and a wrong password is refused", async () => {
    const m = get();
    const subject = `submission ${token()}`;
    const to = address(m, m.cfg.mail.postmaster);
    const session = (pod: Pod, password: string) =>
      mailClient(
        { ...m, client: pod },
        "smtp",
        {
          host: m.app.SMTP_HOST,
          port: Number(m.app.SMTP_PORT),
          tls: "starttls",
          ...m.tls,
          steps: [
            ["ehlo"],
            ["auth", m.app.SMTP_USER, "env:PW"],
            ["mail", m.app.SMTP_FROM],
            ["starttls"],
            ["ehlo"],
            ["auth", m.app.SMTP_USER, "env:PW"],
            ["mail", m.app.SMTP_FROM],
            ["rcpt", to],
            ["data", { from: m.app.SMTP_FROM, to, subject }],
            ["quit"],
          ],
        },
        { PW: password },
      );
    // The wrong password comes from another address: Dovecot slows down further logins from an
    // address that failed (auth penalty), which would slow every later test of the app's client.
    const [r, wrong] = await Promise.all([session(m.client, m.app.SMTP_PASSWORD), session(m.intruder, `${m.app.SMTP_PASSWORD}x`)]);
    const s = steps(r);
    // Before TLS: AUTH neither offered nor accepted, and no mail either.
    expect(s("ehlo").features).to.include("starttls").and.not.include("auth");
    expect(s("auth").code, s("auth").text).to.be.within(500, 599);
    expect(s("mail").code, s("mail").text).to.equal(530);
    // After STARTTLS (certificate verified for SMTP_TLS_SERVER_NAME), AUTH is offered.
    expect(s("starttls").tls!.version).to.be.oneOf(m.cfg.mail.tls.minProtocol === "TLSv1.3" ? ["TLSv1.3"] : ["TLSv1.2", "TLSv1.3"]);
    expect(s("ehlo", 1).features).to.include("auth");
    expect(s("auth", 1).code, s("auth", 1).text).to.equal(235);
    expect(s("mail", 1).code).to.equal(250);
    expect(s("rcpt").code, s("rcpt").text).to.equal(250);
    queueId(s("data"));
    const w = steps(wrong);
    expect(w("auth", 1).code, w("auth", 1).text).to.equal(535);
    // Not logged in, so no recipient: the submission listener serves authenticated clients only.
    expect(w("rcpt").code, w("rcpt").text).to.equal(554);
    expect(wrong.steps.some((x: Step) => /queued as/.test(x.text ?? ""))).to.equal(false);
  });

  it("smtps (465, implicit TLS): logs in with the generated password and accepts a message", async () => {
    const m = get();
    const user = m.cfg.mail.postmaster;
    const r = await submit(m, { user: address(m, user), password: m.passwords[user], to: [address(m, user)], subject: `smtps ${token()}`, port: PORTS.postfix.smtps });
    const s = steps(r);
    expect(r.greeting[0]).to.equal("220");
    expect(s("ehlo").features).to.include("auth");
    expect(s("auth").code, s("auth").text).to.equal(235);
    queueId(s("data"));
  });

  it("port 25: accepts mail for a local user and a role alias, refuses unknown users and relaying, offers no AUTH", async () => {
    const m = get();
    const subject = `inbound ${token()}`;
    const local = address(m, m.cfg.mail.postmaster);
    const r = await mailClient(m, "smtp", {
      host: postfixHost(m),
      port: PORTS.postfix.smtp,
      ...m.tls,
      steps: [
        ["ehlo"],
        ["starttls"],
        ["ehlo"],
        ["mail", "sender@example.net"],
        ["rcpt", local],
        ["rcpt", address(m, "abuse")],
        ["rcpt", address(m, `nobody-${token()}`)],
        ["rcpt", "someone@example.org"],
        ["data", { from: "sender@example.net", to: local, subject }],
        ["quit"],
      ],
    });
    const s = steps(r);
    expect(s("ehlo", 1).features).to.not.include("auth");
    expect(s("rcpt", 0).code, s("rcpt", 0).text).to.equal(250);
    expect(s("rcpt", 1).code, s("rcpt", 1).text).to.equal(250);
    expect(s("rcpt", 2).code, s("rcpt", 2).text).to.equal(550);
    expect(s("rcpt", 2).text).to.match(/User unknown/);
    expect(s("rcpt", 3).code, s("rcpt", 3).text).to.equal(554);
    expect(s("rcpt", 3).text).to.match(/Relay access denied/);
    queueId(s("data"));
  });

  it(`delivers over LMTP to Dovecot (virtual_transport to dovecot.<ns>:${PORTS.dovecot.lmtp}), into the user's Maildir`, async () => {
    const m = get();
    const subject = `lmtp ${token()}`;
    const user = m.cfg.mail.postmaster;
    const r = await mailClient(m, "smtp", {
      host: postfixHost(m),
      port: PORTS.postfix.smtp,
      steps: [["ehlo"], ["mail", "sender@example.net"], ["rcpt", address(m, user)], ["data", { from: "sender@example.net", to: address(m, user), subject }], ["quit"]],
    });
    const id = queueId(steps(r)("data"));
    const lmtpHost = dovecotHost(m).replace(/\./g, "\\.");
    const line = await m.postfix.containers.postfix.waitLog(new RegExp(`${id}: to=<${address(m, user)}>.* status=(sent|deferred|bounced)`), 20_000);
    expect(line).to.match(new RegExp(`relay=${lmtpHost}\\[[0-9.]+\\]:${PORTS.dovecot.lmtp},.* status=sent`));
    await m.dovecot[0].containers.dovecot.waitLog(new RegExp(`lmtp\\(${address(m, user)}\\).*saved mail to INBOX`), 10_000);
    // On the mailbox volume, where mail_home puts it.
    const found = await imapRead(m, { user, find: subject });
    expect(found.found).to.equal(1);
  });

  it("IMAP: LOGIN refused before STARTTLS on 143, then reads the message; 993 (implicit TLS) too", async () => {
    const m = get();
    const subject = `imap ${token()}`;
    const user = m.cfg.mail.postmaster;
    queueId(steps(await submit(m, { user: address(m, user), password: m.passwords[user], to: [address(m, user)], subject }))("data"));
    const plain = await mailClient(
      m,
      "imap",
      { host: dovecotHost(m), port: PORTS.dovecot.imap, tls: "starttls", ...m.tls, login_before_tls: true, user: address(m, user), password: "env:PW", find: subject, wait: 20 },
      { PW: m.passwords[user] },
    );
    expect(plain.capabilities_before_tls).to.include("LOGINDISABLED").and.include("STARTTLS");
    expect(plain.login_before_tls).to.match(/^refused: .*(PRIVACYREQUIRED|Plaintext authentication disallowed)/);
    expect(plain.starttls).to.equal("OK");
    expect(plain.login).to.equal("OK");
    expect(plain.found).to.equal(1);
    expect(Buffer.from(plain.message_b64, "base64").toString()).to.include(`Subject: ${subject}`);
    const implicit = await imapRead(m, { user, find: subject, port: PORTS.dovecot.imaps });
    expect(implicit.tls.version).to.match(/^TLSv1\.[23]$/);
    expect(implicit.found).to.equal(1);
  });

  it("POP3: USER/PASS refused before STLS on 110, then reads the message; 995 (implicit TLS) too", async () => {
    const m = get();
    const subject = `pop3 ${token()}`;
    const user = m.cfg.mail.postmaster;
    queueId(steps(await submit(m, { user: address(m, user), password: m.passwords[user], to: [address(m, user)], subject }))("data"));
    // POP3 has no way to wait for a message: IMAP (same mailbox) says when it is there.
    expect((await imapRead(m, { user, find: subject })).found).to.equal(1);
    const pop = (port: number, extra: Record<string, unknown>) =>
      mailClient(m, "pop3", { host: dovecotHost(m), port, ...m.tls, user: address(m, user), password: "env:PW", find: subject, ...extra }, { PW: m.passwords[user] });
    const plain = await pop(PORTS.dovecot.pop3, { tls: "starttls", login_before_tls: true });
    expect(plain.login_before_tls).to.match(/^refused: .*Plaintext authentication disallowed/);
    expect(plain.starttls).to.match(/^\+OK/);
    expect(plain.login).to.equal("OK");
    expect(plain.found).to.equal(1);
    const implicit = await pop(PORTS.dovecot.pop3s, { tls: "implicit" });
    expect(implicit.login).to.equal("OK");
    expect(implicit.found).to.equal(1);
  });

  it("DKIM: a submitted message is signed for the domain with the configured selector and verifies against the published TXT record", async () => {
    const m = get();
    const subject = `dkim ${token()}`;
    const to = address(m, m.cfg.mail.postmaster);
    queueId(steps(await submit(m, { user: m.app.SMTP_USER, password: m.app.SMTP_PASSWORD, to: [to], subject }))("data"));
    const read = await imapRead(m, { user: m.cfg.mail.postmaster, find: subject });
    expect(read.found).to.equal(1);
    const result = await dkimVerify(ctx.sb, m, Buffer.from(read.message_b64, "base64"));
    expect(result.signature, "no DKIM-Signature header").to.not.equal(null);
    expect(result.signature!.d).to.equal(m.domain);
    expect(result.signature!.s).to.equal(m.cfg.mail.postfix.dkim.selector);
    expect(result.verified, result.log.join("\n")).to.equal(true);
  });

  it("refuses a sender address that is not the logged-in user's (user A cannot send as user B)", async () => {
    const m = get();
    const a = m.cfg.mail.appSender!;
    const b = m.cfg.mail.users.find((u) => u !== a)!;
    const r = await submit(m, { user: address(m, a), password: m.passwords[a], from: address(m, b), to: [address(m, b)], subject: `spoof ${token()}` });
    const s = steps(r);
    expect(s("auth").code).to.equal(235);
    // Postfix delays the sender verdict to RCPT time.
    expect(s("rcpt").code, s("rcpt").text).to.equal(553);
    expect(s("rcpt").text).to.match(/not owned by user/);
  });

  it("the daemons logged no warning or error besides the failed login these tests provoked", () => {
    const m = get();
    const containers = [m.postfix.containers.postfix, ...m.dovecot.map((d) => d.containers.dovecot)];
    const provoked = (l: string) => l.includes(`[${m.intruder.ip}]: SASL PLAIN authentication failed`);
    const bad = containers.flatMap((c) => c.log.filter((l) => /\b(warning|error|fatal|panic)\b/i.test(l) && !provoked(l)).map((l) => `${c.name}: ${l}`));
    expect(bad).to.deep.equal([]);
  });
}

describe(`mail: postfix ${versionOf(prod.mail.postfix.image)}; rspamd ${versionOf(prod.mail.rspamd.image)}; dovecot ${versionOf(prod.mail.dovecot.image)}`, () => {
  for (const stack of ["dev", "prod"] as const) {
    describe(`${stack} stack${stack === "prod" ? " (TLS from cert-manager's Secret, issued here by a test CA)" : " (self-signed TLS)"}`, () => {
      const ctx = useSandbox(`mail-${stack}`);
      let m: Mail;
      before(async () => {
        m = await startMail(ctx.sb, { stack });
      });
      coreTests(ctx, () => m);
    });
  }
});
