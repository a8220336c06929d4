// The edge: an nginx Ingress for the public routes (API) and a second one, behind basic auth,
// for the operators' UIs (Jaeger, Flower). TLS from a cert-manager issuer (staging/prod), HTTPS
// forced, per-client rate limits, CORS, security headers and a request size limit (seed 002).
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { RouteSettings } from "../config/app";
import type { PlatformConfig } from "../config/schema";
import type { DependencyGraph } from "./lib/graph";
import { JAEGER, JAEGER_BASE_PATH } from "./jaeger";
import { platformLabels } from "./lib/labels";
import { rotationKeepers } from "./secrets";
import { PORTS } from "./lib/ports";

export interface Route {
  /** URL path prefix ("/", "/api", "/jaeger"). */
  path: string;
  /** Service name (= workload name); the Service port must equal the pod port it targets. */
  service: string;
  port: number;
  /** How the controller proxies it (services.<name>.ingress); such a route gets an Ingress of its own. */
  settings?: RouteSettings;
}

export interface EdgeArgs {
  config: PlatformConfig;
  namespace: pulumi.Input<string>;
  /** Public routes. */
  routes: Route[];
  /** Operator UIs: same hosts, basic auth at the edge. */
  protectedRoutes: Route[];
  graph: DependencyGraph;
}

const A = "nginx.ingress.kubernetes.io";

/** The ingress controller's pods, as a graph peer (the source of all routed traffic). */
export function ingressPeer(cfg: PlatformConfig) {
  return { kind: "namespace" as const, name: "ingress-controller", namespace: cfg.platform.ingressNamespace };
}

export function publicIngressName(cfg: PlatformConfig): string {
  return `${cfg.platform.name}-public`;
}

/** The Ingress of a service whose route has settings of its own (annotations apply per Ingress). */
export function routeIngressName(cfg: PlatformConfig, service: string): string {
  return `${publicIngressName(cfg)}-${service}`;
}

/** Every public Ingress (the shared one and the per-service ones), as a PromQL label regex. */
export function publicIngressPattern(cfg: PlatformConfig): string {
  return `${publicIngressName(cfg)}(-.+)?`;
}

/**
 * A route's own proxy settings as ingress-nginx annotations (all of them are per-location
 * annotations in ingress-nginx; upstream keepalive is not, see controllerSettings).
 */
export function routeAnnotations(s: RouteSettings | undefined): Record<string, string> {
  const a: Record<string, string> = {};
  if (!s) return a;
  if (s.loadBalance) a[`${A}/load-balance`] = s.loadBalance;
  if (s.retry) {
    a[`${A}/proxy-next-upstream`] = s.retry.on.join(" ");
    a[`${A}/proxy-next-upstream-tries`] = String(s.retry.tries);
    if (s.retry.timeoutSeconds !== undefined) a[`${A}/proxy-next-upstream-timeout`] = String(s.retry.timeoutSeconds);
  }
  const t = s.timeouts ?? {};
  if (t.connectSeconds !== undefined) a[`${A}/proxy-connect-timeout`] = String(t.connectSeconds);
  if (t.sendSeconds !== undefined) a[`${A}/proxy-send-timeout`] = String(t.sendSeconds);
  if (t.readSeconds !== undefined) a[`${A}/proxy-read-timeout`] = String(t.readSeconds);
  return a;
}

/**
 * Settings that live in the controller's ConfigMap, not on an Ingress: upstream keepalive (seed
 * 004) and the response headers the edge sets. The platform does not run the controller, so they
 * are a stack output (`ingressControllerSettings`) for whoever does.
 */
export function controllerSettings(cfg: PlatformConfig): Record<string, string> {
  const k = cfg.edge.upstreamKeepalive;
  return {
    "global-allowed-response-headers": Object.keys(securityHeaders(cfg)).join(","),
    ...(k
      ? {
          "upstream-keepalive-connections": String(k.connections),
          "upstream-keepalive-timeout": String(k.timeoutSeconds),
          ...(k.requests !== undefined ? { "upstream-keepalive-requests": String(k.requests) } : {}),
        }
      : {}),
  };
}

/** Name of the TLS Secret cert-manager fills (and of the Certificate its ingress-shim creates). */
export function tlsSecretName(cfg: PlatformConfig): string {
  return `${cfg.platform.name}-tls`;
}

/**
 * Pulumi waits for an Ingress to get an address from its controller. A fresh kind/minikube cluster
 * has no ingress controller, so in dev the Ingress is applied without that wait (it starts routing
 * once a controller is installed); staging and prod keep the wait, which proves the edge is live.
 */
export function devNoAwait(cfg: PlatformConfig): Record<string, string> {
  return cfg.environment === "dev" ? { "pulumi.com/skipAwait": "true" } : {};
}

/** Response headers set on every public response (via the custom-headers ConfigMap). */
export function securityHeaders(cfg: PlatformConfig): Record<string, string> {
  const h: Record<string, string> = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Content-Security-Policy": cfg.edge.contentSecurityPolicy,
  };
  // HSTS only over HTTPS: browsers ignore it on plain HTTP, and a dev host must stay reachable.
  if (cfg.edge.tls.issuer) h["Strict-Transport-Security"] = `max-age=${cfg.edge.hstsMaxAgeSeconds}; includeSubDomains`;
  return h;
}

/** Annotations shared by both Ingresses: TLS, redirect, body size, rate limits. Pure. */
export function commonAnnotations(cfg: PlatformConfig): Record<string, string> {
  const e = cfg.edge;
  const tls = !!e.tls.issuer;
  const a: Record<string, string> = {
    [`${A}/ssl-redirect`]: String(tls),
    [`${A}/force-ssl-redirect`]: String(tls),
    [`${A}/proxy-body-size`]: e.maxBodySize,
    // Per client IP and per controller replica (nginx limit_req).
    [`${A}/limit-rpm`]: String(e.rateLimit.perMinute),
    [`${A}/limit-burst-multiplier`]: String(e.rateLimit.burstMultiplier),
  };
  if (e.rateLimit.perHour !== undefined) {
    // nginx has no per-hour limit_req; ingress-nginx's global rate limit (a shared memcached
    // counter over a window) is the nearest mechanism. See docs/observability.md.
    a[`${A}/global-rate-limit`] = String(e.rateLimit.perHour);
    a[`${A}/global-rate-limit-window`] = "1h";
    a[`${A}/global-rate-limit-key`] = "$remote_addr";
  }
  if (tls) a[e.tls.issuerKind === "ClusterIssuer" ? "cert-manager.io/cluster-issuer" : "cert-manager.io/issuer"] = e.tls.issuer!;
  return a;
}

export function corsAnnotations(cfg: PlatformConfig): Record<string, string> {
  const origins = cfg.edge.corsOrigins;
  if (origins.length === 0) return { [`${A}/enable-cors`]: "false" };
  return {
    [`${A}/enable-cors`]: "true",
    [`${A}/cors-allow-origin`]: origins.join(", "),
    [`${A}/cors-allow-methods`]: "GET, POST, PUT, PATCH, DELETE, OPTIONS",
    [`${A}/cors-allow-headers`]: "Authorization, Content-Type, X-Requested-With, traceparent, tracestate",
    [`${A}/cors-allow-credentials`]: "true",
    [`${A}/cors-max-age`]: "600",
  };
}

/**
 * Routes derived from config: `/` and `/api` to the API; `/jaeger` and `/flower` (operators only)
 * where enabled. The Service ports are the pod ports (lib/ports.ts).
 */
/**
 * What the edge routes: the app tier's public routes (plus `/` to the API when nothing else claims
 * it, as seed 000 serves it) and the operators' UIs behind authentication (Jaeger, Flower).
 */
export function edgeRoutes(cfg: PlatformConfig, appRoutes: Route[], opsRoutes: Route[]): { routes: Route[]; protectedRoutes: Route[] } {
  const routes = [...appRoutes];
  const api = appRoutes.find((r) => r.service === "api");
  if (api && !routes.some((r) => r.path === "/")) routes.unshift({ ...api, path: "/" });
  const protectedRoutes: Route[] = [...(cfg.jaeger.enabled ? [{ path: JAEGER_BASE_PATH, service: JAEGER, port: PORTS.jaeger.ui }] : []), ...opsRoutes];
  return { routes, protectedRoutes };
}

/** Output key of a route's URL: "/" -> app, "/api" -> api. */
export function routeKey(r: Route): string {
  return r.path === "/" ? "app" : r.path.slice(1).replace(/\//g, "-");
}

export class Edge extends pulumi.ComponentResource {
  /** URLs a user opens, by route name. */
  readonly urls: Record<string, string> = {};
  readonly opsUser: string;
  readonly opsPassword?: pulumi.Output<string>;

  constructor(name: string, args: EdgeArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:edge:Edge", name, {}, opts);
    const cfg = args.config;
    const e = cfg.edge;
    const ns = args.namespace;
    const common = platformLabels(cfg);
    const child = { parent: this };
    const tls = e.tls.issuer ? [{ hosts: e.hosts, secretName: tlsSecretName(cfg) }] : undefined;
    const base = `${e.tls.issuer ? "https" : "http"}://${e.hosts[0]}`;
    this.opsUser = e.opsUser;

    // Every routed backend is reachable from the controller's namespace on its pod port, and from nowhere else outside.
    const backends = new Map<string, Route[]>();
    for (const r of [...args.routes, ...args.protectedRoutes]) backends.set(`${r.service}:${r.port}`, [...(backends.get(`${r.service}:${r.port}`) ?? []), r]);
    for (const rs of backends.values()) args.graph.connect(ingressPeer(cfg), rs[0].service, [rs[0].port], `ingress ${rs.map((r) => r.path).join(" ")}`);

    // Response headers through a ConfigMap (custom-headers): configuration-snippet is disabled by
    // default since ingress-nginx 1.9, and a snippet would accept arbitrary nginx config.
    const headers = new k8s.core.v1.ConfigMap(`${name}-headers`, { metadata: { name: "edge-security-headers", namespace: ns, labels: common }, data: securityHeaders(cfg) }, child);
    const headerRef = pulumi.interpolate`${headers.metadata.namespace}/${headers.metadata.name}`;

    const ingress = (n: string, routes: Route[], extra: pulumi.Input<Record<string, pulumi.Input<string>>>) =>
      new k8s.networking.v1.Ingress(
        `${name}-${n}`,
        {
          metadata: {
            name: `${cfg.platform.name}-${n}`,
            namespace: ns,
            labels: common,
            annotations: pulumi.output(extra).apply((x) => ({ ...commonAnnotations(cfg), ...devNoAwait(cfg), ...x })),
          },
          spec: {
            ingressClassName: e.className,
            ...(tls ? { tls } : {}),
            rules: e.hosts.map((host) => ({
              host,
              http: {
                paths: routes.map((r) => ({ path: r.path, pathType: "Prefix", backend: { service: { name: r.service, port: { number: r.port } } } })),
              },
            })),
          },
        },
        child,
      );

    // Annotations apply to a whole Ingress: routes with settings of their own get an Ingress per
    // service (`<platform>-public-<service>`), the rest share `<platform>-public`.
    const publicAnnotations = (settings: RouteSettings | undefined) =>
      pulumi.output(headerRef).apply((ref) => ({ ...corsAnnotations(cfg), [`${A}/custom-headers`]: ref, ...routeAnnotations(settings) }));
    const shared = args.routes.filter((r) => !r.settings);
    if (shared.length > 0) ingress("public", shared, publicAnnotations(undefined));
    for (const service of [...new Set(args.routes.filter((r) => r.settings).map((r) => r.service))]) {
      const own = args.routes.filter((r) => r.service === service && r.settings);
      ingress(`public-${service}`, own, publicAnnotations(own[0].settings));
    }
    for (const r of args.routes) this.urls[routeKey(r)] = `${base}${r.path}`;

    if (args.protectedRoutes.length > 0) {
      // htpasswd for nginx basic auth: the password is generated, only its bcrypt hash reaches the cluster.
      const password = new random.RandomPassword(`${name}-ops-password`, { length: 32, special: false, keepers: rotationKeepers(cfg, "ops") }, child);
      this.opsPassword = pulumi.secret(password.result);
      const auth = new k8s.core.v1.Secret(
        `${name}-ops-auth`,
        {
          metadata: { name: "edge-ops-auth", namespace: ns, labels: common },
          type: "Opaque",
          stringData: { auth: pulumi.secret(pulumi.interpolate`${e.opsUser}:${password.bcryptHash}`) },
        },
        child,
      );
      ingress(
        "ops",
        args.protectedRoutes,
        pulumi.all([headerRef, auth.metadata.name]).apply(([ref, secretName]) => ({
          [`${A}/auth-type`]: "basic",
          [`${A}/auth-secret`]: secretName,
          [`${A}/auth-realm`]: "Operators only",
          [`${A}/custom-headers`]: ref,
        })),
      );
      for (const r of args.protectedRoutes) this.urls[routeKey(r)] = `${base}${r.path}`;
    }
    this.registerOutputs({ urls: this.urls });
  }
}
