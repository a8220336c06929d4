#!/bin/sh
# Stand-in entry for ghcr.io/hsn723/postfix_exporter in the daemon tier, running Debian's
# prometheus-postfix-exporter 0.3.0. The rendered args ask for showq over TCP
# (--postfix.showq_network=tcp --postfix.showq_port=N), which 0.3.0 cannot do: a small relay
# listens on a unix socket and forwards each connection to 127.0.0.1:N, and 0.3.0 reads that
# socket. Flags 0.3.0 does not know (service labels, the network type) are dropped.
# --postfix.logfile_must_exist=false (0.16 then waits for the log file; 0.3.0 always exits when
# it is missing) becomes a wait for the file here.
set -eu
port=""
keep=""
logfile=""
wait_for_log=""
for a in "$@"; do
  case "$a" in
    --postfix.showq_port=*) port="${a#*=}" ;;
    --postfix.showq_network=*|--postfix.*_service_label=*) ;;
    --postfix.logfile_must_exist=false) wait_for_log=1 ;;
    --postfix.logfile_must_exist=*) ;;
    --postfix.logfile_path=*) logfile="${a#*=}"; keep="$keep $a" ;;
    *) keep="$keep $a" ;;
  esac
done
if [ -n "$wait_for_log" ] && [ -n "$logfile" ]; then
  while [ ! -e "$logfile" ]; do sleep 0.2; done
fi
sock="/var/lib/exporter-shim/showq-${HOSTNAME:-pod}-$$"
if [ -n "$port" ]; then
  /usr/bin/python3 - "$sock" "$port" <<'PY' &
import os, socket, sys, threading
path, port = sys.argv[1], int(sys.argv[2])
try:
    os.unlink(path)
except FileNotFoundError:
    pass
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(16)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass
while True:
    c, _ = srv.accept()
    try:
        u = socket.create_connection(("127.0.0.1", port))
    except OSError:
        c.close()  # Postfix not listening yet: the exporter's scrape fails and it retries
        continue
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
PY
  keep="$keep --postfix.showq_path=$sock"
fi
# shellcheck disable=SC2086
exec /usr/bin/prometheus-postfix-exporter $keep
