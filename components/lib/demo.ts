// Demo mode (services.<name>.demo, workers.demo; on by default in dev only): public, pinned images
// run a few lines of Python from a ConfigMap, so a fresh local cluster converges with no private
// image. The API demo answers the configured probe paths and serves the configured ports; the
// Celery demo is an app importable as `workers.celeryApp`, so the pools' `celery inspect ping`
// liveness probe and beat work unchanged. Pure data: the tiers create the ConfigMaps.
import type * as k8s from "@pulumi/kubernetes";
import type { HttpServiceConfig } from "../../config/app";

type Container = k8s.types.input.core.v1.Container;
type EnvVar = k8s.types.input.core.v1.EnvVar;
type Volume = k8s.types.input.core.v1.Volume;

/** Where the demo files are mounted (read-only). */
export const DEMO_PATH = "/opt/demo";
export const DEMO_VOLUME = "demo";

/**
 * The API demo: Python stdlib only. Ports come from the service's ConfigMap (PORT, HEALTH_PORT,
 * METRICS_PORT, exactly what the container ports say); probe paths from DEMO_*_PATH (the service's
 * probe config). Every port answers the probe paths; http answers everything else with JSON (the
 * edge forwards /api/... unchanged); metrics serves /metrics in the Prometheus text format.
 */
export const DEMO_SERVER = `"""Demo HTTP service of the dev stack (components/lib/demo.ts)."""
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = os.environ.get("DEMO_SERVICE", "api")
PROBES = {os.environ["DEMO_LIVENESS_PATH"]: "alive", os.environ["DEMO_READINESS_PATH"]: "ready"}
PORTS = {"http": os.environ["PORT"], "health": os.environ.get("HEALTH_PORT"), "metrics": os.environ.get("METRICS_PORT")}
served = {"requests": 0}


def handler(role):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path in PROBES:
                return self.reply(200, "text/plain", PROBES[path] + "\\n")
            if role == "metrics" and path == "/metrics":
                return self.reply(200, "text/plain; version=0.0.4", "demo_http_requests_total %d\\n" % served["requests"])
            if role == "http":
                served["requests"] += 1
                return self.reply(200, "application/json", json.dumps({"service": NAME, "demo": True, "path": path}) + "\\n")
            return self.reply(404, "text/plain", "not found\\n")

        def reply(self, code, ctype, body):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):
            if self.path.split("?", 1)[0] not in PROBES and role == "http":
                super().log_message(fmt, *args)

    return Handler


for role, port in PORTS.items():
    if port:
        server = ThreadingHTTPServer(("0.0.0.0", int(port)), handler(role))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print("demo %s: %s on port %s" % (NAME, role, port), flush=True)
threading.Event().wait()
`;

/** The environment every demo container gets: no bytecode on the read-only root filesystem. */
export const DEMO_ENV: EnvVar[] = [
  { name: "PYTHONPATH", value: DEMO_PATH },
  { name: "PYTHONDONTWRITEBYTECODE", value: "1" },
  { name: "PYTHONUNBUFFERED", value: "1" },
];

export interface DemoFiles {
  configMapName: string;
  data: Record<string, string>;
  volume: Volume;
}

function files(configMapName: string, byPath: Record<string, string>): DemoFiles {
  // ConfigMap keys cannot hold '/': keys are the paths with '/' turned into '.', items put them back.
  const key = (p: string) => p.replace(/\//g, ".");
  return {
    configMapName,
    data: Object.fromEntries(Object.entries(byPath).map(([p, text]) => [key(p), text])),
    volume: { name: DEMO_VOLUME, configMap: { name: configMapName, items: Object.keys(byPath).map((p) => ({ key: key(p), path: p })) } },
  };
}

/** The demo server of an http service, and how its container runs it. */
export function demoServer(name: string, svc: HttpServiceConfig): DemoFiles & { command: string[]; env: EnvVar[] } {
  return {
    ...files(`${name}-demo`, { "server.py": DEMO_SERVER }),
    command: ["python3", `${DEMO_PATH}/server.py`],
    env: [
      ...DEMO_ENV,
      { name: "DEMO_SERVICE", value: name },
      { name: "DEMO_LIVENESS_PATH", value: svc.probes.liveness.path },
      { name: "DEMO_READINESS_PATH", value: svc.probes.readiness.path },
    ],
  };
}

/** `-A` of Celery ("pkg.mod:attr", "pkg.mod.attr" or "mod") as the module file and the app's attribute. */
export function celeryModule(celeryApp: string): { module: string; attribute: string; path: string } {
  const [mod, attr] = celeryApp.includes(":")
    ? celeryApp.split(":")
    : celeryApp.includes(".")
      ? [celeryApp.slice(0, celeryApp.lastIndexOf(".")), celeryApp.slice(celeryApp.lastIndexOf(".") + 1)]
      : [celeryApp, "app"]; // `-A mod` finds mod.app
  return { module: mod, attribute: attr, path: `${mod.replace(/\./g, "/")}.py` };
}

/**
 * The demo Celery app: broker and results from the env the workers already get (app-connections).
 * With Redis Sentinel the URLs are sentinel:// lists and the transport options (master name, the
 * Sentinels' password) come as JSON, exactly what docs/app.md asks a real app to do.
 */
export function demoCeleryApp(attribute: string, queue: string): string {
  return `"""Demo Celery app of the dev stack (components/lib/demo.ts)."""
import json
import os
import socket

import redis.exceptions
from celery import Celery

try:
    from redis._parsers.base import BaseParser  # redis-py 5 and later
except ImportError:
    from redis.connection import BaseParser  # redis-py 4

# A master that refuses writes for want of replicas (NOREPLICAS: min-replicas-to-write, e.g. a new
# master before its replicas attach) is a master not available yet. As a plain ResponseError it
# makes a worker exit ("Unrecoverable error"); as a connection error Celery reconnects and retries.
BaseParser.EXCEPTION_CLASSES["NOREPLICAS"] = redis.exceptions.ConnectionError

broker_options = json.loads(os.environ.get("CELERY_BROKER_TRANSPORT_OPTIONS") or "{}")
# TCP keepalive settings come by name (JSON keys cannot be socket constants).
if "socket_keepalive_options" in broker_options:
    broker_options["socket_keepalive_options"] = {getattr(socket, k): v for k, v in broker_options["socket_keepalive_options"].items()}
${attribute} = Celery("demo", broker=os.environ.get("CELERY_BROKER_URL"), backend=os.environ.get("CELERY_RESULT_BACKEND"))
${attribute}.conf.update(
    task_default_queue=${JSON.stringify(queue)},
    broker_connection_retry_on_startup=True,
    broker_transport_options=broker_options,
    result_backend_transport_options=json.loads(os.environ.get("CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS") or "{}"),
    # The result backend takes its socket timeouts from these settings, not from its options:
    # the broker's, so a lost node stalls neither (Celery's default read timeout is 120 s).
    redis_socket_timeout=broker_options.get("socket_timeout", 120.0),
    redis_socket_connect_timeout=broker_options.get("socket_connect_timeout"),
    beat_schedule={"demo-ping": {"task": "demo.ping", "schedule": 60.0}},
)


@${attribute}.task(name="demo.ping")
def ping():
    return "pong"
`;
}

/** The demo Celery app's files for `workers.celeryApp`, packages included. */
export function demoCelery(celeryApp: string, queue: string): DemoFiles {
  const { module, attribute, path } = celeryModule(celeryApp);
  const parts = module.split(".");
  const packages = Object.fromEntries(parts.slice(0, -1).map((_, i) => [`${parts.slice(0, i + 1).join("/")}/__init__.py`, ""]));
  return files("worker-demo", { ...packages, [path]: demoCeleryApp(attribute, queue) });
}

/** A container turned into a demo container: the demo files mounted read-only, the demo env added. */
export function withDemo(c: Container, env: EnvVar[], command?: string[]): Container {
  return {
    ...c,
    ...(command ? { command } : {}),
    env: [...((c.env as EnvVar[] | undefined) ?? []), ...env],
    volumeMounts: [...((c.volumeMounts as k8s.types.input.core.v1.VolumeMount[] | undefined) ?? []), { name: DEMO_VOLUME, mountPath: DEMO_PATH, readOnly: true }],
  };
}

/**
 * Flower's Celery app: `celery flower` alone knows only CELERY_BROKER_URL, but a sentinel:// broker
 * also needs its transport options (master name, the Sentinels' password), read here from the env.
 */
export const FLOWER_APP = `"""Flower's Celery app (components/lib/demo.ts): broker URL and transport options from the env."""
import json
import os
import socket

from celery import Celery

options = json.loads(os.environ.get("CELERY_BROKER_TRANSPORT_OPTIONS") or "{}")
# TCP keepalive settings come by name (JSON keys cannot be socket constants).
if "socket_keepalive_options" in options:
    options["socket_keepalive_options"] = {getattr(socket, k): v for k, v in options["socket_keepalive_options"].items()}
app = Celery("flower", broker=os.environ["CELERY_BROKER_URL"])
app.conf.broker_transport_options = options
`;
