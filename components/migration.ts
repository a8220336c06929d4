// A service's schema migration: a Job that runs the release's migration command before the
// service's Deployment rolls. The Deployment depends on it, and Pulumi waits for a Job to
// complete, so a failing migration fails `pulumi up` while the previous pods keep serving.
//
// The Job's name carries a hash of its image and command: Jobs are immutable and run once, so a
// new name is what runs the migration again, and nothing else does (resources, env or a credential
// rotation leave the name, and `ignoreChanges` leaves the finished Job alone). The rollback story
// is in docs/app.md.
import * as crypto from "crypto";
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import type { HttpServiceConfig, MigrationConfig } from "../config/app";
import type { Dependency } from "../config/dependencies";
import { STORE_DEPENDENCIES, resolveDependsOn } from "../config/dependencies";
import { imageOf } from "../config/common";
import { migrationName } from "../config/inventory";
import type { PlatformConfig } from "../config/schema";
import type { AppEnvSources } from "./lib/appwiring";
import { connectDependencies, secretEnvFor } from "./lib/appwiring";
import type { DependencyGraph } from "./lib/graph";
import { labels } from "./lib/labels";
import { restrictedContainer, restrictedPod, scratchVolume } from "./lib/pod";
import { scheduled } from "./lib/scheduling";

/** The image a migration runs: its own, or the service's (the release carries its migrations). */
export function migrationImage(svc: HttpServiceConfig, m: MigrationConfig, service: string): string {
  return m.image ?? imageOf(svc, `services.${service}`);
}

/** The stores a migration connects to: as configured, or the service's own stores. */
export function migrationDeps(cfg: PlatformConfig, svc: HttpServiceConfig, m: MigrationConfig): Dependency[] {
  const stores: readonly Dependency[] = STORE_DEPENDENCIES;
  return m.dependsOn ? [...new Set(m.dependsOn)] : resolveDependsOn(cfg, svc.dependsOn).filter((d) => stores.includes(d));
}

/** `<service>-migrate-<hash8>`: a new image or command is a new Job (run once more), nothing else is. */
export function migrationJobName(service: string, image: string, command: readonly string[]): string {
  const hash = crypto.createHash("sha256").update(JSON.stringify({ image, command })).digest("hex").slice(0, 8);
  return `${migrationName(service)}-${hash}`;
}

export interface MigrationArgs {
  config: PlatformConfig;
  service: string;
  svc: HttpServiceConfig;
  migration: MigrationConfig;
  namespace: pulumi.Input<string>;
  serviceAccount: pulumi.Input<string>;
  /** The service's ConfigMap: the migration sees the settings the service sees. */
  configMap: k8s.core.v1.ConfigMap;
  configMapName: string;
  sources: AppEnvSources;
  graph: DependencyGraph;
  /** What must exist before it starts: the stores and its NetworkPolicy (they are built after the services). */
  after?: Promise<pulumi.Resource[]>;
  parent: pulumi.Resource;
}

export function createMigration(a: MigrationArgs): k8s.batch.v1.Job {
  const { config: cfg, migration: m } = a;
  const workload = migrationName(a.service);
  const image = migrationImage(a.svc, m, a.service);
  const deps = migrationDeps(cfg, a.svc, m);
  connectDependencies(cfg, a.graph, workload, deps);
  const id = { name: workload, component: "migration", image };
  const name = migrationJobName(a.service, image, m.command);
  // A pod whose ConfigMap or policy is missing would wait or be cut off: both come first.
  const dependsOn: Promise<pulumi.Resource[]> = (a.after ?? Promise.resolve<pulumi.Resource[]>([])).then((after) => [...after, a.configMap]);
  return new k8s.batch.v1.Job(
    name,
    {
      metadata: {
        name,
        namespace: a.namespace,
        labels: labels(cfg, id),
        // A failed run is replaced (run again) by the next `pulumi up` instead of being waited on again.
        annotations: { "pulumi.com/replaceUnready": "true" },
      },
      spec: {
        backoffLimit: m.backoffLimit,
        activeDeadlineSeconds: m.timeoutSeconds,
        template: {
          metadata: { labels: labels(cfg, id) },
          spec: scheduled(cfg, "batch", {
            restartPolicy: "Never",
            serviceAccountName: a.serviceAccount,
            automountServiceAccountToken: false,
            securityContext: restrictedPod(),
            containers: [
              {
                name: "migrate",
                image,
                imagePullPolicy: "IfNotPresent",
                command: [...m.command],
                envFrom: [{ configMapRef: { name: a.configMapName } }],
                env: secretEnvFor(a.sources, deps),
                resources: m.resources ?? a.svc.resources,
                securityContext: restrictedContainer(),
                terminationMessagePolicy: "FallbackToLogsOnError",
                volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
              },
            ],
            volumes: [scratchVolume()],
          }),
        },
      },
    },
    {
      parent: a.parent,
      dependsOn,
      // Finished is finished: only a new name (image or command) runs it again.
      ignoreChanges: ["spec"],
      customTimeouts: { create: `${m.timeoutSeconds + 120}s`, update: `${m.timeoutSeconds + 120}s` },
    },
  );
}
