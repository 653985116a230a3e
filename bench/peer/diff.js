#!/usr/bin/env node
// The Datascript (JS) side of the randomized differential test (bench/src/diff/,
// bench/tests/datascript_diff.rs).
//
// Reads cases as JSON on stdin: [{schema, txs: [edn], queries: [{query, inputs: [edn or
// `#fn NAME`, a function of FNS below]}],
// pulls: [{pattern, entity}]}], every string EDN text. For each case it builds an empty db
// from the schema, applies each transaction in turn (a failing one leaves the db as it
// was), then runs every query and pull on the final db. It prints one JSON array, one
// object per case: {txs: [{ok, error?, datoms}], queries: [{ok, value?, error?}], pulls:
// [...]}, where `datoms` (every datom after the tx, as a set of [e a v tx]) and each
// `value` are the Clojure data printed with `pr-str`.
//
// The EDN is read by Datascript's own reader (`cljs.reader/read-string`) and answers are
// Datascript's own data, not the JS API's conversions (which drop keyword namespaces and
// turn sets into arrays): datascript-raw.js loads the pinned build with those exported.
"use strict";

const fs = require("fs");
const { loadDatascript } = require("./datascript-raw");

const d = loadDatascript();
const read = (text) => d.read_string(text);
const show = (value) => (value === null || value === undefined ? "nil" : String(value));
const message = (e) => (e && e.message ? e.message : String(e));

// Functions a query can be given as inputs: an input written `#fn NAME` is the function
// NAME of this table (bench/src/diff/mod.rs gives datoms the same functions).
const FNS = {
  "adult?": (age) => age >= 21,
  "total": (values) => {
    let sum = 0;
    for (const v of values) sum += v;
    return sum;
  },
};
const input = (text) => {
  if (text.startsWith("#fn ")) {
    const f = FNS[text.slice(4)];
    if (!f) throw new Error(`diff.js: no function ${text}`);
    return f;
  }
  return read(text);
};

const ALL_DATOMS = read("[:find ?e ?a ?v ?tx :where [?e ?a ?v ?tx]]");

function runCase(c) {
  let db = d.empty_db(read(c.schema));
  const txs = c.txs.map((tx) => {
    try {
      db = d.db_with(db, read(tx));
      return { ok: true, datoms: show(d.q_raw(ALL_DATOMS, db)) };
    } catch (e) {
      return { ok: false, error: message(e), datoms: show(d.q_raw(ALL_DATOMS, db)) };
    }
  });
  const answer = (f) => {
    try {
      return { ok: true, value: show(f()) };
    } catch (e) {
      return { ok: false, error: message(e) };
    }
  };
  const queries = c.queries.map((q) =>
    answer(() => d.q_raw(read(q.query), db, ...q.inputs.map(input))));
  const pulls = c.pulls.map((p) => answer(() => d.pull_raw(db, read(p.pattern), read(p.entity))));
  return { txs, queries, pulls };
}

function main() {
  const cases = JSON.parse(fs.readFileSync(0, "utf8"));
  const out = cases.map(runCase);
  process.stdout.write(JSON.stringify(out) + "\n");
}

try {
  main();
} catch (e) {
  process.stderr.write(`diff.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
}
