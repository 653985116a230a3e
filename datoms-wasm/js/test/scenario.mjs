// The replica scenario, the same in node and in the browser: restore the head of the
// exported db, then follow it through the scenario's next commits (the server moves the
// head when asked), answering the scenario's reads at each commit. Returns what it saw —
// commits, stats, answers — for the Rust test to compare with the native answers. It
// also checks as it goes and throws on the first difference, naming it.

function same(what, actual, expected) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: got ${a}, expected ${e}`);
}

/** Answers the scenario's reads (`q`, `pull`, `datoms`, each as EDN and as JSON values). */
function answer(replica, reads) {
  const out = {};
  for (const read of reads) {
    if (read.kind === "q") {
      out[read.name] = { edn: replica.qEdn(read.query, read.inputs), json: replica.q(read.query, read.inputs) };
    } else if (read.kind === "pull") {
      out[read.name] = { edn: replica.pullEdn(read.pattern, read.entity), json: replica.pull(read.pattern, read.entity) };
    } else if (read.kind === "datoms") {
      out[read.name] = {
        edn: replica.datomsEdn(read.index, read.components, read.limit),
        json: replica.datoms(read.index, read.components, read.limit),
      };
    }
  }
  return out;
}

/**
 * Runs the scenario. `lib` is the package (`{ init, Replica, follow }`), `origin` the
 * test server's origin. The database is at `scenario.base` (a `datoms serve`) or, when
 * the scenario names none, under `${origin}/db` (a static host).
 */
export async function run(lib, origin) {
  await lib.init();
  const scenario = await (await fetch(`${origin}/db/scenario.json`)).json();
  const served = scenario.base !== undefined;
  // Every request of the replica goes through this fetch, which counts them: the
  // replica's own count (stats.requests) must be the same.
  let fetches = 0;
  const countingFetch = (url, init) => {
    fetches += 1;
    return init === undefined ? fetch(url) : fetch(url, init);
  };
  const replica = new lib.Replica(scenario.base ?? `${origin}/db`, scenario.head, countingFetch);
  const seen = [];
  replica.onCommit((commit, stats) => seen.push({ commit, stats }));
  const steps = [];

  // 1. A full restore of the first commit.
  const first = await replica.restore();
  same("first commit", replica.commit, scenario.steps[0].commit);
  steps.push({ commit: replica.commit, stats: first, datoms: replica.datomCount(), answers: answer(replica, scenario.reads) });

  // 2. Follow: each commit the server moves the head to arrives through follow() —
  //    by the server's event stream where the runtime has EventSource (a browser: the
  //    polling fallback is then far too slow for the test to pass on it), else by
  //    polling — restored incrementally from the db held.
  const watch = typeof EventSource !== "undefined";
  for (let i = 1; i < scenario.steps.length; i++) {
    const arrived = new Promise((resolve) => {
      const id = replica.onCommit((commit) => {
        replica.offCommit(id);
        resolve(commit);
      });
    });
    const follower = lib.follow(replica, { intervalMs: 10, watch, watchFallbackMs: 600000 });
    same("watching", await follower.watching, watch);
    await fetch(`${origin}/test/advance`, { method: "POST" });
    const commit = await arrived;
    follower.stop();
    same(`commit of step ${i}`, commit, scenario.steps[i].commit);
    steps.push({ commit, stats: replica.lastStats(), datoms: replica.datomCount(), answers: answer(replica, scenario.reads) });
  }

  // 3. A refresh with the head unchanged fetches nothing but the head: one request (the
  //    head document, or a sync answering an empty bundle).
  const before = replica.totalStats();
  const fetchesBefore = fetches;
  same("refresh on an unmoved head", await replica.refresh(), null);
  const after = replica.totalStats();
  same("blobs fetched by an unmoved refresh", after.blobsFetched - before.blobsFetched, 0);
  same("requests of an unmoved refresh", fetches - fetchesBefore, 1);
  if (served) {
    // Against datoms serve each follow step was one request: the sync.
    for (let i = 1; i < steps.length; i++) same(`requests of step ${i}`, steps[i].stats.requests, 1);
  }

  // 4. Errors are thrown with their cause.
  let thrown = "";
  try {
    replica.q("[:find ?x :where [?x :no/such ?y] [(no-such-fn ?y)]]");
  } catch (e) {
    thrown = String(e.message ?? e);
  }
  if (!thrown) throw new Error("a query calling an unknown function did not throw");

  for (let i = 0; i < steps.length; i++) {
    for (const [name, expected] of Object.entries(scenario.steps[i].answers)) {
      const actual = steps[i].answers[name];
      same(`step ${i}: ${name} as EDN`, actual.edn, expected.edn);
      // The native JSON is text; parsed here as the replica's is, key order included.
      same(`step ${i}: ${name} as JSON`, actual.json, JSON.parse(expected.json));
    }
    same(`step ${i}: nodes fetched`, steps[i].stats.nodesFetched, scenario.steps[i].nodesFetched);
  }
  same("listener calls", seen.map((s) => s.commit), scenario.steps.map((s) => s.commit));
  return { steps, totals: replica.totalStats(), fetches, queryError: thrown, watched: watch, served };
}
