// OpenTelemetry settings every instrumented workload receives, so tracing works without
// per-app configuration. The standard OTEL_* variables are read by every OTel SDK.
import type * as k8s from "@pulumi/kubernetes";
import type { PlatformConfig } from "../../config/schema";
import { imageVersion } from "./labels";
import { PORTS, serviceHost } from "./ports";

type EnvVar = k8s.types.input.core.v1.EnvVar;

/** The Jaeger Service's OTLP endpoints (the Service name is the workload name, "jaeger"). */
export function otlpEndpoints(cfg: PlatformConfig): { grpc: string; http: string } {
  const host = serviceHost("jaeger", cfg.platform.namespace);
  return { grpc: `http://${host}:${PORTS.jaeger.otlpGrpc}`, http: `http://${host}:${PORTS.jaeger.otlpHttp}` };
}

/** The image a workload runs, when config knows it (for service.version). */
function imageOf(cfg: PlatformConfig, workload: string): string | undefined {
  if (cfg.services[workload]) return cfg.services[workload].image;
  if (workload.startsWith("worker-") || workload === "beat") return cfg.workers.image;
  if (workload === "flower") return cfg.workers.flower.image;
  return undefined;
}

/**
 * OTEL_* env vars for one workload: OTLP/gRPC to Jaeger, the workload as service name, resource
 * attributes, and parent-based ratio sampling (a child follows its caller's decision, so a trace
 * is never cut in half). Empty when Jaeger is disabled: SDKs then stay silent.
 */
export function otelEnv(cfg: PlatformConfig, workload: string): EnvVar[] {
  if (!cfg.jaeger.enabled) return [];
  const attributes: Record<string, string> = {
    "deployment.environment": cfg.environment,
    "service.namespace": cfg.platform.name,
  };
  const image = imageOf(cfg, workload);
  const version = image ? imageVersion(image) : undefined;
  if (version) attributes["service.version"] = version;
  const env: Record<string, string> = {
    OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoints(cfg).grpc,
    OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
    OTEL_SERVICE_NAME: workload,
    OTEL_RESOURCE_ATTRIBUTES: Object.entries(attributes)
      .map(([k, v]) => `${k}=${v}`)
      .join(","),
    OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
    OTEL_TRACES_SAMPLER_ARG: String(cfg.jaeger.samplingRatio),
    OTEL_PROPAGATORS: "tracecontext,baggage",
    // Jaeger receives traces only; metrics and logs are scraped/collected elsewhere.
    OTEL_METRICS_EXPORTER: "none",
    OTEL_LOGS_EXPORTER: "none",
  };
  return Object.entries(env).map(([name, value]) => ({ name, value }));
}
