#!/usr/bin/env node
// The Datascript (JS) side of the ported Datascript test suite (bench/ds-suite/*.edn,
// bench/src/suite/, bench/tests/datascript_suite.rs).
//
// Reads tests as JSON on stdin: [{steps: [{op, args: [arg]}]}], where an arg is
// {db: NAME} (a db of this test), {edn: TEXT} (EDN read by Datascript's own reader),
// {fn: NAME} (a function of FNS below) or {name: TEXT} (a plain name). Each test starts
// with no dbs; its steps run in order:
//
//   db NAME SCHEMA              an empty db with SCHEMA, named NAME
//   tx NAME TX                  transacts TX on NAME (a failing tx leaves it as it was)
//   with NEW FROM TX            transacts TX on FROM's db into a new db NEW (FROM keeps its)
//   filter NEW FROM PRED        d/filter of FROM by the predicate FILTERS[PRED], as NEW
//   q QUERY INPUT...            datascript.core/q
//   pull DB PATTERN EID         datascript.core/pull
//   pull-many DB PATTERN EIDS   pull of each of EIDS, in order
//   entity DB EID ATTR...       (get … (get (d/entity db eid) attr) …), where an ATTR
//                               `first` takes the first of a set; with no ATTR the
//                               touched entity (d/touch)
//   datoms / seek-datoms DB INDEX COMPONENT...
//   index-range DB ATTR START END
//
// It prints one JSON array, one array per test, one {ok, value?, error?} per step: the
// answer printed with `pr-str` (a sequence of datoms as a vector), or the error's message.
// A tx's value is `[DATOMS TX-DATA TEMPIDS]`: every datom after it (a set of [e a v tx]),
// the report's tx-data (a set of datoms) and its tempids (a map from the tempid's `str`
// to its entity id, as the JS API gives them).
"use strict";

const fs = require("fs");
const { loadDatascript } = require("./datascript-raw");

const d = loadDatascript();
const read = (text) => d.read_string(text);
// `pr-str` of Clojure data: collections, keywords and other Clojure objects print
// themselves (their toString is pr-str); a JS string or a datom does not.
const show = (value) => {
  if (value === null || value === undefined) return "nil";
  if (typeof value === "string") return JSON.stringify(value);
  if (isDatom(value)) return showDatom(value);
  return String(value);
};
// The build exports no Datom class to this module: a datom is the object with the
// fields of `datascript.db/Datom` (e a v tx idx; the names survive compilation).
const isDatom = (x) =>
  typeof x === "object" && ["e", "a", "v", "tx", "idx"].every((k) => Object.hasOwn(x, k));
// A datom as Datascript prints it; its tx is negative when it is a retraction.
const showDatom = (x) =>
  `#datascript/Datom [${x.e} ${show(x.a)} ${show(x.v)} ${Math.abs(x.tx)} ${x.tx > 0}]`;
const message = (e) => (e && e.message ? e.message : String(e));
const showSeq = (items, open = "[", close = "]") =>
  open + Array.from(items, show).join(" ") + close;
const ALL_DATOMS = read("[:find ?e ?a ?v ?tx :where [?e ?a ?v ?tx]]");

// Functions a query can be given as inputs (an arg {fn: NAME}); bench/src/suite/fns.rs
// gives datoms the same functions under the same names. Values are Clojure data, so a
// number is a JS number and a string a JS string.
const FNS = {
  "even?": (x) => x % 2 === 0,
  "odd?": (x) => Math.abs(x % 2) === 1,
  "inc": (x) => x + 1,
  "pos?": (x) => x > 0,
  "sum": (values) => {
    let s = 0;
    for (const v of values) s += v;
    return s;
  },
  "count-distinct": (values) => new Set(Array.from(values)).size,
  // #(vector (reduce min %) (reduce max %)): a JS array is a Clojure seqable.
  "minmax": (values) => {
    const xs = Array.from(values);
    return [Math.min(...xs), Math.max(...xs)];
  },
  "range": (lo, hi) => Array.from({ length: Math.max(0, hi - lo) }, (_, i) => lo + i),
  "five": () => 5,
  "constantly-true": () => true,
  // (fn [xs] (reverse (sort xs))) over numbers, answering a Clojure vector (read back
  // from its text, the build exporting no constructor).
  "sort-reverse": (xs) => read(`[${Array.from(xs).sort((a, b) => b - a).map(show).join(" ")}]`),
  "over-18": (x) => x > 18,
  "even-or-nil": (x) => (x % 2 === 0 ? x : null),
  "first": (coll) => Array.from(coll)[0] ?? null,
  "second": (coll) => Array.from(coll)[1] ?? null,
  "age-is?": (db, e, a) => {
    const ent = d.entity(db, e);
    return ent !== null && ent !== undefined && ent.call(null, read(":age")) === a;
  },
};

// Filter predicates (`filter NEW FROM {fn: NAME}`), as Datascript's filter.cljc writes
// them; bench/src/suite/fns.rs gives datoms the same. They get the unfiltered db and a
// datom (its fields e, a, v).
const attr = (db, e, a) => {
  const ent = d.entity(db, e);
  return ent === null || ent === undefined ? null : ent.call(null, read(a));
};
const FILTERS = {
  "remove-pass": (_, x) => String(x.a) !== ":password",
  "remove-ivan": (_, x) => x.e !== 2,
  "long-akas": (db, x) => {
    const akas = attr(db, x.e, ":aka");
    const n = akas === null || akas === undefined ? 0 : Array.from(akas).length;
    return String(x.a) !== ":aka" || n <= 1 || x.v.length >= 4;
  },
  "has-age?": (db, x) => attr(db, x.e, ":age") !== null && attr(db, x.e, ":age") !== undefined,
  "adult?": (db, x) => attr(db, x.e, ":age") >= 18,
  "constantly-true": () => true,
  "constantly-false": () => false,
};

function run(test) {
  const dbs = new Map();
  const db = (arg) => {
    if (!arg || arg.db === undefined) throw new Error("suite.js: expected a db argument");
    if (!dbs.has(arg.db)) throw new Error(`suite.js: no db ${arg.db}`);
    return dbs.get(arg.db);
  };
  const value = (arg) => {
    if (arg.db !== undefined) return db(arg);
    if (arg.edn !== undefined) return read(arg.edn);
    if (arg.fn !== undefined) {
      const f = FNS[arg.fn];
      if (!f) throw new Error(`suite.js: no function ${arg.fn}`);
      return f;
    }
    return arg.name;
  };
  const transact = (from, tx) => {
    const conn = d.conn_from_db(from);
    const report = d.transact(conn, read(tx));
    const tempids = Object.entries(report.tempids)
      .map(([k, v]) => `${JSON.stringify(k)} ${v}`)
      .join(" ");
    const datoms = show(d.q_raw(ALL_DATOMS, report.db_after));
    return {
      db: report.db_after,
      value: `[${datoms} ${showSeq(report.tx_data, "#{", "}")} {${tempids}}]`,
    };
  };
  const step = (op, args) => {
    switch (op) {
      case "db":
        dbs.set(args[0].name, d.empty_db(read(args[1].edn)));
        return "nil";
      case "tx": {
        const r = transact(db(args[0]), args[1].edn);
        dbs.set(args[0].db, r.db);
        return r.value;
      }
      case "with": {
        const r = transact(db(args[1]), args[2].edn);
        dbs.set(args[0].name, r.db);
        return r.value;
      }
      case "filter": {
        const pred = FILTERS[args[2].fn];
        if (!pred) throw new Error(`suite.js: no filter predicate ${args[2].fn}`);
        dbs.set(args[0].name, d.filter(db(args[1]), pred));
        return "nil";
      }
      case "q":
        return show(d.q_raw(read(args[0].edn), ...args.slice(1).map(value)));
      case "pull":
        return show(d.pull_raw(db(args[0]), read(args[1].edn), read(args[2].edn)));
      case "pull-many": {
        const pattern = read(args[1].edn);
        const eids = Array.from(read(args[2].edn));
        return showSeq(eids.map((e) => d.pull_raw(db(args[0]), pattern, e)));
      }
      case "entity": {
        let e = d.entity(db(args[0]), read(args[1].edn));
        if (args.length === 2) {
          return show(e === null || e === undefined ? e : d.touch(e));
        }
        for (const attr of args.slice(2)) {
          if (e === null || e === undefined) break;
          if (attr.edn === "first") {
            // clojure.core/first of a set of entities (the tests take it of one-element
            // sets, whose first is certain).
            e = typeof e === "object" && e[Symbol.iterator] ? Array.from(e)[0] : null;
          } else {
            e = typeof e.call === "function" ? e.call(null, read(attr.edn)) : null;
          }
        }
        return show(e);
      }
      case "datoms":
      case "seek-datoms": {
        const f = op === "datoms" ? d.datoms : d.seek_datoms;
        return showSeq(f(db(args[0]), read(args[1].edn), ...args.slice(2).map(value)));
      }
      case "index-range":
        return showSeq(d.index_range(db(args[0]), ...args.slice(1).map(value)));
      default:
        throw new Error(`suite.js: unknown step ${op}`);
    }
  };
  return test.steps.map((s) => {
    try {
      return { ok: true, value: step(s.op, s.args) };
    } catch (e) {
      return { ok: false, error: message(e) };
    }
  });
}

try {
  const tests = JSON.parse(fs.readFileSync(0, "utf8"));
  process.stdout.write(JSON.stringify(tests.map(run)) + "\n");
} catch (e) {
  process.stderr.write(`suite.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
}
