"""GET (or HEAD) a URL and print the status, the headers and the body as one JSON object.

Usage: http_get.py <url> [method]
An error status (404) is an answer like any other: it is printed, not raised.
"""
import json
import sys
import urllib.error
import urllib.request

url = sys.argv[1]
method = sys.argv[2] if len(sys.argv) > 2 else "GET"
try:
    r = urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5)
except urllib.error.HTTPError as e:
    r = e
body = r.read().decode("utf-8", "replace")
print(json.dumps({"status": r.status, "headers": {k.lower(): v for k, v in r.headers.items()}, "body": body}))
