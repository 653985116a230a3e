#!/usr/bin/env node
// The Datascript (JS) side of the datoms benchmark.
//
// Generates the same seeded workload as the Rust harness (bench/src/workload.rs: the same
// SplitMix64 PRNG, the same draws in the same order), transacts it into Datascript, and
// prints one JSON object: the workload and db checksums (FNV-1a 64 of the same canonical
// text the Rust side hashes), the transact timings, the heap the db holds, and the
// timings of a join query and a pull on the same data.
//
// Usage: node --expose-gc peer.js --seed S --datoms N --batch B --small-datoms M
//                                 [--deltas 1,10,100] [--repeats R]
"use strict";

const d = require("datascript");

// ---- arguments -----------------------------------------------------------------------

function parseArgs(argv) {
  const args = { seed: "42", datoms: 10000, batch: 1000, smallDatoms: 1000, deltas: [], repeats: 1 };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`missing value for ${k}`);
    switch (k) {
      case "--seed": args.seed = v; break;
      case "--datoms": args.datoms = Number(v); break;
      case "--batch": args.batch = Number(v); break;
      case "--small-datoms": args.smallDatoms = Number(v); break;
      case "--deltas": args.deltas = v === "" ? [] : v.split(",").map(Number); break;
      case "--repeats": args.repeats = Number(v); break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  return args;
}

// ---- SplitMix64 and FNV-1a 64 (as bench/src/rng.rs) ----------------------------------

const MASK = (1n << 64n) - 1n;

class SplitMix64 {
  constructor(seed) {
    this.state = BigInt.asUintN(64, BigInt(seed));
  }
  nextU64() {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
    return z ^ (z >> 31n);
  }
  below(n) {
    return Number(this.nextU64() % BigInt(Math.max(n, 1)));
  }
}

// 64-bit FNV-1a on two 32-bit halves (BigInt per byte would be slow): the prime is
// 2^40 + 0x1b3, so h * prime = h * 0x1b3 + (lo << 40), all exact in doubles.
class Fnv64 {
  constructor() {
    this.hi = 0xcbf29ce4;
    this.lo = 0x84222325;
  }
  writeByte(b) {
    const lo = (this.lo ^ b) >>> 0;
    const loMul = lo * 0x1b3;
    const carry = Math.floor(loMul / 4294967296);
    this.hi = (this.hi * 0x1b3 + carry + ((lo << 8) >>> 0)) >>> 0;
    this.lo = loMul >>> 0;
  }
  writeString(s) {
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x80) {
        this.writeByte(c);
      } else {
        for (const b of Buffer.from(s.slice(i, i + 1), "utf8")) this.writeByte(b);
      }
    }
  }
  hex() {
    return this.hi.toString(16).padStart(8, "0") + this.lo.toString(16).padStart(8, "0");
  }
}

// ---- the workload (as bench/src/workload.rs) -----------------------------------------

const FIRST = ["Ann", "Bob", "Carol", "Dan", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy",
  "Ken", "Liz", "Mallory", "Nina", "Oscar", "Peggy"];
const LAST = ["Smith", "Jones", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas",
  "Johnson", "Roberts", "Walker", "Wright", "Robinson", "Thompson", "White", "Hughes"];
const DOMAINS = ["example.com", "example.org", "mail.test", "corp.invalid"];
const CITIES = ["Amsterdam", "Berlin", "Cairo", "Dakar", "Edinburgh", "Florence", "Geneva",
  "Hanoi", "Istanbul", "Jakarta", "Kyoto", "Lima", "Madrid", "Nairobi", "Oslo", "Paris",
  "Quito", "Riga", "Seoul", "Tunis", "Utrecht", "Vienna", "Warsaw", "Zagreb"];

const SCHEMA = {
  "person/name": { ":db/unique": ":db.unique/identity" },
  "person/email": { ":db/unique": ":db.unique/value" },
  "person/age": { ":db/index": true },
  "person/city": {},
  "person/score": {},
  "person/friend": { ":db/valueType": ":db.type/ref", ":db/cardinality": ":db.cardinality/many" },
  "person/tag": { ":db/cardinality": ":db.cardinality/many" },
};

class Generator {
  constructor(seed) {
    this.rng = new SplitMix64(seed);
    this.people = 0;
    this.counter = 0;
  }
  pick(from) {
    return from[this.rng.below(from.length)];
  }
  // committed: people in earlier transactions (friends come from them), or null.
  person(committed) {
    const i = this.people++;
    const first = this.pick(FIRST);
    const last = this.pick(LAST);
    const domain = this.pick(DOMAINS);
    const age = 18 + this.rng.below(73);
    const city = this.pick(CITIES);
    const score = this.rng.below(1000000);
    const friends = [];
    if (committed !== null && committed > 0) {
      const n = Math.min(this.rng.below(4), committed);
      while (friends.length < n) {
        const f = 1 + this.rng.below(committed);
        if (!friends.includes(f)) friends.push(f);
      }
    }
    return { kind: "new", tempid: `p${i}`, name: `${first} ${last} ${i}`,
      email: `user${i}@${domain}`, age, city, score, friends };
  }
  base(datoms, batch) {
    const txs = [];
    let total = 0;
    while (total < datoms) {
      const committed = this.people;
      const tx = [];
      for (let j = 0; j < Math.max(batch, 1); j++) {
        if (total >= datoms) break;
        const p = this.person(committed);
        total += 5 + p.friends.length;
        tx.push(p);
      }
      txs.push(tx);
    }
    return txs;
  }
  delta(k) {
    const tx = [];
    const fifths = Math.floor((k * 2) / 5);
    const nNew = Math.floor(fifths / 5);
    const updates = Math.min(Math.floor(fifths / 2), this.people);
    for (let j = 0; j < nNew; j++) tx.push(this.person(null));
    const existing = this.people - nNew;
    const updated = new Set();
    while (updated.size < Math.min(updates, existing)) {
      const e = 1 + this.rng.below(existing);
      if (!updated.has(e)) {
        updated.add(e);
        this.counter += 1;
        tx.push({ kind: "score", e, score: 1000000 + this.counter });
      }
    }
    let datoms = tx.reduce((s, op) => s + opDatoms(op), 0);
    while (datoms < k) {
      const e = 1 + this.rng.below(existing);
      this.counter += 1;
      tx.push({ kind: "tag", e, tag: `tag-${this.counter}` });
      datoms += 1;
    }
    return tx;
  }
}

function opDatoms(op) {
  return op.kind === "new" ? 5 + op.friends.length : op.kind === "score" ? 2 : 1;
}

function canonical(op) {
  switch (op.kind) {
    case "new":
      return `new\t${op.tempid}\t${op.name}\t${op.email}\t${op.age}\t${op.city}\t${op.score}\t${op.friends.join(",")}\n`;
    case "score":
      return `score\t${op.e}\t${op.score}\n`;
    default:
      return `tag\t${op.e}\t${op.tag}\n`;
  }
}

function workloadChecksum(txs) {
  const h = new Fnv64();
  for (const tx of txs) {
    h.writeString("tx\n");
    for (const op of tx) h.writeString(canonical(op));
  }
  return h.hex();
}

function toJs(op) {
  switch (op.kind) {
    case "new": {
      const m = { ":db/id": op.tempid, "person/name": op.name, "person/email": op.email,
        "person/age": op.age, "person/city": op.city, "person/score": op.score };
      if (op.friends.length > 0) m["person/friend"] = op.friends;
      return m;
    }
    case "score":
      return [":db/add", op.e, "person/score", op.score];
    default:
      return [":db/add", op.e, "person/tag", op.tag];
  }
}

function dbChecksum(db) {
  const h = new Fnv64();
  let n = 0;
  for (const x of d.datoms(db, ":eavt")) {
    h.writeString(`${x.e}\t${x.a}\t${x.v}\t${x.tx}\n`);
    n++;
  }
  return [h.hex(), n];
}

// ---- measurements --------------------------------------------------------------------

function nowMs() {
  return Number(process.hrtime.bigint()) / 1e6;
}

function gc() {
  if (typeof global.gc === "function") global.gc();
}

function transact(jsTxs) {
  let db = d.empty_db(SCHEMA);
  const t0 = nowMs();
  for (const tx of jsTxs) db = d.db_with(db, tx);
  return [db, nowMs() - t0];
}

// The small workloads that follow the one-person-per-transaction one, on its db (as
// bench/src/small.rs): the i-th transaction touches entity 1 + (i * 7919) mod P.
function smallEntity(i, people) {
  return 1 + ((i * 7919) % Math.max(people, 1));
}

function addsWorkload(people, n) {
  const txs = [];
  for (let i = 0; i < n; i++) {
    txs.push([[":db/add", smallEntity(i, people.length), "person/tag", `tag-${i}`]]);
  }
  return txs;
}

function mixWorkload(people, n) {
  const scores = people.map((p) => p.score);
  const txs = [];
  for (let i = 0; i < n; i++) {
    const e = smallEntity(i, people.length);
    switch (i % 4) {
      case 0:
        txs.push([{ "person/name": people[e - 1].name,
          "person/city": CITIES[Math.floor(i / 4) % CITIES.length] }]);
        break;
      case 1: {
        const next = 2000000 + i;
        txs.push([[":db/cas", e, "person/score", scores[e - 1], next]]);
        scores[e - 1] = next;
        break;
      }
      case 2:
        txs.push([[":db/add", e, "person/tag", `mix-${i}`]]);
        break;
      default:
        txs.push([[":db/retract", smallEntity(i - 1, people.length), "person/tag", `mix-${i - 1}`]]);
    }
  }
  return txs;
}

function transactOnto(db0, jsTxs) {
  let db = db0;
  const t0 = nowMs();
  for (const tx of jsTxs) db = d.db_with(db, tx);
  return [db, nowMs() - t0];
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// The join and the pull of the comparison (bench/src/workload.rs: JOIN_QUERY,
// PULL_PATTERN, PULL_ENTITIES): friends' names of the 30-year-olds in Paris, and a
// nested pull of the first 1000 people.
const JOIN = '[:find ?n ?fn :where [?e "person/city" "Paris"] [?e "person/age" 30] ' +
  '[?e "person/friend" ?f] [?f "person/name" ?fn] [?e "person/name" ?n]]';
const PULL = '["person/name" "person/age" {"person/friend" ["person/name" "person/city"]}]';
const PULL_ENTITIES = 1000;

function main() {
  const args = parseArgs(process.argv.slice(2));
  gc();
  const heapBase = process.memoryUsage().heapUsed;

  const gen = new Generator(args.seed);
  const txs = gen.base(args.datoms, args.batch);
  const basePeople = gen.people;
  const deltas = args.deltas.map((k) => gen.delta(k));
  const txCount = txs.length;
  const workload = workloadChecksum(txs);
  const deltaChecksum = workloadChecksum(deltas);

  const jsTxs = txs.map((tx) => tx.map(toJs));
  const runs = [];
  let db = null;
  for (let r = 0; r < Math.max(args.repeats, 1); r++) {
    db = null;
    gc();
    const [built, ms] = transact(jsTxs);
    db = built;
    runs.push(ms);
  }
  const [dbSum, datoms] = dbChecksum(db);

  const small = new Generator(args.seed).base(args.smallDatoms, 1);
  const smallJs = small.map((tx) => tx.map(toJs));
  const smallRuns = [];
  let smallDb = null;
  for (let r = 0; r < Math.max(args.repeats, 1); r++) {
    const [built, ms] = transact(smallJs);
    smallDb = built;
    smallRuns.push(ms);
  }
  const [smallSum, smallDatoms] = dbChecksum(smallDb);
  const people = small.flat();
  const followOns = [addsWorkload(people, people.length), mixWorkload(people, people.length)]
    .map((jsFollow) => {
      const followRuns = [];
      let followDb = null;
      for (let r = 0; r < Math.max(args.repeats, 1); r++) {
        const [built, ms] = transactOnto(smallDb, jsFollow);
        followDb = built;
        followRuns.push(ms);
      }
      return { ms: median(followRuns), checksum: dbChecksum(followDb)[0] };
    });

  const joinRuns = [];
  let joinRows = 0;
  const pullRuns = [];
  let pulled = 0;
  const ids = [];
  for (let e = 1; e <= Math.min(PULL_ENTITIES, basePeople); e++) ids.push(e);
  for (let r = 0; r < Math.max(args.repeats, 1); r++) {
    let t0 = nowMs();
    joinRows = d.q(JOIN, db).length;
    joinRuns.push(nowMs() - t0);
    t0 = nowMs();
    pulled = d.pull_many(db, PULL, ids).length;
    pullRuns.push(nowMs() - t0);
  }

  // What the db holds once the tx data is gone.
  txs.length = 0;
  jsTxs.length = 0;
  smallDb = null;
  gc();
  const heapDb = process.memoryUsage().heapUsed - heapBase;

  const out = {
    datascript: require("datascript/package.json").version,
    node: process.version,
    workload_checksum: workload,
    delta_checksum: deltaChecksum,
    db_checksum: dbSum,
    datoms,
    txs: txCount,
    transact_ms: median(runs),
    transact_runs_ms: runs,
    small_db_checksum: smallSum,
    small_datoms: smallDatoms,
    small_txs: small.length,
    small_transact_ms: median(smallRuns),
    adds_transact_ms: followOns[0].ms,
    adds_db_checksum: followOns[0].checksum,
    mix_transact_ms: followOns[1].ms,
    mix_db_checksum: followOns[1].checksum,
    heap_bytes: heapDb,
    gc_exposed: typeof global.gc === "function",
    join_ms: median(joinRuns),
    join_rows: joinRows,
    pull_ms: median(pullRuns),
    pull_entities: pulled,
  };
  process.stdout.write(JSON.stringify(out) + "\n");
}

try {
  main();
} catch (e) {
  process.stderr.write(`peer.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
}
