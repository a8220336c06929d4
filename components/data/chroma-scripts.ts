// Chroma's backup and restore, as Python run by the Chroma image's own interpreter with its own
// chromadb client package (the server has no dump tool, and its volume is ReadWriteOnce, so the
// copy is logical and online, through the HTTP API). Rendered into the `chroma-backup` ConfigMap;
// the backup CronJob runs the export (components/data/backup.ts writes, renames, prunes and
// copies the file off the cluster), and the restore is that CronJob's container with another
// command (docs/data.md). tests/chroma-backup.test.ts runs both scripts with python3 against an
// in-memory stand-in of the chromadb client API (tests/chroma-standin/), not a real Chroma.
//
// The file: gzip-compressed JSON lines. A header ({"kind": "header", "format", "version",
// "chroma", "tenant", "database"}), then per collection {"kind": "collection", "name",
// "metadata"}, its records in pages ({"kind": "records", "collection", "ids", "embeddings",
// "documents", "metadatas"}) and {"kind": "collection_end", "name", "count"}, and a last line
// {"kind": "end", "collections", "records"}: a file without it is incomplete and is refused.

/** Where the ConfigMap is mounted in the backup container. */
export const CHROMA_SCRIPT_DIR = "/opt/chroma-backup";
/** The Chroma image's Python finds the chromadb package in the source tree it runs from. */
export const CHROMA_PYTHONPATH = "/chroma";
/** Records per `get` page of the export, and per `add` call of the restore (at most the server's limit). */
export const CHROMA_PAGE = 500;
export const CHROMA_BACKUP_EXTENSION = "jsonl.gz";

/** Connection and file format, shared by both scripts. */
export const CHROMA_COMMON_PY = `"""Shared by chroma_export.py and chroma_restore.py (rendered by components/data/chroma-scripts.ts).

The server and the token come from the environment: CHROMA_HOST, CHROMA_PORT, CHROMA_AUTH_TOKEN;
CHROMA_TENANT and CHROMA_DATABASE pick another tenant or database than Chroma's defaults.
"""
import os

import chromadb

FORMAT = "app-platform/chroma-backup"
VERSION = 1
# What a record is made of besides its id (ids always come back).
INCLUDE = ["embeddings", "documents", "metadatas"]


def target():
    return os.environ.get("CHROMA_TENANT", "default_tenant"), os.environ.get("CHROMA_DATABASE", "default_database")


def connect():
    tenant, database = target()
    # Chroma 0.6's token provider reads the token from "Authorization: Bearer <token>".
    return chromadb.HttpClient(
        host=os.environ["CHROMA_HOST"],
        port=int(os.environ["CHROMA_PORT"]),
        headers={"Authorization": "Bearer " + os.environ["CHROMA_AUTH_TOKEN"]},
        tenant=tenant,
        database=database,
    )


def collection_names(client, page=100):
    """Every collection's name, in pages (the 0.6 client's list_collections returns names)."""
    names = []
    while True:
        batch = [str(n) for n in client.list_collections(limit=page, offset=len(names))]
        names.extend(batch)
        if len(batch) < page:
            return names
`;

/** chroma_export.py [--page N] FILE: every collection and record, page by page, into FILE. */
export const CHROMA_EXPORT_PY = `"""Logical, online backup of the platform's Chroma server (rendered by components/data/chroma-scripts.ts).

Usage: chroma_export.py [--page N] FILE

Reads every collection of the tenant's database through the HTTP API, N records at a time, and
writes them into FILE (gzip-compressed JSON lines, format in chroma_common.py's FORMAT). Not a
point-in-time snapshot: records written while it runs may or may not be in the file; an id is
written once even if paging meets it twice. Exits non-zero on any error.
"""
import argparse
import gzip
import json
import sys

from chroma_common import FORMAT, INCLUDE, VERSION, collection_names, connect, target


def plain(values):
    """Plain lists for JSON: the 0.6 client returns embeddings as a numpy array."""
    if values is None:
        return None
    if hasattr(values, "tolist"):
        return values.tolist()
    return [v.tolist() if hasattr(v, "tolist") else v for v in values]


def write(out, record):
    out.write(json.dumps(record, separators=(",", ":")) + "\\n")


def pick(values, keep):
    return None if values is None else [values[i] for i in keep]


def export_collection(client, out, name, page):
    # No embedding function: the records carry their embeddings, nothing is computed.
    collection = client.get_collection(name, embedding_function=None)
    write(out, {"kind": "collection", "name": name, "metadata": collection.metadata})
    seen = set()
    offset = 0
    while True:
        got = collection.get(limit=page, offset=offset, include=list(INCLUDE))
        ids = [str(i) for i in got["ids"]]
        if not ids:
            break
        offset += len(ids)
        keep = [i for i, record_id in enumerate(ids) if record_id not in seen]
        seen.update(ids)
        if keep:
            write(out, {
                "kind": "records",
                "collection": name,
                "ids": pick(ids, keep),
                "embeddings": pick(plain(got["embeddings"]), keep),
                "documents": pick(plain(got["documents"]), keep),
                "metadatas": pick(plain(got["metadatas"]), keep),
            })
        if len(ids) < page:
            break
    write(out, {"kind": "collection_end", "name": name, "count": len(seen)})
    return len(seen)


def main(argv):
    parser = argparse.ArgumentParser(description="Export every Chroma collection into a gzip JSON-lines file.")
    parser.add_argument("--page", type=int, default=${CHROMA_PAGE}, help="records per request")
    parser.add_argument("file")
    args = parser.parse_args(argv)
    if args.page < 1:
        parser.error("--page must be at least 1")
    client = connect()
    names = collection_names(client)
    tenant, database = target()
    total = 0
    with gzip.open(args.file, "wt", encoding="utf-8") as out:
        write(out, {"kind": "header", "format": FORMAT, "version": VERSION, "chroma": client.get_version(), "tenant": tenant, "database": database})
        for name in names:
            total += export_collection(client, out, name, args.page)
        write(out, {"kind": "end", "collections": len(names), "records": total})
    print("chroma export: %d collections, %d records into %s" % (len(names), total, args.file))


if __name__ == "__main__":
    main(sys.argv[1:])
`;

/** chroma_restore.py [--drop] [--batch N] FILE: recreates the collections of FILE and adds their records. */
export const CHROMA_RESTORE_PY = `"""Restores a chroma_export.py file into the platform's Chroma server (rendered by components/data/chroma-scripts.ts).

Usage: chroma_restore.py [--drop] [--batch N] FILE

Reads FILE once to check it (format, and the end marker: a truncated file is refused before
anything changes) and to list its collections. A collection that already exists is an error,
unless --drop is given: then it is deleted and recreated. Each collection is created with its
metadata (the hnsw:* settings among them), its records are added N at a time (at most the
server's batch limit), and its record count is compared with the file's. Exits non-zero on any
error; collections restored before an error stay.
"""
import argparse
import gzip
import json
import sys

from chroma_common import FORMAT, VERSION, collection_names, connect


def lines(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for text in f:
            yield json.loads(text)


def scan(path):
    """The file's collections with their record counts, in file order; refuses a foreign or incomplete file."""
    counts = {}
    first = True
    complete = False
    for record in lines(path):
        kind = record.get("kind")
        if first:
            if kind != "header" or record.get("format") != FORMAT or record.get("version") != VERSION:
                sys.exit("%s is not a %s file of version %d" % (path, FORMAT, VERSION))
            first = False
        elif kind == "collection_end":
            counts[record["name"]] = record["count"]
        elif kind == "end":
            complete = True
    if not complete:
        sys.exit("%s has no end marker: the backup is incomplete; nothing restored" % path)
    return counts


def add(collection, record, size):
    ids = record["ids"]
    if record.get("embeddings") is None:
        sys.exit("%s: records without embeddings in the file" % collection.name)
    for start in range(0, len(ids), size):
        part = slice(start, start + size)
        batch = {"ids": ids[part], "embeddings": record["embeddings"][part]}
        for field in ("documents", "metadatas"):
            values = record.get(field)
            # A field no record of the batch has is left out, as a client adding them would.
            if values is not None and any(v is not None for v in values[part]):
                batch[field] = values[part]
        collection.add(**batch)


def main(argv):
    parser = argparse.ArgumentParser(description="Restore a chroma_export.py file into Chroma.")
    parser.add_argument("--drop", action="store_true", help="replace collections that already exist")
    parser.add_argument("--batch", type=int, default=${CHROMA_PAGE}, help="records per add request")
    parser.add_argument("file")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    counts = scan(args.file)
    client = connect()
    existing = set(collection_names(client))
    clash = [name for name in counts if name in existing]
    if clash and not args.drop:
        sys.exit("collections already exist: %s; rerun with --drop to replace them" % ", ".join(clash))
    size = max(1, min(args.batch, client.get_max_batch_size()))
    collection = None
    for record in lines(args.file):
        kind = record.get("kind")
        if kind == "collection":
            name = record["name"]
            if name in existing:
                client.delete_collection(name)
            # Chroma refuses empty collection metadata; none is None.
            collection = client.create_collection(name, metadata=record["metadata"] or None, embedding_function=None)
        elif kind == "records":
            add(collection, record, size)
        elif kind == "collection_end":
            got = collection.count()
            if got != record["count"]:
                sys.exit("%s: %d records after the restore, %d in the backup" % (record["name"], got, record["count"]))
    print("chroma restore: %d collections, %d records from %s" % (len(counts), sum(counts.values()), args.file))


if __name__ == "__main__":
    main(sys.argv[1:])
`;

/** The ConfigMap's files. */
export const CHROMA_BACKUP_SCRIPTS: Record<string, string> = {
  "chroma_common.py": CHROMA_COMMON_PY,
  "chroma_export.py": CHROMA_EXPORT_PY,
  "chroma_restore.py": CHROMA_RESTORE_PY,
};

/** The backup step's dump command (backupScript writes "$OUT" as a .partial file and renames it). */
export function chromaBackupDump(): string {
  return `python3 ${CHROMA_SCRIPT_DIR}/chroma_export.py --page ${CHROMA_PAGE} "$OUT"`;
}
