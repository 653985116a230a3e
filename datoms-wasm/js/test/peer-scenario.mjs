// The peer scenario, the same in node and in the browser, in two phases with a "reload"
// between them (a new page load in the browser; a new peer from the same outbox in
// node). `control(what)` asks the test's server to "stop-server" or "start-server" the
// `datoms serve` the peer writes to. It throws on the first unexpected thing, naming it.
//
//   A. Open the peer (server up), transact and push one transaction (it lands). Stop the
//      server. Transact two more: each is visible to local queries at once and resolves
//      once the outbox is saved. A push fails (server unreachable); both stay pending.
//   B. (after the reload, server still stopped) The outbox holds both; opening a peer
//      fails while the server is stopped. Start the server; open the peer from the
//      outbox: both are pending and visible locally; push: both land. A peer reopened
//      from the outbox as it was *before* that push (a crash between the compare-and-swap
//      and the outbox save) finds them landed and pushes nothing; one reopened from the
//      current outbox has nothing pending either.

function check(what, ok, detail) {
  if (!ok) throw new Error(`${what}: ${JSON.stringify(detail)}`);
}

const LABELS = "[:find [?l ...] :where [?e :item/label ?l]]";

function labels(peer) {
  return peer.q(LABELS).sort();
}

export async function phaseA(lib, config, outbox, control) {
  const peer = await lib.openPeer(config.base, config.head, { token: config.token, outbox, schema: config.schema });
  check("the seed is there", labels(peer).includes("seed"), labels(peer));
  await peer.transact('[{:item/label "online-1"}]');
  const online = await peer.push();
  check("the online transaction landed", online.landed.length === 1, online);
  await control("stop-server");
  const first = await peer.transact('[{:item/label "offline-1"}]');
  const second = await peer.transact('[{:item/label "offline-2" :item/note "made offline"}]');
  check("applied locally at once", JSON.stringify(labels(peer)) === JSON.stringify(["offline-1", "offline-2", "online-1", "seed"]), labels(peer));
  let pushError = "";
  try {
    await peer.push();
  } catch (e) {
    pushError = String(e.message ?? e);
  }
  check("a push with the server stopped fails", pushError !== "", pushError);
  const pending = peer.pending();
  check("both wait in the outbox", pending.length === 2 && pending[0] === first.id && pending[1] === second.id, { pending, first, second });
  return { pending, pushError, onlineCommit: online.commits[0] };
}

export async function phaseB(lib, config, outbox, control, before) {
  const saved = await outbox.load();
  check("the outbox survived the reload", saved !== null && saved.length > 0, saved?.length);
  let openError = "";
  try {
    await lib.openPeer(config.base, config.head, { token: config.token, outbox, schema: config.schema });
  } catch (e) {
    openError = String(e.message ?? e);
  }
  check("opening with the server stopped fails", openError !== "", openError);
  await control("start-server");
  const stale = await outbox.load();
  const peer = await lib.openPeer(config.base, config.head, { token: config.token, outbox, schema: config.schema });
  check("the same transactions are pending", JSON.stringify(peer.pending()) === JSON.stringify(before.pending), { now: peer.pending(), before: before.pending });
  check("and visible locally", labels(peer).includes("offline-1") && labels(peer).includes("offline-2"), labels(peer));
  const pushed = await peer.push();
  check("both landed", JSON.stringify(pushed.landed) === JSON.stringify(before.pending), pushed);
  check("nothing pending", peer.pending().length === 0, peer.pending());

  // A crash after the compare-and-swap, before the outbox was saved: the old bytes.
  const crashed = await lib.openPeer(config.base, config.head, { token: config.token, outbox: fixedOutbox(stale), schema: config.schema });
  check("a stale outbox finds its transactions landed", crashed.pending().length === 0, crashed.pending());
  const again = await crashed.push();
  check("and pushes nothing", again.landed.length === 0 && again.commits.length === 0, again);

  const reopened = await lib.openPeer(config.base, config.head, { token: config.token, outbox, schema: config.schema });
  check("a reopened peer has nothing pending", reopened.pending().length === 0, reopened.pending());
  check("its db holds each label once", JSON.stringify(labels(reopened)) === JSON.stringify(["offline-1", "offline-2", "online-1", "seed"]), labels(reopened));
  return { landed: pushed.landed, commits: pushed.commits, openError, head: reopened.commit };
}

/** An outbox holding fixed bytes (saves kept in memory). */
function fixedOutbox(bytes) {
  let held = bytes;
  return {
    async load() {
      return held;
    },
    async save(b) {
      held = b.slice();
    },
  };
}
