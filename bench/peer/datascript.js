// Loads the pinned Datascript build (1.8.1, bench/peer/package-lock.json) with the raw
// Clojure entry points its JS API does not export: `read_string` (cljs.reader), `q_raw`
// (datascript.core/q) and `pull_raw` (datascript.core/pull), which take and answer
// Clojure data, where the JS API converts keywords to strings and sets to arrays. Shared
// by the differential test (diff.js) and the ported test suite (suite.js).
"use strict";

const fs = require("fs");
const path = require("path");

const EXPECTED_VERSION = "1.8.1";
const EXPORT_POINT = ";return this.datascript.js;";
// read-string (Ky), datascript.core/q (nA), datascript.core/pull (ex/dx) in the 1.8.1
// build: the JS API's q is `a=Ky(a);b=ab(nA,a,b);return zj(b)` and its pull
// `a=ex?ex(a,b,c):dx.call(null,a,b,c);return lB(a)`, checked below.
const EXPECTED_Q = "oB.l=function(a,b){a=Ky(a);b=ab(nA,a,b);return zj(b)}";
const EXPECTED_PULL = "a=ex?ex(a,b,c):dx.call(null,a,b,c);return lB(a)";
const EXTRA_EXPORTS =
  'ka("datascript.js.read_string",Ky);' +
  'ka("datascript.js.q_raw",nA);' +
  'ka("datascript.js.pull_raw",function(a,b,c){return ex?ex(a,b,c):dx.call(null,a,b,c)});';

function loadDatascript() {
  const dir = path.dirname(require.resolve("datascript/package.json"));
  const version = require("datascript/package.json").version;
  if (version !== EXPECTED_VERSION) {
    throw new Error(`diff.js expects datascript ${EXPECTED_VERSION}, found ${version}`);
  }
  const src = fs.readFileSync(path.join(dir, "datascript.js"), "utf8");
  for (const needle of [EXPECTED_Q, EXPECTED_PULL, EXPORT_POINT]) {
    if (src.split(needle).length !== 2) {
      throw new Error(`datascript.js is not the build diff.js knows: ${needle} not found once`);
    }
  }
  const patched = src.replace(EXPORT_POINT, `;${EXTRA_EXPORTS}${EXPORT_POINT}`);
  const mod = { exports: {} };
  // eslint-disable-next-line no-new-func
  new Function("module", "exports", "define", patched)(mod, mod.exports, undefined);
  return mod.exports;
}

module.exports = { loadDatascript };
