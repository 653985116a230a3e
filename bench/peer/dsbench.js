#!/usr/bin/env node
// The Datascript (JS) side of Datascript's own benchmark suite (bench/src/dsbench/).
//
// Reads the suite as the first line of stdin, one JSON object, every data string EDN
// text the Rust side generated:
//   {timing: {warmup_ms, bench_ms, samples, batch},
//    schema,
//    dbs: {NAME: tx},                       dbs built (untimed) from an empty db
//    benches: [{name, kind, ...}]}
// kinds (what is timed, as Datascript's bench/datascript/bench/datascript.cljc does it):
//   tx:     {db?, txs: [tx]}          reduce db-with over txs, from db (or the empty db)
//   init:   {datoms_json}             init-db of the datoms ([[e a v] ...])
//   datoms: {db, ids: [from, to], attr}  (:v (first (datoms db :eavt id attr))) per id
//   q:      {db, query, inputs: [edn]}   q with the db and the inputs (`%` rules: EDN)
//   pull:   {db, pattern, eid}
// and answers one line, {datascript, node}, once the dbs are built. Then each further
// line is the index of a benchmark to run, answered with one line {name, ms, samples,
// answer}: `answer` the benchmark's result printed with pr-str (for tx and init: the
// datoms of the db made, as a set of [e a v]; for datoms: the vector of values). The Rust
// side times its own run of each benchmark right after, so both run under the same load.
//
// Timing is Datascript's (bench/datascript/bench/bench.cljc): run the body in batches of
// `batch` until `warmup_ms` passed, then `samples` times until `bench_ms` passed, each
// sample the mean ms per run; the median sample is reported.
"use strict";

const fs = require("fs");
const { loadDatascript, EXPECTED_VERSION } = require("./datascript-raw");

const d = loadDatascript();
const read = (text) => d.read_string(text);
const show = (value) => (value === null || value === undefined ? "nil" : String(value));
const now = () => {
  const t = process.hrtime();
  return t[0] * 1000 + t[1] / 1e6;
};

function dotime(durationMs, batch, f) {
  const start = now();
  const end = start + durationMs;
  let iterations = 0;
  for (;;) {
    for (let i = 0; i < batch; i++) f();
    iterations += batch;
    const t = now();
    if (t >= end) return (t - start) / iterations;
  }
}

function bench(timing, f) {
  dotime(timing.warmup_ms, timing.batch, f);
  const samples = [];
  for (let i = 0; i < timing.samples; i++) samples.push(dotime(timing.bench_ms, timing.batch, f));
  const sorted = [...samples].sort((a, b) => a - b);
  return { ms: sorted[Math.floor(sorted.length / 2)], samples };
}

const ALL_DATOMS = read("[:find ?e ?a ?v :where [?e ?a ?v]]");

function prepare(b, dbs, schema, empty) {
  const dbOf = (name) => {
    if (name === undefined || name === null) return empty;
    const db = dbs[name];
    if (!db) throw new Error(`dsbench.js: no db ${name}`);
    return db;
  };
  switch (b.kind) {
    case "tx": {
      const base = dbOf(b.db);
      const txs = b.txs.map(read);
      const run = () => {
        let db = base;
        for (const tx of txs) db = d.db_with_raw(db, tx);
        return db;
      };
      return { run, answer: (db) => show(d.q_raw(ALL_DATOMS, db)) };
    }
    case "init": {
      const datoms = JSON.parse(b.datoms_json).map(([e, a, v]) =>
        d.datom_raw([e, read(a), read(v)]));
      const run = () => d.init_db_raw(datoms, schema);
      return { run, answer: (db) => show(d.q_raw(ALL_DATOMS, db)) };
    }
    case "datoms": {
      const db = dbOf(b.db);
      const eavt = read(":eavt");
      const attr = read(b.attr);
      const [from, to] = b.ids;
      const comps = [];
      for (let id = from; id < to; id++) comps.push(read(`[${id} ${b.attr}]`));
      const run = () => {
        const out = [];
        for (const c of comps) {
          const found = d.datoms_raw(db, eavt, c);
          out.push(found.length > 0 ? found[0].v : null);
        }
        return out;
      };
      return {
        run,
        answer: (vs) => `[${vs.map((v) => (typeof v === "string" ? JSON.stringify(v) : show(v))).join(" ")}]`,
      };
    }
    case "q": {
      const db = dbOf(b.db);
      const query = read(b.query);
      const inputs = b.inputs.map(read);
      const run = () => d.q_raw(query, db, ...inputs);
      return { run, answer: show };
    }
    case "pull": {
      const db = dbOf(b.db);
      const pattern = read(b.pattern);
      const run = () => d.pull_raw(db, pattern, b.eid);
      return { run, answer: show };
    }
    default:
      throw new Error(`dsbench.js: unknown kind ${b.kind}`);
  }
}

async function main() {
  const lines = require("readline").createInterface({ input: process.stdin, crlfDelay: Infinity });
  let suite = null;
  for await (const line of lines) {
    if (line.trim() === "") continue;
    if (suite === null) {
      const input = JSON.parse(line);
      const schema = read(input.schema);
      const empty = d.empty_db(schema);
      const dbs = {};
      for (const [name, tx] of Object.entries(input.dbs)) dbs[name] = d.db_with_raw(empty, read(tx));
      suite = { input, schema, empty, dbs };
      process.stdout.write(JSON.stringify({ datascript: EXPECTED_VERSION, node: process.version }) + "\n");
      continue;
    }
    const b = suite.input.benches[Number(line)];
    if (!b) throw new Error(`dsbench.js: no benchmark ${line}`);
    const p = prepare(b, suite.dbs, suite.schema, suite.empty);
    const answer = p.answer(p.run());
    const t = bench(suite.input.timing, p.run);
    process.stdout.write(JSON.stringify({ name: b.name, ms: t.ms, samples: t.samples, answer }) + "\n");
  }
}

main().catch((e) => {
  process.stderr.write(`dsbench.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
