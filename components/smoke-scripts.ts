// The smoke test's scripts (components/smoke.ts), mounted read-only at /opt/smoke. Each check
// retries for SMOKE_RETRY_SECONDS (NetworkPolicies and DNS settle a few seconds after the pods are
// ready), then prints exactly one line: `ok <check>` or `FAIL <check>: <reason>`.

export const SMOKE_PATH = "/opt/smoke";

/**
 * HTTP, SMTP, IMAP and OTLP checks, Python stdlib only: smtplib and imaplib read multi-line
 * replies and greetings properly, which a shell `nc` pipeline cannot promise. One process runs
 * every such check of the platform, SMOKE_CONCURRENCY at a time (a platform with 200 services is
 * still one container), each printing its own line as it ends; the exit status is 1 if any failed.
 * Usage: smoke.py <check> <http|smtp|imap|otlp> <url or host:port> [<check> <kind> <target> ...]
 */
export const SMOKE_PY = `"""Platform smoke checks (components/smoke.ts): one line per check, side by side."""
import concurrent.futures
import imaplib
import os
import smtplib
import sys
import threading
import time
import urllib.error
import urllib.request


def split(target):
    host, port = target.rsplit(":", 1)
    return host, int(port)


def http(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        if r.status // 100 != 2:
            raise RuntimeError("HTTP %d from %s" % (r.status, url))


def otlp(url):
    # An empty OTLP/HTTP export: the receiver answers 200 without storing anything.
    req = urllib.request.Request(url, data=b"{}", headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        if r.status != 200:
            raise RuntimeError("HTTP %d from %s" % (r.status, url))


def smtp(target):
    host, port = split(target)
    s = smtplib.SMTP(host, port, timeout=10)  # raises unless the banner is 220
    try:
        code, reply = s.ehlo("smoke.cluster.local")
        if code != 250:
            raise RuntimeError("EHLO answered %d %s" % (code, reply[:80]))
        if not s.has_extn("starttls"):
            raise RuntimeError("EHLO does not offer STARTTLS")
        s.quit()
    finally:
        s.close()


def imap(target):
    host, port = split(target)
    c = imaplib.IMAP4(host, port, timeout=10)  # raises unless the greeting is OK or PREAUTH
    try:
        if not c.welcome.startswith(b"* OK"):
            raise RuntimeError("greeting %r" % c.welcome[:80])
    finally:
        c.shutdown()


CHECKS = {"http": http, "otlp": otlp, "smtp": smtp, "imap": imap}
printing = threading.Lock()


def report(line):
    # One write per line under a lock: lines of parallel checks never interleave.
    with printing:
        sys.stdout.write(line + "\\n")
        sys.stdout.flush()


def run(check, kind, target, deadline):
    """Retries until the shared deadline (every check gets at least one attempt), then reports."""
    while True:
        try:
            CHECKS[kind](target)
            report("ok %s" % check)
            return True
        except Exception as e:  # every failure is retried, then reported
            reason = " ".join(("%s: %s" % (type(e).__name__, e)).split())[:200]
            if time.monotonic() >= deadline:
                report("FAIL %s: %s" % (check, reason))
                return False
            time.sleep(3)


def main():
    args = sys.argv[1:]
    if len(args) % 3 != 0:
        sys.exit("usage: smoke.py <check> <kind> <target> [<check> <kind> <target> ...]")
    checks = [args[i : i + 3] for i in range(0, len(args), 3)]
    unknown = [c for c, kind, _ in checks if kind not in CHECKS]
    if unknown:
        sys.exit("unknown check kind for: %s" % ", ".join(unknown))
    # The retry window starts with the pod: NetworkPolicies and DNS settle for all checks at once.
    deadline = time.monotonic() + int(os.environ.get("SMOKE_RETRY_SECONDS", "60"))
    workers = max(1, min(len(checks), int(os.environ.get("SMOKE_CONCURRENCY", "16"))))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda c: run(c[0], c[1], c[2], deadline), checks))
    return 0 if all(results) else 1


sys.exit(main())
`;

/** Sourced by the store checks after they define attempt(): retries it, then prints the one line. */
export const RETRY_SH = `# Retries attempt() (which leaves its output in $out) until it succeeds or SMOKE_RETRY_SECONDS pass.
set -u
end=$(( $(date +%s) + SMOKE_RETRY_SECONDS ))
until attempt; do
  rc=$?
  if [ "$(date +%s)" -ge "$end" ]; then
    # One line, never an empty reason: whitespace runs become one space, at most 200 characters.
    reason=$(printf '%s' "$out" | tr '\\t\\n' '  ' | tr -s ' ' | sed 's/^ //; s/ $//' | cut -c1-200)
    echo "FAIL $CHECK: \${reason:-no output, exit status $rc}"
    exit 1
  fi
  sleep 3
done
echo "ok $CHECK"
`;

/** pg_isready, then a query as the application role (PG* env from the generated Secret). */
export const POSTGRES_SH = `# Postgres: reachable (pg_isready) and the application role logs in and queries.
attempt() {
  out=$(pg_isready -t 5 2>&1) || { out="pg_isready: $out"; return 1; }
  out=$(psql -X -q -A -t -v ON_ERROR_STOP=1 -c 'SELECT current_user' 2>&1) || { out="query: $out"; return 1; }
  [ "$out" = "$PGUSER" ] || { out="query answered '$out', not the application role"; return 1; }
}
. ${SMOKE_PATH}/retry.sh
`;

/** An authenticated PING: redis-cli reads the password from REDISCLI_AUTH, never from its arguments. */
export const REDIS_SH = `# Redis: PING with the generated password (REDISCLI_AUTH) answers PONG.
attempt() {
  out=$(timeout 10 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --no-auth-warning ping 2>&1)
  # A server that accepts and never answers: the killed client printed nothing. GNU timeout
  # exits 124, BusyBox's (the alpine image) leaves the killed client's 143.
  case $? in 124 | 143) out="no answer within 10 s from $REDIS_HOST:$REDIS_PORT" ;; esac
  [ "$out" = "PONG" ]
}
. ${SMOKE_PATH}/retry.sh
`;

/** Authenticates as the application user (credentials from env, not argv), then pings. */
export const MONGO_SH = `# MongoDB: the application user authenticates against its database, then ping.
attempt() {
  out=$(timeout 60 mongosh --norc --quiet "mongodb://$MONGO_HOST:$MONGO_PORT/$MONGO_DB" --eval '
    db.auth(process.env.MONGO_USER, process.env.MONGO_PASSWORD);
    if (db.runCommand({ ping: 1 }).ok !== 1) throw new Error("ping failed");
    print("ping ok");' 2>&1) || return 1
  [ "$(printf '%s\\n' "$out" | tail -n 1)" = "ping ok" ]
}
. ${SMOKE_PATH}/retry.sh
`;

/**
 * ChromaDB over its HTTP API (Python stdlib in the smoke image; the chromadb client would pull in
 * numpy and onnxruntime): the heartbeat (no token), then an authenticated read of the default
 * tenant with the generated token (CHROMA_AUTH_TOKEN from env), which a wrong token fails.
 */
export const CHROMA_SH = `# ChromaDB: the heartbeat answers, and a call with the generated token is accepted.
attempt() {
  out=$(timeout 15 python3 -c '
import os, sys, urllib.request
base = "http://%s:%s/api/v2" % (os.environ["CHROMA_HOST"], os.environ["CHROMA_PORT"])
step = "heartbeat"
try:
    urllib.request.urlopen(base + "/heartbeat", timeout=5).read()
    step = "call with the token"
    auth = {"Authorization": "Bearer " + os.environ["CHROMA_AUTH_TOKEN"]}
    urllib.request.urlopen(urllib.request.Request(base + "/tenants/default_tenant", headers=auth), timeout=5).read()
except Exception as e:
    sys.exit("%s: %s: %s" % (step, type(e).__name__, e))
print("auth ok")' 2>&1)
  case $? in 124 | 143) out="no answer within 15 s from $CHROMA_HOST:$CHROMA_PORT" ;; esac
  [ "$(printf '%s\\n' "$out" | tail -n 1)" = "auth ok" ]
}
. ${SMOKE_PATH}/retry.sh
`;

export const SMOKE_SCRIPTS: Record<string, string> = {
  "smoke.py": SMOKE_PY,
  "retry.sh": RETRY_SH,
  "postgres.sh": POSTGRES_SH,
  "redis.sh": REDIS_SH,
  "mongo.sh": MONGO_SH,
  "chroma.sh": CHROMA_SH,
};
