// Validate KEDA objects (keda.sh/v1alpha1) against KEDA's published schema, offline.
//
// The schemas come from the npm package @kubernetes-models/keda (pinned in
// package-lock.json, installed by deploy/k8s/tools/install.sh): JSON schemas
// generated from KEDA's Go API types, compiled into validators.
//
//   node deploy/k8s/tools/validate-keda.mjs FILE.json
//
// FILE.json holds a JSON array of objects. Prints one line per object
// ("ok Kind/name" or "invalid Kind/name: path: message") and exits 1 if any
// object is invalid or of a kind that is not KEDA's, 0 otherwise.
import { readFileSync } from "node:fs";
import * as keda from "@kubernetes-models/keda/keda.sh/v1alpha1";

const path = process.argv[2];
if (!path) {
  console.error("usage: node validate-keda.mjs FILE.json");
  process.exit(2);
}
const objects = JSON.parse(readFileSync(path, "utf8"));
if (!Array.isArray(objects)) {
  console.error(`validate-keda: ${path} must hold a JSON array of objects`);
  process.exit(2);
}

let failed = 0;
for (const object of objects) {
  const kind = object?.kind;
  const name = `${kind}/${object?.metadata?.name}`;
  const Model = object?.apiVersion === "keda.sh/v1alpha1" ? keda[kind] : undefined;
  if (typeof Model !== "function" || typeof Model.prototype.validate !== "function") {
    console.log(`invalid ${name}: not a KEDA keda.sh/v1alpha1 kind (apiVersion ${object?.apiVersion})`);
    failed++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok ${name}`);
  } catch (error) {
    const details = (error.errors ?? [])
      .map((e) => `${e.instancePath || "/"}: ${e.message ?? e.keyword} ${JSON.stringify(e.params ?? {})}`)
      .join("; ");
    console.log(`invalid ${name}: ${details || error.message}`);
    failed++;
  }
}
console.log(`validate-keda: ${objects.length - failed} valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
