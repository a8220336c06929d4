"""Writes a known dataset into Redis, or prints a digest of everything in it.

Usage: redis_dataset.py fill|digest <host> <port>   (password from REDISCLI_AUTH)
The digest covers every key of every logical database with its type, value and whether it
expires, so two servers print the same line only when they hold the same data.
"""
import hashlib
import os
import sys

import redis


def client(host, port, db):
    return redis.Redis(host=host, port=int(port), db=db, password=os.environ.get("REDISCLI_AUTH"), socket_timeout=10)


def fill(host, port):
    # Cache (db 0), Celery broker queues (db 1) and results (db 2), every value type once.
    c = client(host, port, 0)
    for i in range(500):
        c.set("cache:%d" % i, "v%d" % i)
    c.hset("session:1", mapping={"user": "alice", "n": 3})
    c.zadd("ranking", {"a": 1, "b": 2.5})
    c.sadd("tags", "x", "y", "z")
    c.set("expiring", "soon", ex=86400)
    b = client(host, port, 1)
    b.rpush("celery", *["task-%d" % i for i in range(100)])
    r = client(host, port, 2)
    r.set("celery-task-meta-1", '{"status": "SUCCESS"}')


def value(c, key):
    t = c.type(key).decode()
    if t == "string":
        v = c.get(key)
    elif t == "list":
        v = c.lrange(key, 0, -1)
    elif t == "set":
        v = sorted(c.smembers(key))
    elif t == "hash":
        v = sorted(c.hgetall(key).items())
    elif t == "zset":
        v = c.zrange(key, 0, -1, withscores=True)
    else:
        v = t
    return t, v, c.ttl(key) > 0


def digest(host, port):
    h = hashlib.sha256()
    counts = []
    for db in range(16):
        c = client(host, port, db)
        keys = sorted(c.scan_iter(count=1000))
        if keys:
            counts.append("db%d=%d" % (db, len(keys)))
        for k in keys:
            h.update(repr((db, k, value(c, k))).encode())
    print("%s %s" % (" ".join(counts) or "empty", h.hexdigest()))


{"fill": fill, "digest": digest}[sys.argv[1]](*sys.argv[2:4])
