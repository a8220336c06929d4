// Off-cluster backups: one S3-compatible object store that every backup of the platform copies
// to (store dumps, the Postgres WAL archive and base backups, mailboxes), so that losing the
// cluster's storage never loses the data and its backups together.
import { z } from "zod";
import { cidr, image, res, resources, storage } from "./common";
import { cron } from "./cron";
import type { Resources } from "./common";

/** A secret config key (`pulumi config set --secret <key>`). */
const secretKey = z.string().regex(/^[a-z][A-Za-z0-9]*$/, "must be a camelCase config key");

/** S3 bucket naming rules (the subset every S3 implementation accepts). */
const bucket = z
  .string()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "must be an S3 bucket name (3-63 lowercase letters, digits, '.', '-')")
  .refine((b) => !/\.\.|^\d+\.\d+\.\d+\.\d+$/.test(b), "must be an S3 bucket name (no '..', not an IP address)");

/** A store's scheduled logical backup (dump), the same shape for every store and the mailboxes. */
export const backupSchema = z.strictObject({
  /** Scheduled logical backup (CronJob) onto its own retained volume. */
  enabled: z.boolean(),
  schedule: cron,
  /** IANA time zone of the schedule (CronJob.spec.timeZone). */
  timeZone: z.string().min(1),
  /** Backups kept; the job deletes older ones after a successful run. */
  retention: z.number().int().min(1, "must be >= 1: keeping no backups would delete every dump right after writing it").max(365),
  storage: storage,
  resources: resources,
  /** A job that runs longer is killed (and retried), so a hung dump never blocks the next run. */
  activeDeadlineSeconds: z.number().int().min(60),
});

export const objectStoreSchema = z.strictObject({
  /**
   * The S3 API endpoint, https only: backups travel encrypted, and pgBackRest speaks TLS only.
   * AWS: https://s3.<region>.amazonaws.com; MinIO and the like: their URL, with pathStyle true.
   */
  endpoint: z.url({ protocol: /^https$/, error: "must be an https:// URL such as https://s3.eu-west-1.amazonaws.com" }),
  bucket: bucket,
  /** Key prefix inside the bucket; each store writes below <prefix>/<store>/. */
  prefix: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/-]*[A-Za-z0-9]$/, "must be a key prefix such as email-platform/prod (no leading or trailing '/')"),
  region: z.string().regex(/^[a-z0-9-]+$/, "must be a region such as eu-west-1"),
  /** Path-style addressing (https://host/bucket/key), which MinIO-like stores need. */
  pathStyle: z.boolean(),
  /**
   * The store's addresses: backup pods may reach these CIDRs on the endpoint's port and nothing
   * else outside the cluster (NetworkPolicy egress).
   */
  cidrs: z.array(cidr).min(1, "must list the object store's addresses (NetworkPolicy egress is allowed to these only)"),
  /** Secret config keys holding the access key pair (never in the stack file). */
  accessKeyIdSecret: secretKey,
  secretAccessKeySecret: secretKey,
});
export type ObjectStoreConfig = z.infer<typeof objectStoreSchema>;

/** What a stack file may leave out of backups.objectStore. */
export const OBJECT_STORE_DEFAULTS = {
  region: "us-east-1",
  pathStyle: false,
  accessKeyIdSecret: "objectStoreAccessKeyId",
  secretAccessKeySecret: "objectStoreSecretAccessKey",
} as const;

export const backupsSchema = z.strictObject({
  /** Where every backup is copied; unset keeps backups on in-cluster volumes only. */
  objectStore: z
    .preprocess((v) => (v && typeof v === "object" && !Array.isArray(v) ? { ...OBJECT_STORE_DEFAULTS, ...v } : v), objectStoreSchema)
    .optional(),
  /**
   * The container that copies each backup CronJob's new file to the object store and prunes the
   * copies there (components/data/backup.ts): rclone, configured only through environment
   * variables, so the image needs no file of ours.
   */
  uploader: z.strictObject({ image: image, resources: resources }),
});

export function backupsDefaults(): z.input<typeof backupsSchema> {
  return {
    // 1.68 reads every S3 setting we use from RCLONE_CONFIG_<remote>_* variables.
    uploader: { image: "rclone/rclone:1.68.2", resources: res("50m", "64Mi", "1", "256Mi") },
  };
}

/** Host and port of the endpoint (the port the egress rule opens). */
export function objectStoreAddress(s: ObjectStoreConfig): { host: string; port: number } {
  const u = new URL(s.endpoint);
  return { host: u.hostname, port: u.port ? Number(u.port) : 443 };
}

/** Resources of a backup pod's containers (inventory): the dump, plus the upload when copies go off the cluster. */
export function backupContainers(backups: { objectStore?: ObjectStoreConfig; uploader: { resources: Resources } }, dump: Resources): Resources[] {
  return backups.objectStore ? [dump, backups.uploader.resources] : [dump];
}
