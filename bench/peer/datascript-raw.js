// Loads the pinned Datascript build (1.8.1, package-lock.json) with a few of its
// ClojureScript functions exported raw, for the scripts that must hand Datascript its own
// data (keywords, sets, Clojure collections) rather than the JS API's conversions (which
// drop keyword namespaces and turn sets into arrays): diff.js (the differential test),
// suite.js (Datascript's own test suite) and dsbench.js (Datascript's own benchmark suite).
//
// The JS API of the npm build exports none of these, so the build's source is patched
// at its export point with exports of the minified names of this build. Every name is
// checked against the JS API function that calls it: a different build fails here,
// loudly, rather than answering wrongly.
"use strict";

const fs = require("fs");
const path = require("path");

const EXPECTED_VERSION = "1.8.1";
const EXPORT_POINT = ";return this.datascript.js;";
// In the 1.8.1 build: read-string (Ky), datascript.core/q (nA), datascript.core/pull
// (ex/dx), db-with (tA), datoms (KA), init-db (qt), the JS API's array-to-datom (kB) and
// cljs into-array (db). Each needle is the JS API function that calls them.
const NEEDLES = [
  "oB.l=function(a,b){a=Ky(a);b=ab(nA,a,b);return zj(b)}",
  "a=ex?ex(a,b,c):dx.call(null,a,b,c);return lB(a)",
  '"datascript.js.db_with",function(a,b){b=jB(b);return tA.g?tA.g(a,b):tA.call(null,a,b)}',
  "tB.l=function(a,b,c){return db(cb(KA,a,fB(b),ig.g(Dj,c)))}",
  "nB.l=function(a,b){b=M(b,0);a=ig.g(kB,a);b=gB(b);return qt(a,b)}",
  EXPORT_POINT,
];
const EXTRA_EXPORTS =
  'ka("datascript.js.read_string",Ky);' +
  'ka("datascript.js.q_raw",nA);' +
  'ka("datascript.js.pull_raw",function(a,b,c){return ex?ex(a,b,c):dx.call(null,a,b,c)});' +
  'ka("datascript.js.db_with_raw",function(a,b){return tA.g?tA.g(a,b):tA.call(null,a,b)});' +
  'ka("datascript.js.datoms_raw",function(a,b,c){return db(cb(KA,a,b,c))});' +
  'ka("datascript.js.init_db_raw",qt);' +
  'ka("datascript.js.datom_raw",kB);';

/// The Datascript module with the raw exports added: read_string(text),
/// q_raw(query, ...inputs), pull_raw(db, pattern, eid), db_with_raw(db, txData),
/// datoms_raw(db, index, components) (a JS array), init_db_raw(datoms, schema),
/// datom_raw([e, a, v]).
function loadDatascript() {
  const dir = path.dirname(require.resolve("datascript/package.json"));
  const version = require("datascript/package.json").version;
  if (version !== EXPECTED_VERSION) {
    throw new Error(`datascript-raw.js expects datascript ${EXPECTED_VERSION}, found ${version}`);
  }
  const src = fs.readFileSync(path.join(dir, "datascript.js"), "utf8");
  for (const needle of NEEDLES) {
    if (src.split(needle).length !== 2) {
      throw new Error(`datascript.js is not the build datascript-raw.js knows: ${needle} not found once`);
    }
  }
  const patched = src.replace(EXPORT_POINT, `;${EXTRA_EXPORTS}${EXPORT_POINT}`);
  const mod = { exports: {} };
  // eslint-disable-next-line no-new-func
  new Function("module", "exports", "define", patched)(mod, mod.exports, undefined);
  return mod.exports;
}

module.exports = { loadDatascript, EXPECTED_VERSION };
