"""A stand-in for an authenticated SMTP smarthost (a mail provider's submission port), standard
library only. It offers STARTTLS, offers AUTH (PLAIN, LOGIN) only inside TLS, refuses MAIL
before AUTH, accepts every message, and prints one JSON line per event on stdout: what it saw of
TLS, the credentials and the envelope, so a test can check what the relay client really sent.

Usage: smarthost.py <port> <cert.pem> <key.pem>
"""
import base64
import json
import socketserver
import ssl
import sys


def event(**kw):
    print(json.dumps(kw), flush=True)


class Session(socketserver.StreamRequestHandler):
    timeout = 30

    def setup(self):
        super().setup()
        self.tls = None
        self.user = None
        self.password = None
        self.mail_from = None
        self.rcpt = []

    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def read(self):
        return self.rfile.readline().decode("utf-8", "replace").rstrip("\r\n")

    def start_tls(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server.cert, self.server.key)
        self.connection = ctx.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb")
        self.wfile = self.connection.makefile("wb")
        self.tls = self.connection.version()

    def auth(self, args):
        mech, _, initial = args.partition(" ")
        mech = mech.upper()
        if not self.tls:
            return self.reply("538 5.7.11 Encryption required for requested authentication mechanism")
        if mech == "PLAIN":
            if not initial:
                self.reply("334 ")
                initial = self.read()
            _, user, password = base64.b64decode(initial).decode().split("\0")
        elif mech == "LOGIN":
            self.reply("334 " + base64.b64encode(b"Username:").decode())
            user = base64.b64decode(self.read()).decode()
            self.reply("334 " + base64.b64encode(b"Password:").decode())
            password = base64.b64decode(self.read()).decode()
        else:
            return self.reply("504 5.5.4 Unrecognized authentication type")
        self.user, self.password = user, password
        event(event="auth", tls=self.tls, mechanism=mech, username=user, password=password)
        self.reply("235 2.7.0 Authentication successful")

    def handle(self):
        event(event="connect", client=self.client_address[0])
        self.reply("220 smarthost.test ESMTP stand-in")
        while True:
            line = self.read()
            if not line:
                return
            verb, _, args = line.partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                features = ["smarthost.test", "8BITMIME", "SIZE 52428800"] + (["AUTH PLAIN LOGIN"] if self.tls else ["STARTTLS"])
                for i, f in enumerate(features):
                    self.reply(("250 " if i == len(features) - 1 else "250-") + f)
            elif verb == "STARTTLS" and not self.tls:
                self.reply("220 2.0.0 Ready to start TLS")
                self.start_tls()
            elif verb == "AUTH":
                self.auth(args)
            elif verb == "MAIL":
                if not self.user:
                    self.reply("530 5.7.0 Authentication required")
                    continue
                self.mail_from, self.rcpt = args.split(":", 1)[1].strip().split(" ")[0].strip("<>"), []
                self.reply("250 2.1.0 Ok")
            elif verb == "RCPT" and self.mail_from is not None:
                self.rcpt.append(args.split(":", 1)[1].strip().split(" ")[0].strip("<>"))
                self.reply("250 2.1.5 Ok")
            elif verb == "DATA" and self.rcpt:
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while True:
                    raw = self.rfile.readline()
                    if raw in (b".\r\n", b".\n", b""):
                        break
                    lines.append(raw[1:] if raw.startswith(b"..") else raw)
                data = b"".join(lines)
                event(event="message", tls=self.tls, username=self.user, mail_from=self.mail_from, rcpt=self.rcpt, data_b64=base64.b64encode(data).decode())
                self.mail_from, self.rcpt = None, []
                self.reply("250 2.0.0 Ok: queued")
            elif verb == "RSET":
                self.mail_from, self.rcpt = None, []
                self.reply("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("503 5.5.1 Bad sequence of commands")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    server = Server(("0.0.0.0", port), Session)
    server.cert, server.key = cert, key
    event(event="listening", port=port)
    server.serve_forever()


if __name__ == "__main__":
    main()
