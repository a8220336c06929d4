"""LMTP delivery and an IMAP listing, for the mailbox backup round trip (tests/daemons/backups.test.ts).

Usage: mailbox.py deliver <host> <lmtp_port> <recipient> <subject>
       mailbox.py list <host> <imap_port> <user>        (password from PW; STARTTLS, as Dovecot requires)
The listing prints every INBOX message's UID with its Subject and Message-ID, as JSON.
"""
import imaplib
import json
import os
import smtplib
import ssl
import sys


def deliver(host, port, rcpt, subject):
    msg = (
        "From: sender@example.org\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@backup.test>\r\n\r\nbody of %s\r\n"
        % (rcpt, subject, subject, subject)
    )
    with smtplib.LMTP(host, int(port)) as lmtp:
        lmtp.sendmail("sender@example.org", [rcpt], msg)


def listing(host, port, user):
    ctx = ssl.create_default_context()
    # The dev stack's certificate is self-signed: this checks the mailbox, not the certificate.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    imap = imaplib.IMAP4(host, int(port))
    imap.starttls(ssl_context=ctx)
    imap.login(user, os.environ["PW"])
    imap.select("INBOX", readonly=True)
    _, data = imap.uid("search", None, "ALL")
    out = []
    for uid in data[0].split():
        _, parts = imap.uid("fetch", uid, "(BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)])")
        out.append({"uid": int(uid), "headers": " ".join(parts[0][1].decode().split())})
    imap.logout()
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "deliver":
        deliver(*sys.argv[2:6])
    elif sys.argv[1] == "list":
        listing(*sys.argv[2:5])
