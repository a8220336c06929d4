// Jaeger, the edge and monitoring. Issue #6 extends these.
import { z } from "zod";
import type { Environment } from "./common";
import { image, res, resources } from "./common";

export const jaegerSchema = z.strictObject({
  enabled: z.boolean(),
  image: image,
  resources: resources,
});

export const edgeSchema = z.strictObject({
  enabled: z.boolean(),
});

export const monitoringSchema = z.strictObject({
  /** The Prometheus Operator CRDs exist in the cluster (ServiceMonitor, PrometheusRule). */
  enabled: z.boolean(),
});

export function jaegerDefaults(_env: Environment): z.input<typeof jaegerSchema> {
  return { enabled: true, image: "jaegertracing/jaeger:2.1.0", resources: res("100m", "256Mi", "500m", "512Mi") };
}

export function edgeDefaults(_env: Environment): z.input<typeof edgeSchema> {
  return { enabled: true };
}

export function monitoringDefaults(env: Environment): z.input<typeof monitoringSchema> {
  return { enabled: env !== "dev" };
}
