"""Mail clients for the daemon tier: each subcommand speaks one protocol and prints one JSON
object with every server reply, so the tests assert on codes and texts, not on logs.

Usage: mail_client.py smtp|imap|pop3|raw '<json options>'     mail_client.py dkim <message file>

Options common to smtp/imap/pop3: host, port, tls ("none", "starttls" or "implicit"), cafile
(verify the server's certificate against it; without it any certificate is accepted) and
servername (the name to verify, like the app's SMTP_TLS_SERVER_NAME; default host). A password
given as "env:NAME" is read from the environment, so it never appears on a command line.
Standard library only, plus python3-dkim for `dkim`.
"""
import base64
import email.message
import email.utils
import imaplib
import json
import os
import poplib
import smtplib
import socket
import ssl
import sys
import time


def secret(value):
    return os.environ[value[4:]] if isinstance(value, str) and value.startswith("env:") else value


def context(o):
    if o.get("cafile"):
        ctx = ssl.create_default_context(cafile=o["cafile"])
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_info(sock):
    cert = sock.getpeercert() or {}
    return {"version": sock.version(), "cipher": sock.cipher()[0], "san": [v for k, v in cert.get("subjectAltName", []) if k == "DNS"]}


def connect(o):
    sock = socket.create_connection((o["host"], int(o["port"])), timeout=o.get("timeout", 20))
    if o.get("tls") == "implicit":
        sock = context(o).wrap_socket(sock, server_hostname=o.get("servername", o["host"]))
    return sock


def text(b):
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)


def build_message(spec):
    msg = email.message.EmailMessage()
    msg["From"] = spec["from"]
    msg["To"] = spec["to"]
    msg["Subject"] = spec["subject"]
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = email.utils.make_msgid(domain=spec["from"].split("@")[-1])
    msg.set_content(spec.get("body", "Sent by the daemon tier.\n"))
    return msg.as_bytes()


def smtp(o):
    """Runs o["steps"] in order ([name, args...]); stops after a step that raised. With
    o["until_refused"], a refused DATA ends the session (QUIT): Postfix slows every reply down
    once a client has made smtpd_soft_error_limit errors."""
    s = smtplib.LMTP() if o.get("lmtp") else smtplib.SMTP()
    s.sock = connect(o)
    s._host = o.get("servername", o["host"])
    out = {"greeting": list(map(text, s.getreply())), "steps": []}
    for step in o["steps"]:
        name, args = step[0], step[1:]
        # "t": when the step began (wall clock, the tests' clock too), for rate arithmetic.
        rec = {"step": name, "t": time.time()}
        out["steps"].append(rec)
        started = time.monotonic()
        try:
            if name == "ehlo":
                code, resp = s.ehlo("client.test")
                rec.update(code=code, text=text(resp), features=sorted(s.esmtp_features))
            elif name == "starttls":
                code, resp = s.docmd("STARTTLS")
                rec.update(code=code, text=text(resp))
                if code == 220:
                    s.sock = context(o).wrap_socket(s.sock, server_hostname=o.get("servername", o["host"]))
                    s.file = None
                    s.helo_resp = s.ehlo_resp = None
                    s.esmtp_features = {}
                    s.does_esmtp = False
                    rec["tls"] = tls_info(s.sock)
            elif name == "auth":
                token = base64.b64encode(("\0%s\0%s" % (args[0], secret(args[1]))).encode()).decode()
                code, resp = s.docmd("AUTH", "PLAIN " + token)
                rec.update(code=code, text=text(resp))
            elif name == "mail":
                code, resp = s.mail(args[0])
                rec.update(code=code, text=text(resp))
            elif name == "rcpt":
                code, resp = s.rcpt(args[0])
                rec.update(code=code, text=text(resp))
            elif name == "data":
                try:
                    result = s.data(build_message(args[0]))
                    # LMTP answers once per recipient; SMTP once.
                    code, resp = result if isinstance(result, tuple) else (250, b"")
                except smtplib.SMTPDataError as e:
                    code, resp = e.smtp_code, e.smtp_error
                except smtplib.SMTPResponseException as e:
                    code, resp = e.smtp_code, e.smtp_error
                rec.update(code=code, text=text(resp))
            elif name == "quit":
                code, resp = s.docmd("QUIT")
                rec.update(code=code, text=text(resp))
            else:
                raise ValueError("unknown step " + name)
        except (OSError, smtplib.SMTPException) as e:
            rec.update(error="%s: %s" % (type(e).__name__, e))
            break
        finally:
            rec["ms"] = round((time.monotonic() - started) * 1000)
        if o.get("until_refused") and name == "data" and rec.get("code", 250) >= 400:
            code, resp = s.docmd("QUIT")
            out["steps"].append({"step": "quit", "code": code, "text": text(resp)})
            break
    return out


class _Dialled:
    """An imaplib/poplib client whose socket comes from connect(o), as the SMTP client's does."""

    def __init__(self, o):
        self._o = o
        super().__init__(o["host"], int(o["port"]), timeout=o.get("timeout", 20))
        self.host = o.get("servername", o["host"])

    def _create_socket(self, timeout):
        return connect(self._o)


class _Imap(_Dialled, imaplib.IMAP4):
    pass


class _Pop3(_Dialled, poplib.POP3):
    pass


def imap(o):
    """Optional login before TLS (expected refused), STARTTLS, login, then wait for a message whose Subject holds o["find"]."""
    out = {}
    m = _Imap(o)
    out["greeting"] = text(m.welcome)
    out["capabilities_before_tls"] = list(m.capabilities)
    if o.get("login_before_tls"):
        try:
            m.login(o["user"], secret(o["password"]))
            out["login_before_tls"] = "OK"
        except imaplib.IMAP4.error as e:
            out["login_before_tls"] = "refused: %s" % e
    if o.get("tls") == "starttls":
        typ, data = m.starttls(ssl_context=context(o))
        out["starttls"] = typ
    if o.get("tls") in ("starttls", "implicit"):
        out["tls"] = tls_info(m.sock)
    try:
        m.login(o["user"], secret(o["password"]))
        out["login"] = "OK"
    except imaplib.IMAP4.error as e:
        out["login"] = "refused: %s" % e
        return out
    if o.get("find"):
        deadline = time.time() + o.get("wait", 20)
        while True:
            m.select("INBOX")
            typ, data = m.search(None, "SUBJECT", '"%s"' % o["find"])
            ids = data[0].split()
            if ids or time.time() > deadline:
                break
            time.sleep(0.3)
        out["found"] = len(ids)
        if ids:
            typ, data = m.fetch(ids[-1], "(RFC822)")
            out["message_b64"] = base64.b64encode(data[0][1]).decode()
    m.logout()
    return out


def pop3(o):
    """Like imap: optional USER/PASS before TLS, STLS, login, and the first message whose Subject holds o["find"]."""
    out = {}
    p = _Pop3(o)
    out["greeting"] = text(p.getwelcome())
    if o.get("login_before_tls"):
        try:
            p.user(o["user"])
            p.pass_(secret(o["password"]))
            out["login_before_tls"] = "OK"
        except poplib.error_proto as e:
            out["login_before_tls"] = "refused: %s" % text(e.args[0])
    if o.get("tls") == "starttls":
        out["starttls"] = text(p.stls(context=context(o)))
    if o.get("tls") in ("starttls", "implicit"):
        out["tls"] = tls_info(p.sock)
    try:
        p.user(o["user"])
        p.pass_(secret(o["password"]))
        out["login"] = "OK"
    except poplib.error_proto as e:
        out["login"] = "refused: %s" % text(e.args[0])
        return out
    out["found"] = 0
    for n in range(1, p.stat()[0] + 1):
        raw = b"\r\n".join(p.retr(n)[1])
        if o.get("find", "") in text(raw):
            out["found"] += 1
            out["message_b64"] = base64.b64encode(raw).decode()
    p.quit()
    return out


def raw(o):
    """One TCP connection: an optional PROXY v1 header, then the greeting and one command's reply, or how it ended."""
    out = {}
    sock = socket.create_connection((o["host"], int(o["port"])), timeout=o.get("timeout", 10))
    try:
        if o.get("proxy"):
            sock.sendall(o["proxy"].encode() + b"\r\n")
        if o.get("send_first"):
            # A client that does not wait for the greeting (what a plain client sends a PROXY listener).
            sock.sendall(o["send_first"].encode() + b"\r\n")
        if o.get("tls") == "implicit":
            # smtps/imaps/pop3s: TLS starts after the PROXY header.
            sock = context(o).wrap_socket(sock, server_hostname=o.get("servername", o["host"]))
        f = sock.makefile("rb")
        out["greeting"] = text(f.readline()).rstrip("\r\n") or None
        if out["greeting"] and o.get("send"):
            sock.sendall(o["send"].encode() + b"\r\n")
            out["reply"] = text(f.readline()).rstrip("\r\n") or None
        if out["greeting"] and o.get("session"):
            # Whole replies (the last line of a multi-line one) to each command, in order.
            def reply():
                while True:
                    line = text(f.readline()).rstrip("\r\n")
                    if not line or line[3:4] != "-":
                        return line or None
            while out["greeting"][3:4] == "-":
                out["greeting"] = text(f.readline()).rstrip("\r\n")
            out["replies"] = []
            for cmd in o["session"]:
                sock.sendall(cmd.encode() + b"\r\n")
                out["replies"].append(reply())
    except socket.timeout:
        out["timeout"] = True
    except (ConnectionError, ssl.SSLError) as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
    sock.close()
    return out


def imap_failures(o):
    """o["attempts"] logins with a wrong password, each on a new implicit-TLS connection; seconds each LOGIN took."""
    out = {"seconds": [], "results": []}
    for _ in range(o["attempts"]):
        m = _Imap(o)
        started = time.monotonic()
        try:
            m.login(o["user"], secret(o["password"]))
            out["results"].append("OK")
        except imaplib.IMAP4.error as e:
            out["results"].append("refused: %s" % e)
        out["seconds"].append(round(time.monotonic() - started, 2))
        try:
            m.logout()
        except Exception:
            pass
    return out


def dkim_verify(path):
    import dkim
    import dkim.util

    with open(path, "rb") as fh:
        message = fh.read()
    logs = []

    class Log:
        def debug(self, *a):
            logs.append(a[0] % a[1:] if len(a) > 1 else str(a[0]))

        info = warning = error = debug

    sig = None
    for line in message.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].replace(b"\n\t", b" ").replace(b"\n ", b" ").split(b"\n"):
        if line.lower().startswith(b"dkim-signature:"):
            sig = {k.decode(): v.decode() for k, v in dkim.util.parse_tag_value(line.split(b":", 1)[1].strip()).items()}
    try:
        ok = dkim.verify(message, logger=Log())
    except Exception as e:  # a malformed signature is a failure, with the reason
        ok = False
        logs.append("%s: %s" % (type(e).__name__, e))
    return {"verified": bool(ok), "signature": sig and {k: sig[k] for k in ("d", "s", "a", "c", "h") if k in sig}, "log": logs[-5:]}


def main():
    cmd = sys.argv[1]
    if cmd == "dkim":
        result = dkim_verify(sys.argv[2])
    else:
        result = {"smtp": smtp, "imap": imap, "pop3": pop3, "raw": raw, "imap_failures": imap_failures}[cmd](json.loads(sys.argv[2]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
