"""Celery producer and worker app for the Sentinel failover group (tests/daemons/sentinel.test.ts).

The app is the dev stack's demo Celery app (components/lib/demo.ts), imported from DEMO_DIR as
rendered, configured only by the rendered environment (CELERY_BROKER_URL, CELERY_RESULT_BACKEND
and their *_TRANSPORT_OPTIONS). One task is added: record(n) appends n to RECORD_FILE.

Worker:   python3 -m celery -A celery_failover:app worker ...
Producer: celery_failover.py produce <first> <count> <interval_s> <acked_file>
          Sends record(first..first+count-1), one every interval; a publish that raises is retried
          until it succeeds. A task counts as acknowledged when apply_async returned; each
          acknowledged number is appended to acked_file with the time. Prints a JSON summary.
Results:  celery_failover.py results <first> <count>
          Sends tasks and waits for their results through the result backend.
"""
import importlib
import json
import os
import sys
import time

sys.path.insert(0, os.environ["DEMO_DIR"])
_module, _attr = os.environ["DEMO_APP"].split(":")
app = getattr(importlib.import_module(_module), _attr)


@app.task(name="failover.record")
def record(n):
    with open(os.environ["RECORD_FILE"], "a") as f:
        f.write("%d\n" % n)
        f.flush()
        os.fsync(f.fileno())
    return n


def produce(first, count, interval, acked_file):
    failures = 0
    longest_outage = 0.0
    with open(acked_file, "a") as log:
        for n in range(first, first + count):
            started = time.time()
            while True:
                try:
                    record.apply_async(args=[n])
                    break
                except Exception as e:  # the broker is failing over: retry this same task
                    failures += 1
                    if failures <= 3:
                        print("publish %d failed: %r" % (n, e), file=sys.stderr, flush=True)
                    time.sleep(0.2)
            longest_outage = max(longest_outage, time.time() - started)
            log.write("%d %.3f\n" % (n, time.time()))
            log.flush()
            time.sleep(interval)
    print(json.dumps({"sent": count, "publish_failures": failures, "longest_publish_seconds": round(longest_outage, 2)}))


def results(first, count):
    got = [record.delay(n).get(timeout=60) for n in range(first, first + count)]
    print(json.dumps({"results": got}))


if __name__ == "__main__":
    if sys.argv[1] == "produce":
        produce(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    elif sys.argv[1] == "results":
        results(int(sys.argv[2]), int(sys.argv[3]))
