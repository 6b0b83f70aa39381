// timnode client protocol over WebSocket, JSON mapping (subprotocol "timnode.v1.json").
//
// No DOM in here: app.js is the UI. This mirrors the Python SDK (im/client.py) and
// docs/protocol.md §8:
//  * every request carries a per-connection id (a string: 64-bit ints travel as strings)
//    and is matched to exactly one response; pushes have no id;
//  * log in with resume(token) when we have one, else login/register; keep the token;
//  * after every (re)connect: cursor = max(cursor, session.ackedCursor), then sync pages
//    from the cursor; pushes during the sync are delivered at once; every message id is
//    delivered to the app once (de-duplicated), the cursor is persisted;
//  * received messages (to = me, from != me) are acknowledged, coalesced (~50 ms);
//  * sends go through a persisted outbox and are retried across reconnects with the same
//    clientMsgId (the node makes that idempotent);
//  * reconnect with full-jitter exponential backoff; REPLACED / DEVICE_LIMIT_KICK / ADMIN
//    kicks and logout stop it.
// Message ids and cursors are never turned into JS numbers (they exceed 2^53): they stay
// decimal strings and are compared with cmpId (BigInt).

export const SUBPROTOCOL = "timnode.v1.json";

const ACK_DELAY_MS = 50;
const ACK_BATCH = 256;
const SEEN_MAX = 50_000;
const SYNC_LIMIT = 500;
const REQUEST_TIMEOUT_MS = 30_000;
const OPEN_TIMEOUT_MS = 10_000;
const KEEPALIVE_MS = 25_000;
const KEEPALIVE_TIMEOUT_MS = 10_000;
const FINAL_KICKS = new Set(["REPLACED", "DEVICE_LIMIT_KICK", "ADMIN"]);
// Errors after which retrying the same login makes no sense.
const FATAL_LOGIN = new Set(["AUTH_FAILED", "CONFLICT", "BAD_REQUEST", "DEVICE_LIMIT", "NOT_FOUND", "FORBIDDEN"]);
// Send errors that are worth retrying later (the rest fail the message).
const RETRY_SEND = new Set(["RATE_LIMITED", "STORE_UNAVAILABLE", "INTERNAL"]);

/** Compare two uint64 decimal strings (ids, cursors): -1, 0, 1. Empty/absent = 0. */
export function cmpId(a, b) {
  const x = BigInt(a || "0");
  const y = BigInt(b || "0");
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The larger of two uint64 decimal strings. */
export function maxId(a, b) {
  return cmpId(a, b) >= 0 ? String(a || "0") : String(b || "0");
}

/**
 * The WebSocket URL of the node that served the page, or the ?node= override
 * (ws:// or wss:// only).
 */
export function nodeUrl(loc = globalThis.location) {
  const override = new URLSearchParams(loc.search).get("node");
  if (override) {
    try {
      const u = new URL(override);
      if (u.protocol === "ws:" || u.protocol === "wss:") return u.href;
    } catch {
      /* ignored: fall back to the page's own node */
    }
  }
  if (!loc.host) return "ws://127.0.0.1:7400/";
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/`;
}

export function newId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** An Error answer from the node. `code` is the enum name ("AUTH_FAILED" ...). */
export class ProtocolError extends Error {
  constructor(error = {}) {
    super(error.message || error.code || "error");
    this.name = "ProtocolError";
    this.code = typeof error.code === "string" ? error.code : String(error.code ?? "ERROR_CODE_UNSPECIFIED");
    this.retryAfter = Number(error.retryAfter || 0);
  }
}

/** The connection dropped (or was never there) before an answer arrived. */
export class ConnectionLost extends Error {
  constructor(message = "connection lost") {
    super(message);
    this.name = "ConnectionLost";
  }
}

/** Per-user persistence in localStorage (namespaced; JSON values). */
export class Storage {
  constructor(prefix = "timnode.v1", backend = globalThis.localStorage) {
    this.prefix = prefix;
    this.backend = backend;
  }
  key(user, name) {
    return user ? `${this.prefix}.u.${user}.${name}` : `${this.prefix}.${name}`;
  }
  get(user, name, fallback = null) {
    try {
      const raw = this.backend.getItem(this.key(user, name));
      return raw === null ? fallback : JSON.parse(raw);
    } catch {
      return fallback;
    }
  }
  set(user, name, value) {
    try {
      this.backend.setItem(this.key(user, name), JSON.stringify(value));
    } catch {
      /* storage full or disabled: keep going in memory */
    }
  }
  del(user, name) {
    try {
      this.backend.removeItem(this.key(user, name));
    } catch {
      /* ignored */
    }
  }
}

/** One WebSocket: request/response matching by id, pushes to a callback. */
export class Connection {
  constructor(url, onPush) {
    this.url = url;
    this.onPush = onPush;
    this.nextId = 0;
    this.pending = new Map();
    this.ws = null;
    this.isClosed = false;
    this.closed = new Promise((resolve) => (this._resolveClosed = resolve));
  }

  open(timeoutMs = OPEN_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(this.url, SUBPROTOCOL);
      } catch (e) {
        this._finish(1006, String(e));
        reject(new ConnectionLost(`cannot open ${this.url}: ${e}`));
        return;
      }
      this.ws = ws;
      const timer = setTimeout(() => {
        this.close(4000, "open timeout");
        reject(new ConnectionLost("open timeout"));
      }, timeoutMs);
      ws.onopen = () => {
        clearTimeout(timer);
        if (ws.protocol !== SUBPROTOCOL) {
          this.close(1000, "no subprotocol");
          reject(new ConnectionLost("the node did not accept " + SUBPROTOCOL));
          return;
        }
        resolve(this);
      };
      ws.onmessage = (event) => this._onMessage(event);
      ws.onerror = () => {};
      ws.onclose = (event) => {
        clearTimeout(timer);
        this._finish(event.code, event.reason);
        reject(new ConnectionLost(`closed ${event.code} ${event.reason}`.trim()));
      };
    });
  }

  /** Send one request; resolves with the response frame, rejects ProtocolError / ConnectionLost. */
  request(op, body = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (this.isClosed || !this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ConnectionLost("not connected"));
    }
    const id = String(++this.nextId);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ConnectionLost(`${op} timed out`));
        this.close(4000, "request timeout"); // a silent node: start over
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.ws.send(JSON.stringify({ id, [op]: body }));
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new ConnectionLost(String(e)));
      }
    });
  }

  /** Close now; `closed` resolves at once (a dead peer need not answer the close). */
  close(code = 1000, reason = "") {
    if (this.ws) {
      try {
        this.ws.close(code, reason);
      } catch {
        /* ignored */
      }
    }
    this._finish(code, reason, true);
  }

  _onMessage(event) {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      console.warn("timnode: undecodable frame ignored");
      return;
    }
    if (!frame || typeof frame !== "object") return;
    if (frame.id && frame.id !== "0") {
      const waiter = this.pending.get(String(frame.id));
      if (!waiter) return;
      this.pending.delete(String(frame.id));
      clearTimeout(waiter.timer);
      if (frame.error) waiter.reject(new ProtocolError(frame.error));
      else waiter.resolve(frame);
      return;
    }
    try {
      this.onPush(frame);
    } catch (e) {
      console.error("timnode: push handler failed", e);
    }
  }

  _finish(code, reason, local = false) {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.ws) {
      this.ws.onmessage = this.ws.onclose = this.ws.onopen = null;
    }
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new ConnectionLost(`connection closed (${code})`));
    }
    this.pending.clear();
    this._resolveClosed({ code, reason, local });
  }
}

/**
 * A reconnecting client for one user on one device. Events (EventTarget, `detail`):
 *   state      {state, attempt, error}  offline | connecting | online | reconnecting | stopped
 *   session    {session}                logged in (every connect)
 *   message    {message, synced}        each message id once (received or sent by any device)
 *   presence   {presence}               subscribed user's state (treat as state, not transition)
 *   presenceunknown {}                  the connection dropped: presence is stale until resubscribed
 *   delivered  {by, ids}                 `by` acknowledged these message ids we sent
 *   sent       {clientMsgId, messageId, timestamp, duplicate}
 *   sendfailed {clientMsgId, error}
 *   kicked     {reason, message}
 *   synced     {first}                  a sync after connect finished
 *   groupmessage {message}              a group message or notice pushed (Message.group, .seq)
 *   typing     {user, active, ttlMs}    a user is typing to us (ephemeral)
 *   authfailed {error}                  the stored token no longer works and no password is known
 */
export class ChatClient extends EventTarget {
  constructor(url, { storage = new Storage(), backoff = [250, 10_000], random = Math.random } = {}) {
    super();
    this.url = url;
    this.storage = storage;
    this.backoff = backoff;
    this.random = random;
    this.state = "offline";
    this.attempt = 0;
    this.user = "";
    this.password = "";
    this.token = "";
    this.device = "";
    this.cursor = "0";
    this.hadCursor = false;
    this.session = null;
    this.sendEpoch = "";
    this.conn = null;
    this.stopped = true;
    this.seen = new Set();
    this.watched = new Set();
    this.outbox = [];
    this._ackIds = [];
    this._ackTimer = null;
    this._syncing = false;
    this._pushMax = "0";
    this._register = false;
    this._noReconnect = "";
    this._wake = null;
    this._onlineWaiters = [];
    this._flushing = false;
    this._keepalive = null;
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * Log in (register first if asked), then keep the session up in the background.
   * Resolves with the first Session; rejects with ProtocolError (wrong password, name
   * taken, token expired ...) or, unless waitForNetwork, ConnectionLost.
   */
  async start({ user, password = "", register = false, token = "" }, { waitForNetwork = false } = {}) {
    this.user = user;
    this.password = password;
    this.token = register ? "" : token; // a password login from the form does not reuse a stored token
    this._register = register;
    this.device = this.storage.get(user, "device", "") || `web-${newId().slice(0, 8)}`;
    this.storage.set(user, "device", this.device);
    const stored = this.storage.get(user, "cursor", null);
    this.hadCursor = stored !== null;
    this.cursor = stored || "0";
    this.outbox = this.storage.get(user, "outbox", []) || [];
    this.seen.clear();
    this.stopped = false;
    this._noReconnect = "";
    this.attempt = 0;
    this._setState("connecting");
    for (;;) {
      try {
        const conn = await this._open();
        this._loop(conn);
        return this.session;
      } catch (e) {
        if (this.stopped) throw e;
        if (e instanceof ProtocolError || !waitForNetwork) {
          this.stopped = true;
          this._setState("offline", e);
          throw e;
        }
        this.attempt += 1;
        this._setState("connecting", e);
        await this._sleepBackoff();
      }
    }
  }

  /** Revoke the token and close; no reconnect. */
  async logout() {
    const conn = this.conn;
    this.stopped = true;
    this._wakeUp();
    if (conn) {
      // The node answers logout by closing with 1000 (docs/protocol.md §14): either counts.
      await Promise.race([
        conn.request("logout", {}, 3000).catch(() => {}),
        conn.closed,
        new Promise((r) => setTimeout(r, 3000)),
      ]);
      conn.close(1000, "logout");
    }
    this.storage.del(this.user, "token");
    this.token = "";
    this.password = "";
    this._setState("offline");
  }

  /** Stop without logging out (the token stays valid for resume). */
  stop() {
    this.stopped = true;
    this._wakeUp();
    if (this.conn) this.conn.close(1000, "client stopped");
    this._setState("offline");
  }

  /** Skip the current backoff wait (the network came back); never restarts a stopped client. */
  wake() {
    this._wakeUp();
  }

  /** The user asked to reconnect: skip the backoff wait, or restart after a final kick. */
  reconnectNow() {
    if (this.state === "stopped" && this.user) {
      this._noReconnect = "";
      this.stopped = false;
      this.attempt = 0;
      this._loop(null);
      return;
    }
    this._wakeUp();
  }

  // ------------------------------------------------------------------ operations

  /** A new clientMsgId, behind the node's send epoch when it gave one: the node then need
   *  not read its store to know the id unused (docs/protocol.md §7). */
  _newClientMsgId() {
    return this.sendEpoch ? `${this.sendEpoch}:${newId()}` : newId();
  }

  /** Queue a text message; retried across reconnects with the same clientMsgId. */
  send(to, text, { type = 1, ext = undefined, clientMsgId = this._newClientMsgId() } = {}) {
    const item = { to, text, type, clientMsgId, createdAt: Date.now() };
    if (ext && Object.keys(ext).length) item.ext = ext;
    this.outbox.push(item);
    this._saveOutbox();
    this._flushOutbox();
    return item;
  }

  /** Queue a group message (groupSend), retried like send(); `sent` carries the item. */
  sendGroup(group, text, { type = 1, clientMsgId = this._newClientMsgId() } = {}) {
    const item = { group, to: "", text, type, clientMsgId, createdAt: Date.now() };
    this.outbox.push(item);
    this._saveOutbox();
    this._flushOutbox();
    return item;
  }

  /** Typing indicator to a user (ephemeral: dropped when offline). */
  typing(to, active) {
    if (this.state !== "online" || !this.conn) return Promise.resolve();
    return this.conn.request("typing", { to, active: !!active }).catch(() => {});
  }

  /** Move our read marker of a 1:1 conversation to message id upTo. */
  markRead(peer, upTo) {
    return this.call("read", { conversation: peer, upTo: String(upTo) });
  }

  async myGroups() {
    const frame = await this.call("myGroups", {});
    return frame.groups?.groups || [];
  }

  async groupCreate(name, members = [], { joinPolicy = "JOIN_OPEN", topic = "" } = {}) {
    const body = { name, members, joinPolicy };
    if (topic) body.topic = topic;
    return (await this.call("groupCreate", body)).group || {};
  }

  async groupMember(group, action, { user = "", text = "" } = {}) {
    const body = { group, action };
    if (user) body.user = user;
    if (text) body.text = text;
    return this.call("groupMember", body);
  }

  async groupMembers(group, { after = "", limit = 1000 } = {}) {
    const body = { group, limit };
    if (after) body.after = after;
    return (await this.call("groupMembers", body)).groupMembers || {};
  }

  /** One page of a group's log after afterSeq (oldest first). */
  async groupSync(group, afterSeq = "0", limit = 500) {
    const body = { group, limit };
    if (afterSeq && afterSeq !== "0") body.afterSeq = String(afterSeq);
    return (await this.call("groupSync", body)).groupPage || {};
  }

  groupRead(group, seq) {
    return this.call("groupRead", { group, seq: String(seq) });
  }

  /** Re-queue a failed message with its clientMsgId. */
  retry(item) {
    if (!this.outbox.some((o) => o.clientMsgId === item.clientMsgId)) {
      this.outbox.push({ ...item, createdAt: item.createdAt || Date.now() });
      this._saveOutbox();
    }
    this._flushOutbox();
  }

  /** One conversation backwards: ids < before ("0" = newest). Waits for a connection. */
  async history(peer, before = "0", limit = 50) {
    const body = { peer, limit };
    if (before && before !== "0") body.before = String(before);
    const frame = await this.call("history", body);
    return frame.page || {};
  }

  /** Start watching presence of these users (also re-subscribed after every reconnect). */
  async watch(users) {
    const fresh = users.filter((u) => u && u !== this.user && !this.watched.has(u));
    fresh.forEach((u) => this.watched.add(u));
    if (fresh.length && this.state === "online" && this.conn) {
      await this._subscribe(this.conn, fresh).catch(() => {});
    }
  }

  async unwatch(users) {
    users.forEach((u) => this.watched.delete(u));
    if (this.state === "online" && this.conn) {
      await this.conn.request("unsubscribe", { users }).catch(() => {});
    }
  }

  /** A request on the current connection, waiting for one (and retrying if it drops). */
  async call(op, body = {}) {
    for (;;) {
      if (this.stopped) throw new ConnectionLost("client stopped");
      if (this.state !== "online" || !this.conn || this.conn.isClosed) {
        await new Promise((resolve) => this._onlineWaiters.push(resolve));
        continue;
      }
      try {
        return await this.conn.request(op, body);
      } catch (e) {
        if (!(e instanceof ConnectionLost)) throw e;
      }
    }
  }

  // ------------------------------------------------------------------ internals

  _emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setState(state, error = null) {
    this.state = state;
    if (state === "online") {
      const waiters = this._onlineWaiters;
      this._onlineWaiters = [];
      waiters.forEach((w) => w());
    } else if (this.stopped) {
      const waiters = this._onlineWaiters;
      this._onlineWaiters = [];
      waiters.forEach((w) => w());
    }
    this._emit("state", { state, attempt: this.attempt, error });
  }

  async _open() {
    const conn = new Connection(this.url, (frame) => this._onPush(conn, frame));
    await conn.open();
    try {
      const session = await this._login(conn);
      this.session = session;
      this.sendEpoch = session.sendEpoch || "";
      this.token = session.token || this.token;
      if (session.device) this.device = session.device;
      this.storage.set(this.user, "token", this.token);
      this.storage.set(this.user, "device", this.device);
      this.storage.set(null, "lastUser", this.user);
      this.cursor = maxId(this.cursor, session.ackedCursor);
      this.conn = conn;
      return conn;
    } catch (e) {
      conn.close(1000, "login failed");
      throw e;
    }
  }

  async _login(conn) {
    if (this.token) {
      try {
        return (await conn.request("resume", { token: this.token, device: this.device })).session;
      } catch (e) {
        if (!(e instanceof ProtocolError) || e.code !== "AUTH_FAILED" || !this.password) throw e;
        this.token = "";
      }
    }
    const creds = { user: this.user, password: this.password, device: this.device };
    if (this._register) {
      const frame = await conn.request("register", creds);
      this._register = false;
      return frame.session;
    }
    return (await conn.request("login", creds)).session;
  }

  async _loop(conn) {
    while (!this.stopped) {
      if (conn) {
        const closed = conn.closed;
        try {
          await this._onConnected(conn);
        } catch (e) {
          if (!(e instanceof ConnectionLost)) console.warn("timnode: after-connect step failed", e);
          conn.close(4000, "setup failed");
        }
        const info = await closed;
        this._onDisconnected(info);
        conn = null;
        if (this.stopped) break;
        if (this._noReconnect) {
          this.stopped = true;
          const error = new Error(`kicked: ${this._noReconnect}`);
          error.code = this._noReconnect;
          this._setState("stopped", error);
          break;
        }
      }
      this.attempt += 1;
      this._setState("reconnecting");
      await this._sleepBackoff();
      if (this.stopped) break;
      try {
        conn = await this._open();
      } catch (e) {
        conn = null;
        if (e instanceof ProtocolError && FATAL_LOGIN.has(e.code) && !e.retryAfter) {
          this.stopped = true;
          if (e.code === "AUTH_FAILED") {
            this.storage.del(this.user, "token");
            this._emit("authfailed", { error: e });
          }
          this._setState("stopped", e);
          break;
        }
      }
    }
  }

  async _onConnected(conn) {
    this._emit("session", { session: this.session });
    await this._syncAll(conn);
    if (this.watched.size) await this._subscribe(conn, [...this.watched]);
    if (conn.isClosed) throw new ConnectionLost();
    this.attempt = 0;
    this._setState("online");
    this._startKeepalive(conn);
    this._flushAcks();
    this._flushOutbox();
  }

  _onDisconnected(info) {
    this._stopKeepalive();
    if (this.conn && this.conn.isClosed) this.conn = null;
    this._emit("presenceunknown", {});
    this._emit("disconnected", info);
  }

  async _syncAll(conn) {
    const first = !this.hadCursor;
    this._syncing = true;
    this._pushMax = "0";
    try {
      let after = this.cursor;
      for (;;) {
        const { page = {} } = await conn.request("sync", { after, limit: SYNC_LIMIT });
        for (const m of page.messages || []) this._deliver(m, true, first);
        after = maxId(after, page.cursor);
        if (!page.more) break;
      }
      this.cursor = maxId(maxId(this.cursor, after), this._pushMax);
    } finally {
      this._syncing = false;
    }
    this._saveCursor();
    this.hadCursor = true;
    this._emit("synced", { first });
  }

  async _subscribe(conn, users) {
    for (let i = 0; i < users.length; i += 1000) {
      const { presences = {} } = await conn.request("subscribe", { users: users.slice(i, i + 1000) });
      for (const p of presences.presences || []) this._emit("presence", { presence: normPresence(p) });
    }
  }

  _onPush(conn, frame) {
    if (conn !== this.conn && this.conn !== null) return; // a stale connection
    if (frame.message) {
      const m = frame.message;
      this._deliver(m, false, false);
      if (this._syncing) this._pushMax = maxId(this._pushMax, m.id);
      else {
        this.cursor = maxId(this.cursor, m.id);
        this._saveCursor();
      }
    } else if (frame.groupMessage) {
      this._emit("groupmessage", { message: frame.groupMessage });
    } else if (frame.typing) {
      const t = frame.typing;
      this._emit("typing", { user: t.user || "", active: !!t.active, ttlMs: Number(t.ttlMs || 10_000) });
    } else if (frame.presence) {
      this._emit("presence", { presence: normPresence(frame.presence) });
    } else if (frame.delivered) {
      const d = frame.delivered;
      this._emit("delivered", { by: d.by || "", ids: (d.messageIds || []).map(String) });
    } else if (frame.kicked) {
      const reason = frame.kicked.reason || "KICK_REASON_UNSPECIFIED";
      if (FINAL_KICKS.has(reason)) this._noReconnect = reason;
      this._emit("kicked", { reason, message: frame.kicked.message || "" });
    } else if (frame.error) {
      console.warn("timnode: node could not attribute a frame:", frame.error);
    }
  }

  _deliver(m, synced, initial) {
    const id = String(m.id || "0");
    if (this.seen.has(id)) return;
    this._remember(id);
    this._emit("message", { message: m, synced, initial });
    if (m.to === this.user && m.from !== this.user) this._queueAck(id);
  }

  _remember(id) {
    this.seen.add(id);
    if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.values().next().value);
  }

  _queueAck(id) {
    this._ackIds.push(id);
    if (this._ackIds.length >= ACK_BATCH) this._flushAcks();
    else if (!this._ackTimer) this._ackTimer = setTimeout(() => this._flushAcks(), ACK_DELAY_MS);
  }

  async _flushAcks() {
    clearTimeout(this._ackTimer);
    this._ackTimer = null;
    const conn = this.conn;
    if (!this._ackIds.length || !conn || conn.isClosed) return; // kept for the next connection
    const ids = this._ackIds.splice(0, 1000);
    try {
      await conn.request("deliveryAck", { ids });
    } catch (e) {
      if (e instanceof ConnectionLost) this._ackIds.unshift(...ids);
    }
    if (this._ackIds.length && !this._ackTimer) this._ackTimer = setTimeout(() => this._flushAcks(), ACK_DELAY_MS);
  }

  async _flushOutbox() {
    if (this._flushing) return;
    this._flushing = true;
    try {
      while (this.outbox.length && this.state === "online" && this.conn && !this.stopped) {
        const item = this.outbox[0];
        const body = { type: item.type || 1, text: item.text, clientMsgId: item.clientMsgId };
        if (item.group) body.group = item.group;
        else body.to = item.to;
        if (item.ext) body.ext = item.ext;
        try {
          const { sent = {} } = await this.conn.request(item.group ? "groupSend" : "send", body);
          if (sent.sendEpoch) this.sendEpoch = sent.sendEpoch;
          const messageId = String(sent.messageId || "0");
          this._remember(messageId); // our own send: a later sync need not deliver it again
          this._dropFromOutbox(item);
          this._emit("sent", { clientMsgId: item.clientMsgId, messageId, timestamp: sent.timestamp, seq: String(sent.seq || "0"), duplicate: !!sent.duplicate, item });
        } catch (e) {
          if (e instanceof ConnectionLost) break; // retried after the reconnect
          if (e instanceof ProtocolError && RETRY_SEND.has(e.code)) {
            await new Promise((r) => setTimeout(r, Math.max(500, e.retryAfter * 1000)));
            continue;
          }
          this._dropFromOutbox(item);
          this._emit("sendfailed", { clientMsgId: item.clientMsgId, error: e, item });
        }
      }
    } finally {
      this._flushing = false;
    }
  }

  _dropFromOutbox(item) {
    this.outbox = this.outbox.filter((o) => o.clientMsgId !== item.clientMsgId);
    this._saveOutbox();
  }

  _saveOutbox() {
    this.storage.set(this.user, "outbox", this.outbox);
  }

  _saveCursor() {
    this.storage.set(this.user, "cursor", this.cursor);
  }

  _startKeepalive(conn) {
    this._stopKeepalive();
    this._keepalive = setInterval(() => {
      conn.request("ping", {}, KEEPALIVE_TIMEOUT_MS).catch(() => {});
    }, KEEPALIVE_MS);
  }

  _stopKeepalive() {
    clearInterval(this._keepalive);
    this._keepalive = null;
  }

  /** Full-jitter exponential backoff, interruptible by reconnectNow(). */
  _sleepBackoff() {
    const [base, cap] = this.backoff;
    const delay = this.random() * Math.min(cap, base * 2 ** Math.min(this.attempt, 16));
    this.nextRetryAt = Date.now() + delay;
    return new Promise((resolve) => {
      const timer = setTimeout(done, delay);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this._wake = done;
    }).finally(() => {
      this._wake = null;
      this.nextRetryAt = 0;
    });
  }

  _wakeUp() {
    if (this._wake) this._wake();
  }
}

function normPresence(p) {
  return { user: p.user || "", online: !!p.online, since: String(p.since || "0"), devices: Number(p.devices || 0) };
}
