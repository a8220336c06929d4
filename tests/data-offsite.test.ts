// Off-cluster copies of every backup (backups.objectStore) and the mailbox backup, under mocks:
// the Job layout (dump first, upload after), rclone configured from config and Secrets only, the
// upload script's order (copy, check, then prune), egress to the store's CIDRs only, the
// credentials Secret per namespace, and the mailbox job's security, volume and placement.
import { expect } from "chai";
import { STORES } from "../config/data";
import type { StoreName } from "../config/data";
import { backupCronJobs } from "../components/monitoring/rules";
import { dovecotConf } from "../components/mail/dovecot";
import { doveadmConf, mailClaim } from "../components/mail/backup";
import { mailModel } from "../components/mail/model";
import { selectorLabels } from "../components/lib/labels";
import { podSecurityViolations } from "./checks";
import { envOf } from "./data-helpers";
import { configOf, evaluate, evaluateStack, findObject, isSecretAt, objectsOfKind, ok, podSpec, recordOf, rejection } from "./harness";
import type { Evaluation, K8sObject } from "./harness";
import { diff, reachabilityMatrix } from "./reachability";

const STORE = { endpoint: "https://minio.example.com:9000", bucket: "platform-backups", prefix: "email-platform/prod", cidrs: ["203.0.113.7/32", "198.51.100.0/28"], pathStyle: true, region: "eu-west-1" };
const KEYS = { objectStoreAccessKeyId: "AKIDEXAMPLE", objectStoreSecretAccessKey: "wJalrXUtnFEMI-example-secret" };
// Every store on (Chroma is off in the stack files), so each store's backup is checked here.
const set = { "backups.objectStore": STORE, "chroma.enabled": true };

describe("off-cluster backup copies (backups.objectStore)", () => {
  let ev: Evaluation;
  let cfg: ReturnType<typeof configOf>;
  before(async () => {
    ev = ok(await evaluate({ stack: "prod", set, secrets: KEYS }));
    cfg = configOf(ev);
  });

  const cronJobs = () => objectsOfKind(ev, "CronJob").filter((c) => c.metadata.name.endsWith("-backup"));

  it("every backup CronJob (Postgres, Redis, MongoDB, ChromaDB, mailboxes) dumps in an init container, then uploads", () => {
    expect(cronJobs().map((c) => c.metadata.name).sort()).to.deep.equal([...backupCronJobs(cfg)].sort());
    expect(cronJobs().map((c) => c.metadata.name)).to.include.members(STORES.map((s) => `${s}-backup`));
    for (const cj of cronJobs()) {
      const pod = podSpec(cj);
      const name = cj.metadata.name.replace(/-backup$/, "");
      expect(pod.initContainers.map((c: K8sObject) => c.name), name).to.deep.equal(["backup"]);
      expect(pod.containers.map((c: K8sObject) => c.name), name).to.deep.equal(["upload"]);
      const dumpImage = name === "mailbox" ? cfg.mail.dovecot.image : cfg[name as StoreName].image;
      expect(pod.initContainers[0].image).to.equal(dumpImage);
      const up = pod.containers[0];
      expect(up.image).to.equal(cfg.backups.uploader.image).and.match(/^rclone\/rclone:\d+\.\d+\.\d+$/);
      expect(up.resources).to.deep.equal(cfg.backups.uploader.resources);
      expect(up.args).to.deep.equal(["upload"]);
      expect(up.volumeMounts).to.deep.include({ name: "backup", mountPath: "/backup" });
      // The whole pod passes Pod Security "restricted" (the mailbox one in the baseline namespace too).
      expect(podSecurityViolations(pod, "restricted"), name).to.deep.equal([]);
    }
  });

  it("rclone is configured by env only: endpoint, region, path style from config, keys from the namespace's Secret", () => {
    for (const cj of cronJobs()) {
      const env = envOf(podSpec(cj).containers[0]);
      expect(env).to.include({
        RCLONE_CONFIG_OFFSITE_TYPE: "s3",
        RCLONE_CONFIG_OFFSITE_ENDPOINT: STORE.endpoint,
        RCLONE_CONFIG_OFFSITE_REGION: STORE.region,
        RCLONE_CONFIG_OFFSITE_FORCE_PATH_STYLE: String(STORE.pathStyle),
        RCLONE_CONFIG_OFFSITE_ENV_AUTH: "false",
        RCLONE_CONFIG_OFFSITE_NO_CHECK_BUCKET: "true",
      });
      expect(env.RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID).to.deep.equal({ secret: "object-store-credentials", key: "ACCESS_KEY_ID" });
      expect(env.RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY).to.deep.equal({ secret: "object-store-credentials", key: "SECRET_ACCESS_KEY" });
      expect(JSON.stringify(cj)).to.not.include(KEYS.objectStoreSecretAccessKey);
    }
    // One credentials Secret in each namespace that uploads, holding the secret config as secrets.
    for (const ns of [cfg.platform.namespace, cfg.platform.mailNamespace]) {
      const s = findObject(ev, "Secret", "object-store-credentials", ns);
      expect(s.stringData).to.deep.equal({ ACCESS_KEY_ID: KEYS.objectStoreAccessKeyId, SECRET_ACCESS_KEY: KEYS.objectStoreSecretAccessKey });
    }
    for (const rec of ev.resources.filter((r) => r.inputs?.kind === "Secret" && r.inputs.metadata?.name === "object-store-credentials")) {
      expect(isSecretAt(rec, "stringData.SECRET_ACCESS_KEY")).to.equal(true);
      expect(isSecretAt(rec, "stringData.ACCESS_KEY_ID")).to.equal(true);
    }
  });

  it("the upload script copies (never syncs) into <bucket>/<prefix>/<store>/, checks the newest file arrived, and only then prunes beyond retention", () => {
    for (const cj of cronJobs()) {
      const name = cj.metadata.name.replace(/-backup$/, "");
      const retention = name === "mailbox" ? cfg.mail.backup.retention : cfg[name as StoreName].backup.retention;
      const script: string = podSpec(cj).containers[0].command[2];
      expect(podSpec(cj).containers[0].command.slice(0, 2)).to.deep.equal(["sh", "-c"]);
      expect(script).to.include(`remote='offsite:${STORE.bucket}/${STORE.prefix}/${name}'`);
      expect(script).to.not.match(/rclone (sync|delete |purge)/);
      const lines = script.split("\n");
      const copy = lines.findIndex((l) => l.includes('rclone copy /backup "$remote"'));
      const check = lines.findIndex((l) => l.includes("grep -qx"));
      const prune = lines.findIndex((l) => l.includes("rclone deletefile"));
      expect(copy, name).to.be.above(0);
      expect(check, name).to.be.above(copy);
      expect(prune, name).to.be.above(check);
      expect(script).to.include(`tail -n +${retention + 1} > /tmp/prune.list`);
      expect(lines[0]).to.equal("set -eu");
    }
  });

  it("the backup pods reach the object store's CIDRs on the endpoint's port and nothing else outside", () => {
    for (const cj of cronJobs()) {
      const policy = findObject(ev, "NetworkPolicy", `allow-${cj.metadata.name}`, cj.metadata.namespace);
      const blocks = policy.spec.egress.filter((r: K8sObject) => r.to.some((p: K8sObject) => p.ipBlock));
      expect(blocks.map((r: K8sObject) => r.to[0].ipBlock.cidr).sort(), cj.metadata.name).to.deep.equal([...STORE.cidrs].sort());
      for (const r of blocks) expect(r.ports).to.deep.equal([{ port: 9000, protocol: "TCP" }]);
    }
    const { actual, expected } = reachabilityMatrix(ev);
    expect(diff(actual, expected)).to.deep.equal({ missing: [], extra: [] });
  });

  it("without backups.objectStore: one container, no credentials Secret, no egress outside the cluster", async () => {
    const plain = ok(await evaluateStack("prod"));
    expect(objectsOfKind(plain, "Secret").map((s) => s.metadata.name)).to.not.include("object-store-credentials");
    for (const cj of objectsOfKind(plain, "CronJob").filter((c) => c.metadata.name.endsWith("-backup"))) {
      expect(podSpec(cj).initContainers, cj.metadata.name).to.equal(undefined);
      expect(podSpec(cj).containers.map((c: K8sObject) => c.name)).to.deep.equal(["backup"]);
    }
    const egress = objectsOfKind(plain, "NetworkPolicy").flatMap((p) => p.spec.egress ?? []);
    expect(egress.filter((r: K8sObject) => r.to.some((p: K8sObject) => p.ipBlock?.cidr === STORE.cidrs[0]))).to.deep.equal([]);
  });

  it("refuses an object store without its credentials, and a mutable uploader image, registering nothing", async () => {
    expect(await rejection({ stack: "prod", set })).to.match(/objectStoreAccessKeyId: is a required secret \(asked for by backups\.objectStore\.accessKeyIdSecret\)/);
    expect(await rejection({ stack: "prod", set: { ...set, "backups.uploader.image": "rclone/rclone:latest" }, secrets: KEYS })).to.match(/backups\.uploader\.image: must not use the mutable tag 'latest'/);
  });
});

describe("mailbox backup (mail.backup)", () => {
  for (const stack of ["staging", "prod"] as const) {
    it(`${stack}: a restricted doveadm job as vmail on Dovecot's node, reading the mailboxes' claim, with Dovecot's mailbox layout`, async () => {
      const ev = ok(await evaluateStack(stack));
      const cfg = configOf(stack);
      const ns = cfg.platform.mailNamespace;
      const b = cfg.mail.backup;
      const cj = findObject(ev, "CronJob", "mailbox-backup", ns);
      expect(cj.spec).to.include({ schedule: b.schedule, timeZone: b.timeZone, concurrencyPolicy: "Forbid" });
      const pod = podSpec(cj);
      const c = pod.containers.find((x: K8sObject) => x.name === "backup");
      expect(c.image).to.equal(cfg.mail.dovecot.image);
      // Restricted although the namespace is baseline: vmail, no capabilities, no escalation.
      expect(pod.securityContext).to.include({ runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000 });
      expect(podSecurityViolations(pod, "restricted")).to.deep.equal([]);
      expect(pod.serviceAccountName).to.equal("mailbox-backup");
      const claim = pod.volumes.find((v: K8sObject) => v.name === "mail").persistentVolumeClaim.claimName;
      expect(claim).to.equal(`mail-dovecot-0`);
      expect(c.volumeMounts).to.deep.include({ name: "mail", mountPath: "/srv/mail" });
      // ReadWriteOnce: the job must run where the volume is attached.
      expect(pod.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]).to.deep.equal({
        labelSelector: { matchLabels: selectorLabels(cfg, { name: "dovecot", component: "mail" }) },
        topologyKey: "kubernetes.io/hostname",
      });
      const script: string = c.command[2];
      for (const u of cfg.mail.users) expect(script).to.include(`for user in ${cfg.mail.users.join(" ")}; do`).and.include(u);
      expect(script).to.include('doveadm -c /etc/mailbox-backup/doveadm.conf backup "maildir:$mirror/Maildir"').and.include(`tail -n +${b.retention + 1}`);
      const pvc = findObject(ev, "PersistentVolumeClaim", "mailbox-backup", ns);
      expect(pvc.spec.resources.requests.storage).to.equal(b.storage.size);
      expect(recordOf(ev, "PersistentVolumeClaim", "mailbox-backup").options.protect).to.equal(stack === "prod");
      const cm = findObject(ev, "ConfigMap", "mailbox-backup", ns);
      expect(Object.keys(cm.data).sort()).to.deep.equal(["doveadm.conf", "restore.sh"]);
    });
  }

  it("doveadm's layout is dovecot.conf's: the same mail location and hierarchy separator (dsync must agree with the server)", () => {
    const cfg = configOf("prod");
    const server = dovecotConf(mailModel(cfg)).split("\n");
    const job = doveadmConf().split("\n");
    const location = (lines: string[]) => lines.find((l) => l.startsWith("mail_location"));
    const separator = (lines: string[]) => lines.find((l) => l.trim().startsWith("separator"))?.trim();
    expect(location(job)).to.equal(location(server)).and.equal("mail_location = maildir:~/Maildir");
    expect(separator(job)).to.equal(separator(server));
  });

  it("with shared (ReadWriteMany) mailboxes it reads the shared claim and needs no affinity; off, nothing is created", async () => {
    const rwx = { "mail.dovecot.storage.accessMode": "ReadWriteMany", "mail.dovecot.storage.storageClass": "nfs", "mail.dovecot.replicas": 2 };
    const ev = ok(await evaluate({ stack: "prod", set: rwx }));
    const cfg = configOf(ev);
    expect(mailClaim(mailModel(cfg))).to.equal("dovecot-mail");
    const pod = podSpec(findObject(ev, "CronJob", "mailbox-backup", cfg.platform.mailNamespace));
    expect(pod.volumes.find((v: K8sObject) => v.name === "mail").persistentVolumeClaim.claimName).to.equal("dovecot-mail");
    expect(pod.affinity).to.equal(undefined);
    const off = ok(await evaluate({ stack: "prod", set: { "mail.backup.enabled": false } }));
    expect(objectsOfKind(off, "CronJob").map((c) => c.metadata.name)).to.not.include("mailbox-backup");
    expect(objectsOfKind(off, "PersistentVolumeClaim").map((c) => c.metadata.name)).to.not.include("mailbox-backup");
  });
});
