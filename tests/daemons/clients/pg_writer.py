"""Writes one row per transaction into the primary until stopped, and prints every commit the
server acknowledged: `ack <id> <unix time>`. Connects to whichever member accepts writes (libpq's
target_session_attrs over every member's address), so it follows a failover by itself; failed
attempts print `err <unix time> <reason>`. Usage: pg_writer.py <host,host,...> <dbname> <user>
(password in PGPASSWORD)."""
import sys
import time

import psycopg2

hosts, dbname, user = sys.argv[1:4]
dsn = "host=%s port=5432 dbname=%s user=%s connect_timeout=2 target_session_attrs=read-write" % (hosts, dbname, user)
conn = None
n = 0
while True:
    try:
        if conn is None:
            conn = psycopg2.connect(dsn)
            conn.autocommit = True
        n += 1
        with conn.cursor() as cur:
            # Autocommit: the INSERT returns once the commit is acknowledged (by a synchronous standby too).
            cur.execute("INSERT INTO ticks (id) VALUES (%s)", (n,))
        print("ack %d %.3f" % (n, time.time()), flush=True)
        time.sleep(0.01)
    except Exception as e:
        print("err %.3f %s" % (time.time(), " ".join(str(e).split())[:120]), flush=True)
        try:
            conn and conn.close()
        except Exception:
            pass
        conn = None
        time.sleep(0.1)
