"""A stand-in for the chromadb 0.6 Python client, for the tests only: NOT Chroma.

tests/chroma-backup.test.ts puts this directory on PYTHONPATH and runs the platform's backup and
restore scripts (components/data/chroma-scripts.ts) against it. It implements the calls those
scripts make, with the behaviour of the 0.6.3 client they rely on:

- HttpClient(host, port, ssl, headers, settings, tenant, database) talks to one server; the
  server's address, token and batch limit come from CHROMA_STANDIN_ADDRESS ("host:port"),
  CHROMA_STANDIN_TOKEN and CHROMA_STANDIN_MAX_BATCH. A wrong address fails, and a missing or
  wrong "Authorization: Bearer <token>" header fails when the client is created, as the real
  client's tenant and database check does.
- list_collections returns names (0.6 changed it from Collection objects), in creation order,
  with limit and offset.
- Collection.get validates `include` like the client (a list of known field names, no
  "distances") and returns embeddings as an array object like the numpy array the real client
  returns: it has .tolist() and no truth value, and json cannot serialise it.
- create_collection refuses an existing name and empty metadata ({}); add refuses more records
  than the batch limit, duplicate ids, records without embeddings (no embedding function runs
  here), empty metadata dicts and values of other types.

Stricter than Chroma where that catches a script bug: add refuses ids that already exist (Chroma
would skip them with a warning), and the scripts must pass embedding_function=None (the default
would load an ONNX model). The server's state is a JSON file (CHROMA_STANDIN_STATE) so the
export and the restore, separate processes, can share or separate servers.
"""
import json
import os
import time

__version__ = "0.6.3-standin"

_DEFAULT = object()
_INCLUDE = {"documents", "embeddings", "metadatas", "distances", "uris", "data"}


class ChromaError(Exception):
    pass


class AuthorizationError(ChromaError):
    pass


class _Array:
    """What the real client gives for embeddings: a 2-D numpy array, not a list."""

    def __init__(self, rows):
        self._rows = [list(r) for r in rows]

    def tolist(self):
        return [list(r) for r in self._rows]

    def __len__(self):
        return len(self._rows)

    def __iter__(self):
        return iter([_Vector(r) for r in self._rows])

    def __bool__(self):
        raise ValueError("The truth value of an array with more than one element is ambiguous. Use a.any() or a.all()")


class _Vector:
    """One row of it (a 1-D array)."""

    def __init__(self, values):
        self._values = list(values)

    def tolist(self):
        return list(self._values)

    def __len__(self):
        return len(self._values)

    def __bool__(self):
        raise ValueError("The truth value of an array with more than one element is ambiguous. Use a.any() or a.all()")


class _Server:
    def __init__(self):
        self.path = os.environ["CHROMA_STANDIN_STATE"]
        self.max_batch = int(os.environ.get("CHROMA_STANDIN_MAX_BATCH", "100"))
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.state = json.load(f)
        else:
            self.state = {"collections": []}
        self.state.setdefault("log", [])

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f)
        os.replace(tmp, self.path)

    def find(self, name):
        for c in self.state["collections"]:
            if c["name"] == name:
                return c
        return None


def _check_metadata(metadata, what):
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise ValueError("Expected %s to be a dict or None, got %s" % (what, type(metadata).__name__))
    if len(metadata) == 0:
        raise ValueError("Expected %s to be a non-empty dict, got 0 metadata attributes" % what)
    for k, v in metadata.items():
        if not isinstance(k, str):
            raise TypeError("Expected metadata key to be a str, got %r" % (k,))
        if not isinstance(v, (str, int, float, bool)):
            raise ValueError("Expected metadata value to be a str, int, float or bool, got %r" % (v,))


def _check_embedding_function(embedding_function):
    if embedding_function is not None:
        raise ChromaError("stand-in: pass embedding_function=None (the default loads an ONNX model; the records carry their embeddings)")


class Collection:
    def __init__(self, server, record):
        self._server = server
        self._record = record
        self.name = record["name"]
        self.id = record["id"]
        self.metadata = record["metadata"]

    def count(self):
        return len(self._record["records"])

    def get(self, ids=None, where=None, limit=None, offset=None, where_document=None, include=["metadatas", "documents"]):
        if ids is not None or where is not None or where_document is not None:
            raise ChromaError("stand-in: filters are not implemented")
        if not isinstance(include, list):
            raise ValueError("Expected include to be a list, got %r" % (include,))
        for item in include:
            if not isinstance(item, str) or item not in _INCLUDE:
                raise ValueError("Expected include item to be one of %s, got %r" % (", ".join(sorted(_INCLUDE)), item))
            if item == "distances":
                raise ValueError("Include item cannot be one of distances, got distances")
            if item == "data":
                raise ValueError("You must set a data loader on the collection if loading from URIs.")
        for n, what in ((limit, "limit"), (offset, "offset")):
            if n is not None and (not isinstance(n, int) or n < 0):
                raise ValueError("Expected %s to be a non-negative int, got %r" % (what, n))
        start = offset or 0
        rows = self._record["records"][start:] if limit is None else self._record["records"][start : start + limit]
        self._server.state["log"].append({"get": self.name, "limit": limit, "offset": offset})
        self._server.save()
        return {
            "ids": [r["id"] for r in rows],
            "embeddings": _Array([r["embedding"] for r in rows]) if "embeddings" in include else None,
            "documents": [r["document"] for r in rows] if "documents" in include else None,
            "metadatas": [r["metadata"] for r in rows] if "metadatas" in include else None,
            "uris": None,
            "data": None,
            "included": list(include),
        }

    def add(self, ids, embeddings=None, metadatas=None, documents=None, images=None, uris=None):
        if images is not None or uris is not None:
            raise ChromaError("stand-in: images and uris are not implemented")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise ValueError("Expected ids to be a non-empty list of str, got %r" % (ids,))
        if len(ids) > self._server.max_batch:
            raise ValueError("Cannot submit more than %d embeddings at once. Please submit your embeddings in batches of size %d or less." % (self._server.max_batch, self._server.max_batch))
        if len(set(ids)) != len(ids):
            raise ValueError("Expected IDs to be unique, found duplicates in the batch")
        if embeddings is None:
            raise ChromaError("stand-in: no embedding function runs here; add needs embeddings")
        fields = {"embeddings": embeddings, "metadatas": metadatas, "documents": documents}
        for name, values in fields.items():
            if values is not None and (not isinstance(values, list) or len(values) != len(ids)):
                raise ValueError("Unequal lengths for fields: ids: %d, %s: %r" % (len(ids), name, values if not isinstance(values, list) else len(values)))
        dims = {len(r["embedding"]) for r in self._record["records"]}
        for e in embeddings:
            if not isinstance(e, list) or not e or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in e):
                raise ValueError("Expected each embedding to be a non-empty list of numbers, got %r" % (e,))
            dims.add(len(e))
        if len(dims) > 1:
            raise ChromaError("Embedding dimension mismatch: %s" % sorted(dims))
        for m in metadatas or []:
            _check_metadata(m, "metadata")
        for d in documents or []:
            if d is not None and not isinstance(d, str):
                raise ValueError("Expected document to be a str, got %r" % (d,))
        existing = {r["id"] for r in self._record["records"]}
        again = [i for i in ids if i in existing]
        if again:
            raise ChromaError("stand-in: ids already in the collection: %s" % ", ".join(again[:5]))
        for n, record_id in enumerate(ids):
            self._record["records"].append({
                "id": record_id,
                "embedding": [float(x) for x in embeddings[n]],
                "document": documents[n] if documents is not None else None,
                "metadata": metadatas[n] if metadatas is not None else None,
            })
        self._server.state["log"].append({"add": self.name, "records": len(ids)})
        self._server.save()


class _Client:
    def __init__(self, host, port, ssl, headers, settings, tenant, database):
        address = os.environ.get("CHROMA_STANDIN_ADDRESS", "")
        if "%s:%s" % (host, port) != address:
            raise ConnectionError("Could not connect to a Chroma server at %s:%s (the stand-in server is %s)" % (host, port, address))
        token = os.environ.get("CHROMA_STANDIN_TOKEN")
        if token is not None and (headers or {}).get("Authorization") != "Bearer " + token:
            raise AuthorizationError("Unauthorized: the Authorization header does not carry the server's bearer token")
        if (tenant, database) != ("default_tenant", "default_database"):
            raise ChromaError("Could not connect to tenant %s / database %s: the stand-in has the default ones only" % (tenant, database))
        self._server = _Server()

    def heartbeat(self):
        return time.time_ns()

    def get_version(self):
        return "0.6.3"

    def get_max_batch_size(self):
        return self._server.max_batch

    def count_collections(self):
        return len(self._server.state["collections"])

    def list_collections(self, limit=None, offset=None):
        names = [c["name"] for c in self._server.state["collections"]]
        start = offset or 0
        return names[start:] if limit is None else names[start : start + limit]

    def get_collection(self, name, embedding_function=_DEFAULT, data_loader=None):
        _check_embedding_function(embedding_function)
        record = self._server.find(name)
        if record is None:
            raise ChromaError("Collection %s does not exist." % name)
        return Collection(self._server, record)

    def create_collection(self, name, configuration=None, metadata=None, embedding_function=_DEFAULT, data_loader=None, get_or_create=False):
        _check_embedding_function(embedding_function)
        _check_metadata(metadata, "metadata")
        if self._server.find(name) is not None:
            raise ChromaError("Collection %s already exists" % name)
        record = {"name": name, "id": "id-%d" % (len(self._server.state["log"]) + 1), "metadata": metadata, "records": []}
        self._server.state["collections"].append(record)
        self._server.state["log"].append({"create": name})
        self._server.save()
        return Collection(self._server, record)

    def delete_collection(self, name):
        if self._server.find(name) is None:
            raise ChromaError("Collection %s does not exist." % name)
        self._server.state["collections"] = [c for c in self._server.state["collections"] if c["name"] != name]
        self._server.state["log"].append({"delete": name})
        self._server.save()


def HttpClient(host="localhost", port=8000, ssl=False, headers=None, settings=None, tenant="default_tenant", database="default_database"):
    return _Client(str(host), int(port), bool(ssl), headers, settings, str(tenant), str(database))
