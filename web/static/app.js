// timnode web client: the UI. Protocol and reconnect logic live in client.js.
//
// Everything user-controlled (names, message text, error text) reaches the DOM through
// textContent / attributes only, never innerHTML.
//
// Conversations are keyed by a conversation key: the peer's user name for 1:1, "g:<group id>"
// for groups (":" cannot occur in user names). 1:1: typing indicators both ways, read
// markers (`read` / type 6 events: "read" ticks), delivery ticks. Groups: groupCreate /
// invite / join (open groups) / leave, `groupMessage` pushes, catch-up with `myGroups` +
// `groupSync` after every (re)connect, notices (types 16-30) as small lines, unread counts
// from the node's read position (`groupRead`). System messages (type 2, no sender) go to a
// banner.

import { ChatClient, ConnectionLost, ProtocolError, Storage, cmpId, maxId, nodeUrl } from "./client.js";

const CAPABILITIES = { groups: true, typing: true, read: true };
const TYPING_RESEND_MS = 3000; // re-send "typing" this often while the user types
const TYPING_IDLE_MS = 5000; // no keystroke for this long: "stopped typing"
const SYSTEM_MAX = 5;
const GROUP_PAGE = 500;
const T_SYSTEM = 2;
const T_RECALL = 3;
const T_EDIT = 4;
const T_READ = 6;
const isNotice = (type) => type >= 16 && type <= 30;
const HISTORY_PAGE = 50;
const USER_RE = /^[A-Za-z0-9._@-]{1,64}$/;
const DELIVERED_MAX = 5000;

const KICK_TEXT = {
  REPLACED: "signed in from another tab or window",
  DEVICE_LIMIT_KICK: "signed out: too many devices",
  ADMIN: "closed by an administrator",
};

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

const storage = new Storage();
const url = nodeUrl(location);
let client = null;

// ------------------------------------------------------------------ state
const state = {
  me: "",
  contacts: [], // user names, in the order added (sorted for display by activity)
  meta: {}, // name -> {lastText, lastTs, lastId}
  unread: {}, // name -> count
  presence: new Map(), // name -> {online, since, devices} | undefined (unknown)
  convs: new Map(), // convKey -> Conversation
  delivered: new Set(), // message ids a recipient acknowledged (ours)
  groups: {}, // group id -> {name, role, lastSeq, memberCount, members: [names]}
  readMarks: {}, // peer -> their read marker on our messages (id)
  myRead: {}, // peer -> our read marker sent for their messages (id)
  typing: new Map(), // user -> {timer}
  system: [], // [{id, text, timestamp}] newest last
  open: "", // open convKey
  seq: 0,
};

const groupKey = (gid) => `g:${gid}`;
const isGroupKey = (key) => key.startsWith("g:");

class Conversation {
  constructor(key) {
    this.key = key;
    this.kind = isGroupKey(key) ? "group" : "direct";
    this.group = this.kind === "group" ? key.slice(2) : "";
    this.peer = this.kind === "group" ? "" : key;
    this.cursor = "0"; // groups: afterSeq of the next groupSync
    this.byId = new Map(); // message id -> msg
    this.pending = new Map(); // clientMsgId -> msg (ours, no id yet)
    this.historyBefore = "0";
    this.historyMore = true;
    this.historyStarted = false;
    this.loading = false;
  }

  /** Add a message; returns "new", "merged" (our pending send got its id) or "" (known). */
  add(m) {
    const id = String(m.id || "0");
    if (id !== "0" && this.byId.has(id)) return "";
    const cmid = m.clientMsgId || "";
    if (m.from === state.me && cmid && this.pending.has(cmid) && (!m.fromDevice || m.fromDevice === client.device)) {
      const mine = this.pending.get(cmid);
      this.pending.delete(cmid);
      mine.id = id;
      mine.timestamp = String(m.timestamp || mine.timestamp);
      mine.seq = String(m.seq || mine.seq || "0");
      mine.state = state.delivered.has(id) ? "delivered" : "sent";
      this.byId.set(id, mine);
      updateMessageEl(mine);
      return "merged";
    }
    const msg = {
      id,
      from: m.from || "",
      to: m.to || "",
      type: Number(m.type || 0),
      text: m.text,
      data: m.data,
      ext: m.ext || {},
      timestamp: String(m.timestamp || "0"),
      clientMsgId: cmid,
      seq: String(m.seq || "0"),
      notice: isNotice(Number(m.type || 0)),
      recalled: !!m.recalled,
      edited: !!m.editedAt,
      state: m.from === state.me ? (state.delivered.has(id) ? "delivered" : "sent") : "received",
      convKey: this.key,
      el: null,
    };
    this.byId.set(id, msg);
    return "new";
  }

  addPending(item) {
    if (this.pending.has(item.clientMsgId)) return this.pending.get(item.clientMsgId);
    const msg = {
      id: "",
      from: state.me,
      to: item.to,
      type: item.type || 1,
      text: item.text,
      ext: item.ext || {},
      timestamp: String(item.createdAt || Date.now()),
      clientMsgId: item.clientMsgId,
      state: "pending",
      convKey: this.key,
      item,
      order: ++state.seq,
      el: null,
    };
    this.pending.set(item.clientMsgId, msg);
    return msg;
  }

  sorted() {
    const byGroupSeq = (a, b) => cmpId(a.seq, b.seq) || cmpId(a.id, b.id);
    const known = [...this.byId.values()].sort(this.kind === "group" ? byGroupSeq : (a, b) => cmpId(a.id, b.id));
    const pending = [...this.pending.values()].sort((a, b) => a.order - b.order);
    return known.concat(pending);
  }
}

/** The conversation for a key: a user name or "g:<group id>". */
function conv(key) {
  let c = state.convs.get(key);
  if (!c) {
    c = new Conversation(key);
    state.convs.set(key, c);
    for (const item of client?.outbox || []) if (itemKey(item) === key) c.addPending(item);
  }
  return c;
}
const itemKey = (item) => (item.group ? groupKey(item.group) : item.to);

// ------------------------------------------------------------------ persistence (per user)
function loadUserState(user) {
  state.me = user;
  state.contacts = storage.get(user, "contacts", []) || [];
  state.meta = storage.get(user, "meta", {}) || {};
  state.unread = storage.get(user, "unread", {}) || {};
  state.delivered = new Set(storage.get(user, "delivered", []) || []);
  state.groups = storage.get(user, "groups", {}) || {};
  state.readMarks = storage.get(user, "readMarks", {}) || {};
  state.myRead = storage.get(user, "myRead", {}) || {};
  state.system = [];
  groupUnread.clear();
  for (const t of state.typing.values()) clearTimeout(t.timer);
  state.typing = new Map();
  state.presence = new Map();
  state.convs = new Map();
  state.open = "";
}
const saveContacts = () => {
  storage.set(state.me, "contacts", state.contacts);
  storage.set(state.me, "meta", state.meta);
};
const saveUnread = () => storage.set(state.me, "unread", state.unread);
const saveGroups = () => storage.set(state.me, "groups", state.groups);
const saveReadMarks = () => {
  storage.set(state.me, "readMarks", state.readMarks);
  storage.set(state.me, "myRead", state.myRead);
};
// Delivered ticks are known only from `delivered` pushes (protocol §5), so they are kept
// locally: saved 200 ms after the last push, and at once when the page goes away.
let deliveredSaveTimer = null;
function writeDelivered() {
  clearTimeout(deliveredSaveTimer);
  deliveredSaveTimer = null;
  let ids = [...state.delivered];
  if (ids.length > DELIVERED_MAX) {
    ids = ids.slice(-DELIVERED_MAX);
    state.delivered = new Set(ids);
  }
  storage.set(state.me, "delivered", ids);
}
function saveDelivered() {
  clearTimeout(deliveredSaveTimer);
  deliveredSaveTimer = setTimeout(writeDelivered, 200);
}
window.addEventListener("pagehide", () => {
  if (deliveredSaveTimer !== null) writeDelivered();
});

// ------------------------------------------------------------------ formatting
function fmtTime(ms) {
  const d = new Date(Number(ms));
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
function fmtDay(ms) {
  const d = new Date(Number(ms));
  const today = new Date();
  const yesterday = new Date(Date.now() - 86_400_000);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return d.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
}
function preview(m) {
  if (typeof m.text === "string") return m.text;
  const kind = m.ext?.kind;
  return kind ? `[${kind}]` : `[type ${m.type} data]`;
}
function b64len(s) {
  if (!s) return 0;
  const pad = s.endsWith("==") ? 2 : s.endsWith("=") ? 1 : 0;
  return Math.floor((s.length * 3) / 4) - pad;
}

// ------------------------------------------------------------------ views
function showView(view) {
  $("app").dataset.view = view;
  $("login-view").hidden = view !== "login";
  $("chat-view").hidden = view !== "chat";
}

function setLoginError(text) {
  $("login-error").textContent = text || "";
  $("login-error").hidden = !text;
}

function setBusy(busy) {
  $("login-btn").disabled = busy;
  $("register-btn").disabled = busy;
}

function renderStatus(detail = {}) {
  const s = $("status");
  const st = client?.state || "offline";
  s.dataset.state = st;
  s.dataset.attempt = String(client?.attempt || 0);
  const labels = {
    offline: "offline",
    connecting: "connecting…",
    online: "online",
    reconnecting: "reconnecting…",
    stopped: "disconnected",
  };
  let text = labels[st] || st;
  if (st === "stopped" && detail.error) text = KICK_TEXT[detail.error.code] || `disconnected: ${detail.error.message}`;
  s.replaceChildren(document.createTextNode(text));
  if (st === "reconnecting" || st === "stopped" || (st === "connecting" && client?.attempt)) {
    const b = el("button", "ghost", st === "stopped" ? "Reconnect" : "Retry now");
    b.type = "button";
    b.id = "retry-btn";
    b.addEventListener("click", () => client?.reconnectNow());
    s.append(b);
  }
  $("composer-input").placeholder = st === "online" ? "Write a message" : "Write a message (sent when back online)";
}

function updateTitle() {
  const total = Object.values(state.unread).reduce((a, b) => a + (b || 0), 0);
  document.title = total ? `(${total}) timnode` : "timnode";
}

// -- contacts and groups

function ensureContact(name, { fromMessage = false } = {}) {
  if (!name || name === state.me) return false;
  if (state.contacts.includes(name)) return false;
  state.contacts.push(name);
  state.meta[name] = state.meta[name] || {};
  saveContacts();
  client?.watch([name]);
  if (fromMessage) renderContacts();
  return true;
}

/** Every conversation key of the sidebar, newest activity first. */
function contactOrder() {
  const keys = [...state.contacts, ...Object.keys(state.groups).map(groupKey)];
  const ts = (k) => BigInt(state.meta[k]?.lastTs || "0");
  return keys.sort((a, b) => {
    const ta = ts(a);
    const tb = ts(b);
    if (ta !== tb) return tb > ta ? 1 : -1;
    return cmpId(state.meta[b]?.lastId, state.meta[a]?.lastId) || a.localeCompare(b);
  });
}

function convTitle(key) {
  if (!isGroupKey(key)) return key;
  const g = state.groups[key.slice(2)];
  return g?.name || key.slice(2);
}

function renderContacts() {
  const list = $("contacts");
  const items = contactOrder().map((key) => {
    const group = isGroupKey(key);
    const name = convTitle(key);
    const li = el("li", group ? "contact group" : "contact");
    if (group) li.dataset.group = key.slice(2);
    else li.dataset.user = key;
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", String(state.open === key));
    li.tabIndex = 0;
    const avatar = el("span", "avatar", group ? "#" : name.slice(0, 1));
    if (!group) {
      const dot = el("span", "dot");
      const p = state.presence.get(key);
      dot.dataset.online = p === undefined ? "unknown" : String(!!p.online);
      dot.title = p === undefined ? "presence unknown" : p.online ? "online" : "offline";
      avatar.append(dot);
    }
    const body = el("span", "body");
    body.append(el("span", "name", name), el("span", "preview", state.meta[key]?.lastText || ""));
    const count = state.unread[key] || 0;
    const badge = el("span", "badge", String(count));
    badge.dataset.count = String(count);
    badge.setAttribute("aria-label", `${count} unread`);
    li.append(avatar, body, badge);
    li.addEventListener("click", () => openConversation(key));
    li.addEventListener("keydown", (e) => {
      if (e.key === "Enter") openConversation(key);
    });
    return li;
  });
  list.replaceChildren(...items);
  $("contacts-empty").hidden = items.length > 0;
  updateTitle();
}

function renderConvHeader() {
  const c = state.convs.get(state.open);
  const key = c?.key || "";
  const group = c?.kind === "group";
  $("conversation").dataset.peer = key;
  $("conversation").dataset.kind = c?.kind || "";
  $("conv-name").textContent = key ? convTitle(key) : "";
  const dot = $("conv-presence");
  dot.hidden = group;
  $("group-tools").hidden = !group;
  let sub = "";
  if (group) {
    const g = state.groups[c.group] || {};
    const members = g.members || [];
    const count = g.memberCount || members.length;
    sub = `${count} member${count === 1 ? "" : "s"}`;
    if (members.length) sub += `: ${members.join(", ")}`;
    $("conv-sub").title = `group id ${c.group}`;
    $("group-id").textContent = c.group;
  } else {
    const p = state.presence.get(c?.peer || "");
    dot.dataset.online = p === undefined ? "unknown" : String(!!p.online);
    if (p === undefined) sub = "";
    else if (p.online) sub = p.devices > 1 ? `online on ${p.devices} devices` : "online";
    else sub = "offline";
    $("conv-sub").title = "";
  }
  $("conv-sub").textContent = sub;
  $("chat-view").classList.toggle("open", !!key);
  renderTyping();
}

// -- typing (1:1)

function renderTyping() {
  const c = state.convs.get(state.open);
  const box = $("typing");
  const who = c?.kind === "direct" && state.typing.has(c.peer) ? c.peer : "";
  box.textContent = who ? `${who} is typing…` : "";
  box.dataset.user = who;
  box.hidden = !who;
}

function setTyping(user, active, ttlMs = 10_000) {
  const old = state.typing.get(user);
  if (old) clearTimeout(old.timer);
  if (active) {
    const timer = setTimeout(() => setTyping(user, false), Math.max(1000, ttlMs));
    state.typing.set(user, { timer });
  } else {
    state.typing.delete(user);
  }
  renderTyping();
}

const outgoingTyping = { to: "", sentAt: 0, idle: null };

function onComposerInput() {
  autoGrow();
  const c = state.convs.get(state.open);
  if (!client || c?.kind !== "direct") return;
  const text = $("composer-input").value;
  if (!text.trim()) return stopTyping();
  const now = Date.now();
  if (outgoingTyping.to !== c.peer || now - outgoingTyping.sentAt > TYPING_RESEND_MS) {
    if (outgoingTyping.to && outgoingTyping.to !== c.peer) stopTyping();
    outgoingTyping.to = c.peer;
    outgoingTyping.sentAt = now;
    client.typing(c.peer, true);
  }
  clearTimeout(outgoingTyping.idle);
  outgoingTyping.idle = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(outgoingTyping.idle);
  if (outgoingTyping.to && client) client.typing(outgoingTyping.to, false);
  outgoingTyping.to = "";
  outgoingTyping.sentAt = 0;
}

// -- read markers (1:1)

/** Send `read` up to the newest message from the peer when the conversation is visible. */
function markReadIfVisible() {
  const c = state.convs.get(state.open);
  if (!client || !c || document.visibilityState !== "visible") return;
  if (c.kind === "group") return markGroupRead(c);
  let newest = "0";
  for (const msg of c.byId.values()) if (msg.from === c.peer) newest = maxId(newest, msg.id);
  if (newest === "0" || cmpId(newest, state.myRead[c.peer]) <= 0) return;
  state.myRead[c.peer] = newest;
  saveReadMarks();
  client.markRead(c.peer, newest).catch((e) => console.warn("read failed", e));
}

function markGroupRead(c) {
  const g = state.groups[c.group];
  if (!g) return;
  let last = g.lastSeq || "0";
  for (const msg of c.byId.values()) last = maxId(last, msg.seq);
  if (cmpId(last, g.readSent) <= 0) return;
  g.readSent = last;
  client.groupRead(c.group, last).catch((e) => {
    g.readSent = "0";
    if (!(e instanceof ConnectionLost)) console.warn("groupRead failed", e);
  });
}

/** A TYPE_READ event: the peer read our messages up to `ref`, or we did on another device. */
function onReadEvent(m) {
  const ref = String(m.ref || "0");
  if (m.from === state.me) {
    const peer = m.to;
    state.myRead[peer] = maxId(state.myRead[peer], ref);
    if (state.unread[peer]) {
      state.unread[peer] = 0;
      saveUnread();
      renderContacts();
    }
  } else if (m.from) {
    const peer = m.from;
    state.readMarks[peer] = maxId(state.readMarks[peer], ref);
    const c = state.convs.get(peer);
    for (const msg of c?.byId.values() || []) updateMessageEl(msg);
  }
  saveReadMarks();
}

// -- messages

function messageEl(msg) {
  if (msg.el) return msg.el;
  if (msg.notice) {
    const li = el("li", "notice");
    li.append(el("span", "notice-text", noticeText(msg)));
    li.dataset.id = msg.id || "";
    li.dataset.type = String(msg.type);
    li.title = new Date(Number(msg.timestamp)).toLocaleString();
    msg.el = li;
    return li;
  }
  const li = el("li", "msg");
  const mine = msg.from === state.me;
  if (mine) li.classList.add("mine");
  const c = state.convs.get(msg.convKey || "");
  if (!mine && c?.kind === "group") li.append(el("div", "from", msg.from));
  let body;
  if (msg.recalled) body = el("div", "text recalled", "message recalled");
  else if (typeof msg.text === "string") body = el("div", "text", msg.text);
  else body = el("div", "data", `${preview(msg)} · ${b64len(msg.data)} bytes`);
  const meta = el("div", "meta");
  if (msg.edited && !msg.recalled) meta.append(el("span", "edited", "edited"));
  const time = el("time", "time", fmtTime(msg.timestamp));
  meta.append(time);
  if (mine) meta.append(el("span", "tick"));
  li.append(body, meta);
  msg.el = li;
  updateMessageEl(msg);
  return li;
}

function noticeText(msg) {
  if (typeof msg.text === "string" && msg.text) return msg.text;
  const who = msg.ext?.user || msg.from || "someone";
  const texts = { 16: `${msg.from} created the group`, 18: "the group was dissolved", 19: `${who} joined`, 20: `${who} left`, 21: `${who} was removed`, 22: `${who} was banned` };
  return texts[msg.type] || `group notice (type ${msg.type})`;
}

function isRead(msg) {
  if (msg.from !== state.me || !msg.id || msg.notice) return false;
  const c = state.convs.get(msg.convKey || "");
  if (!c || c.kind !== "direct") return false;
  return cmpId(msg.id, state.readMarks[c.peer]) <= 0;
}

function updateMessageEl(msg) {
  const li = msg.el;
  if (!li || msg.notice) return;
  li.dataset.id = msg.id || "";
  li.dataset.cmid = msg.clientMsgId || "";
  li.dataset.state = msg.state;
  li.dataset.from = msg.from;
  const read = isRead(msg);
  li.dataset.read = String(read);
  const time = li.querySelector("time");
  time.textContent = fmtTime(msg.timestamp);
  time.dateTime = new Date(Number(msg.timestamp)).toISOString();
  time.title = new Date(Number(msg.timestamp)).toLocaleString();
  const tick = li.querySelector(".tick");
  if (tick) {
    const ticks = { pending: "…", sent: "✓", delivered: "✓✓", failed: "!" };
    const titles = { pending: "sending", sent: "sent", delivered: "delivered", failed: `not sent: ${msg.error || ""}` };
    tick.textContent = read ? "✓✓" : ticks[msg.state] || "";
    tick.title = read ? "read" : titles[msg.state] || "";
    li.querySelector(".retry")?.remove();
    if (msg.state === "failed") {
      const b = el("button", "retry ghost", "Retry");
      b.type = "button";
      b.addEventListener("click", () => {
        msg.state = "pending";
        msg.error = "";
        updateMessageEl(msg);
        client.retry(msg.item);
      });
      li.querySelector(".meta").append(b);
    }
  }
}

/** Re-render the open conversation. mode: "bottom" (stick to newest), "prepend" (keep view). */
function renderMessages(mode = "auto") {
  const c = state.convs.get(state.open);
  const box = $("messages");
  const list = $("message-list");
  if (!c) {
    list.replaceChildren();
    return;
  }
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  const prevHeight = box.scrollHeight;
  const prevTop = box.scrollTop;
  const nodes = [];
  let lastDay = "";
  for (const msg of c.sorted()) {
    msg.convKey = c.key;
    const day = fmtDay(msg.timestamp);
    if (day !== lastDay) {
      nodes.push(el("li", "day", day));
      lastDay = day;
    }
    nodes.push(messageEl(msg));
  }
  list.replaceChildren(...nodes);
  renderHistoryStatus(c);
  if (mode === "prepend") box.scrollTop = prevTop + (box.scrollHeight - prevHeight);
  else if (mode === "bottom" || atBottom) box.scrollTop = box.scrollHeight;
}

function renderHistoryStatus(c) {
  const s = $("history-status");
  if (c.loading) s.textContent = "Loading older messages…";
  else if (c.historyStarted && !c.historyMore) s.textContent = c.byId.size ? "Beginning of the conversation" : "No messages yet";
  else s.textContent = "";
  s.dataset.more = String(c.historyMore);
}

async function loadOlder(c) {
  if (c.kind === "group") return loadGroup(c);
  if (c.loading || !c.historyMore) return;
  c.loading = true;
  c.historyStarted = true;
  if (state.open === c.key) renderHistoryStatus(c);
  const first = c.historyBefore === "0";
  try {
    const page = await client.history(c.peer, c.historyBefore, HISTORY_PAGE);
    const msgs = page.messages || [];
    for (const m of msgs) c.add(m);
    c.historyMore = !!page.more && msgs.length > 0;
    if (page.cursor && page.cursor !== "0") c.historyBefore = String(page.cursor);
    if (msgs.length) noteActivity(c.key, msgs[msgs.length - 1], { onlyIfNewer: true });
  } catch (e) {
    if (!(e instanceof ConnectionLost)) console.warn("history failed", e);
    c.loading = false;
    if (state.open === c.key) renderHistoryStatus(c);
    return;
  }
  c.loading = false;
  if (state.open !== c.key) return;
  renderMessages(first ? "bottom" : "prepend");
  markReadIfVisible();
  // Not enough to scroll yet? Load more so the user can scroll up.
  const box = $("messages");
  if (c.historyMore && box.scrollHeight <= box.clientHeight + 80) loadOlder(c);
}

/**
 * A group's log forward from c.cursor (the whole visible log the first time: groupSync has
 * no backwards paging). Used on first open and to catch up after a reconnect.
 */
async function loadGroup(c) {
  if (c.loading) {
    c.again = true;
    return;
  }
  c.loading = true;
  c.historyStarted = true;
  if (state.open === c.key) renderHistoryStatus(c);
  let added = false;
  try {
    for (;;) {
      const page = await client.groupSync(c.group, c.cursor, GROUP_PAGE);
      for (const m of page.messages || []) {
        const result = c.add(m);
        if (result) added = true;
        if (result === "new") noteActivity(c.key, m, { onlyIfNewer: true });
      }
      c.cursor = maxId(c.cursor, page.cursor);
      const g = state.groups[c.group];
      if (g) g.lastSeq = maxId(g.lastSeq, page.lastSeq);
      if (!page.more) break;
    }
    c.historyMore = false;
  } catch (e) {
    if (!(e instanceof ConnectionLost)) console.warn("groupSync failed", e);
    if (e instanceof ProtocolError && e.code === "NOT_A_MEMBER") c.historyMore = false;
  } finally {
    c.loading = false;
  }
  if (state.open === c.key) {
    renderMessages(added ? "bottom" : "auto");
    markReadIfVisible();
  }
  renderContacts();
  if (c.again) {
    c.again = false;
    loadGroup(c);
  }
}

async function loadGroupMembers(c) {
  try {
    const names = [];
    let after = "";
    for (;;) {
      const page = await client.groupMembers(c.group, { after });
      for (const m of page.members || []) names.push(m.user);
      if (!page.more || !page.cursor) break;
      after = page.cursor;
    }
    const g = (state.groups[c.group] = state.groups[c.group] || {});
    g.members = names;
    g.memberCount = names.length;
    saveGroups();
    if (state.open === c.key) renderConvHeader();
  } catch (e) {
    if (!(e instanceof ConnectionLost)) console.warn("groupMembers failed", e);
  }
}

function openConversation(key) {
  const c = conv(key);
  if (state.open !== key) stopTyping();
  state.open = c.key;
  groupUnread.delete(key);
  if (state.unread[key]) {
    state.unread[key] = 0;
    saveUnread();
  }
  renderConvHeader();
  renderContacts();
  renderMessages("bottom");
  if (!c.historyStarted) loadOlder(c);
  else markReadIfVisible();
  if (c.kind === "group") loadGroupMembers(c);
  if (matchMedia("(min-width: 721px)").matches) $("composer-input").focus();
}

function closeConversation() {
  stopTyping();
  state.open = "";
  renderConvHeader();
  renderContacts();
  renderMessages();
}

function noteActivity(key, m, { onlyIfNewer = false } = {}) {
  const meta = (state.meta[key] = state.meta[key] || {});
  const id = String(m.id || "0");
  if (onlyIfNewer && meta.lastId && id !== "0" && cmpId(id, meta.lastId) <= 0) return;
  if (id !== "0") meta.lastId = maxId(meta.lastId, id);
  const group = isGroupKey(key);
  const mine = m.from === state.me;
  if (isNotice(Number(m.type || 0))) meta.lastText = noticeText({ ...m, type: Number(m.type) });
  else meta.lastText = (mine ? "You: " : group && m.from ? `${m.from}: ` : "") + preview(m);
  meta.lastTs = String(m.timestamp || Date.now());
  saveContacts();
}

// -- system messages (type 2)

function addSystem(m) {
  const id = String(m.id || "0");
  if (state.system.some((s) => s.id === id)) return;
  state.system.push({ id, text: typeof m.text === "string" ? m.text : preview(m), timestamp: String(m.timestamp || Date.now()) });
  state.system.sort((a, b) => cmpId(a.id, b.id));
  while (state.system.length > SYSTEM_MAX) state.system.shift();
  renderSystem();
}

function renderSystem() {
  const list = $("system-list");
  list.replaceChildren(
    ...state.system.map((s) => {
      const li = el("li", "system-line");
      li.dataset.id = s.id;
      li.append(el("strong", "", "System: "), el("span", "system-text", s.text), el("time", "muted", fmtTime(s.timestamp)));
      return li;
    }),
  );
  $("system-banner").hidden = state.system.length === 0;
}

// -- groups

function rememberGroup(info) {
  const gid = info.group;
  if (!gid) return null;
  const g = (state.groups[gid] = state.groups[gid] || {});
  if (info.name) g.name = info.name;
  if (info.role) g.role = info.role;
  if (info.memberCount) g.memberCount = Number(info.memberCount);
  g.lastSeq = maxId(g.lastSeq, info.lastSeq);
  saveGroups();
  return g;
}

let groupsRefreshing = null;
/** After every (re)connect: myGroups, unread badges from the node, groupSync what is behind. */
async function refreshGroups() {
  if (groupsRefreshing) return groupsRefreshing;
  groupsRefreshing = (async () => {
    try {
      const list = await client.myGroups();
      const seen = new Set();
      for (const s of list) {
        seen.add(s.group);
        const g = rememberGroup(s);
        const key = groupKey(s.group);
        const c = state.convs.get(key);
        const open = state.open === key;
        if (c?.historyStarted && cmpId(c.cursor, s.lastSeq) < 0) loadGroup(c);
        if (open || !Number(s.unread || 0)) {
          groupUnread.delete(key);
          state.unread[key] = 0;
        } else {
          countGroupUnread(s.group, String(s.readSeq || "0")); // also refreshes the preview
        }
        if (!c?.historyStarted && !Number(s.unread || 0) && cmpId(g.previewSeq, s.lastSeq) < 0) {
          loadGroupPreview(s.group, s.lastSeq);
        }
      }
      for (const gid of Object.keys(state.groups)) {
        if (!seen.has(gid)) {
          delete state.groups[gid]; // left, kicked or dissolved (and read)
          if (state.open === groupKey(gid)) closeConversation();
        }
      }
      saveGroups();
      saveUnread();
      renderContacts();
      if (state.convs.get(state.open)?.kind === "group") renderConvHeader();
    } catch (e) {
      if (!(e instanceof ConnectionLost)) console.warn("myGroups failed", e);
    } finally {
      groupsRefreshing = null;
    }
  })();
  return groupsRefreshing;
}

// Unread group messages (ids) per conversation key: messages from others, notices excluded
// (the node's `unread` counts notices too: it only says which groups to look at).
const groupUnread = new Map();
const isCounted = (m) => m.from !== state.me && !isNotice(Number(m.type || 0)) && m.seq && m.seq !== "0";

function addGroupUnread(key, id) {
  const ids = groupUnread.get(key) || new Set();
  ids.add(String(id));
  groupUnread.set(key, ids);
  state.unread[key] = ids.size;
  saveUnread();
}

/** Count a group's unread messages after the node's read position (a few pages at most). */
async function countGroupUnread(gid, readSeq) {
  const key = groupKey(gid);
  try {
    let after = readSeq;
    const ids = new Set();
    let last = null;
    for (let i = 0; i < 4; i++) {
      const page = await client.groupSync(gid, after, GROUP_PAGE);
      for (const m of page.messages || []) {
        if (isCounted(m)) ids.add(String(m.id));
        last = m;
      }
      after = maxId(after, page.cursor);
      if (!page.more) break;
    }
    if (state.open === key) return;
    const merged = new Set([...ids, ...(groupUnread.get(key) || [])].filter((id) => ids.has(id) || cmpId(id, last?.id) > 0));
    groupUnread.set(key, merged);
    state.unread[key] = merged.size;
    if (last) noteActivity(key, last, { onlyIfNewer: true });
    saveUnread();
    renderContacts();
  } catch (e) {
    if (!(e instanceof ConnectionLost)) console.warn("group unread count failed", e);
  }
}

/** The newest message of a group not opened yet, for the sidebar preview. */
async function loadGroupPreview(gid, lastSeq) {
  try {
    const after = (BigInt(lastSeq || "1") - 1n).toString();
    const page = await client.groupSync(gid, after, 1);
    const m = (page.messages || [])[0];
    const g = state.groups[gid];
    if (g) g.previewSeq = String(lastSeq);
    if (m) noteActivity(groupKey(gid), m, { onlyIfNewer: true });
    saveGroups();
    renderContacts();
  } catch (e) {
    if (!(e instanceof ConnectionLost)) console.warn("group preview failed", e);
  }
}

function onGroupMessage(m) {
  const gid = m.group;
  if (!gid) return;
  const key = groupKey(gid);
  const known = !!state.groups[gid];
  const g = rememberGroup({ group: gid, lastSeq: m.seq });
  const type = Number(m.type || 0);
  if (!known || type === 17 || type === 19 || type === 20 || type === 21 || type === 22) {
    refreshGroups(); // a new group (invited) or a membership change: names and counts
    const c0 = state.convs.get(key);
    if (c0 && state.open === key) loadGroupMembers(c0);
  }
  const c = conv(key);
  let result = "new";
  if (c.historyStarted || (m.from === state.me && c.pending.has(m.clientMsgId || ""))) {
    result = c.add(m);
    if (!result) return;
    if (m.seq && m.seq !== "0" && cmpId(m.seq, c.cursor) > 0 && !c.loading) {
      // pushes arrive in seq order; a gap (seq not dense) is closed by the next catch-up
      c.cursor = String(m.seq);
    }
  }
  if (g) g.previewSeq = maxId(g.previewSeq, m.seq);
  noteActivity(key, m, { onlyIfNewer: true });
  const open = state.open === key;
  if (result === "new" && !open && isCounted(m)) addGroupUnread(key, m.id);
  if (open) {
    renderMessages();
    markReadIfVisible();
  }
  renderContacts();
}

async function onCreateGroup(event) {
  event.preventDefault();
  const name = $("group-name-input").value.trim();
  const members = $("group-members-input")
    .value.split(/[\s,]+/)
    .map((s) => s.trim())
    .filter((s) => s && s !== state.me);
  const bad = members.find((u) => !USER_RE.test(u));
  let problem = "";
  if (!name) problem = "Give the group a name.";
  else if (bad) problem = `"${bad}" is not a user name.`;
  if (problem) return setGroupError(problem);
  setGroupError("");
  $("group-create-btn").disabled = true;
  try {
    const info = await client.groupCreate(name, members);
    rememberGroup(info);
    $("group-name-input").value = "";
    $("group-members-input").value = "";
    noteActivity(groupKey(info.group), { from: state.me, type: 16, text: `You created ${name}`, timestamp: info.createdAt });
    openConversation(groupKey(info.group));
  } catch (e) {
    setGroupError(describe(e));
  } finally {
    $("group-create-btn").disabled = false;
  }
}

async function onJoinGroup(event) {
  event.preventDefault();
  const gid = $("join-group-input").value.trim();
  if (!gid) return;
  setGroupError("");
  try {
    await client.groupMember(gid, "GROUP_APPLY");
    $("join-group-input").value = "";
    await refreshGroups();
    if (state.groups[gid]) openConversation(groupKey(gid));
    else setGroupError("Applied: an admin of the group has to approve it.");
  } catch (e) {
    setGroupError(e instanceof ProtocolError && e.code === "NOT_A_MEMBER" ? "No such group." : describe(e));
  }
}

async function onInvite(event) {
  event.preventDefault();
  const c = state.convs.get(state.open);
  const user = $("invite-input").value.trim();
  if (!c || c.kind !== "group" || !user) return;
  const err = $("invite-error");
  err.hidden = true;
  if (!USER_RE.test(user)) {
    err.textContent = "Not a user name.";
    err.hidden = false;
    return;
  }
  try {
    await client.groupMember(c.group, "GROUP_INVITE", { user });
    $("invite-input").value = "";
    loadGroupMembers(c);
  } catch (e) {
    err.textContent = e instanceof ProtocolError && e.code === "NOT_FOUND" ? `No user "${user}".` : describe(e);
    err.hidden = false;
  }
}

async function onLeaveGroup() {
  const c = state.convs.get(state.open);
  if (!c || c.kind !== "group") return;
  try {
    await client.groupMember(c.group, "GROUP_LEAVE");
  } catch (e) {
    $("invite-error").textContent = describe(e);
    $("invite-error").hidden = false;
    return;
  }
  delete state.groups[c.group];
  delete state.unread[c.key];
  state.convs.delete(c.key);
  saveGroups();
  saveUnread();
  closeConversation();
}

function setGroupError(text) {
  $("group-error").textContent = text || "";
  $("group-error").hidden = !text;
}

// ------------------------------------------------------------------ client events
function wireClient(c) {
  c.addEventListener("state", (e) => {
    renderStatus(e.detail);
    if (e.detail.state === "online") {
      refreshGroups();
      markReadIfVisible();
    }
  });
  c.addEventListener("message", (e) => onMessage(e.detail));
  c.addEventListener("groupmessage", (e) => onGroupMessage(e.detail.message));
  c.addEventListener("typing", (e) => {
    const { user, active, ttlMs } = e.detail;
    if (user && user !== state.me) setTyping(user, active, ttlMs);
  });
  c.addEventListener("presence", (e) => {
    const p = e.detail.presence;
    state.presence.set(p.user, p);
    renderContacts();
    if (state.convs.get(state.open)?.peer === p.user) renderConvHeader();
  });
  c.addEventListener("presenceunknown", () => {
    state.presence.clear();
    for (const user of [...state.typing.keys()]) setTyping(user, false);
    renderContacts();
    renderConvHeader();
  });
  c.addEventListener("delivered", (e) => {
    let changed = false;
    for (const id of e.detail.ids) {
      state.delivered.add(id);
      for (const cv of state.convs.values()) {
        const msg = cv.byId.get(id);
        if (msg && msg.from === state.me && msg.state !== "delivered") {
          msg.state = "delivered";
          updateMessageEl(msg);
          changed = true;
        }
      }
    }
    saveDelivered();
    if (changed) renderMessages();
  });
  c.addEventListener("sent", (e) => {
    const { item, messageId, timestamp, seq } = e.detail;
    const cv = conv(itemKey(item));
    const msg = cv.pending.get(item.clientMsgId);
    if (msg) {
      cv.add({ id: messageId, from: state.me, to: item.to, group: item.group, seq, clientMsgId: item.clientMsgId, timestamp, fromDevice: c.device });
      updateMessageEl(msg);
      noteActivity(cv.key, { ...msg });
    }
    if (item.group && seq && seq !== "0") {
      rememberGroup({ group: item.group, lastSeq: seq });
      if (cv.historyStarted && !cv.loading && cmpId(seq, cv.cursor) > 0) cv.cursor = seq;
    }
    if (state.open === cv.key) renderMessages();
    renderContacts();
  });
  c.addEventListener("sendfailed", (e) => {
    const { item, error } = e.detail;
    const cv = conv(itemKey(item));
    const msg = cv.pending.get(item.clientMsgId);
    if (!msg) return;
    msg.state = "failed";
    const reasons = { NOT_FOUND: `no user "${item.to}"`, NOT_A_MEMBER: "you are not a member of this group", MUTED: "you are muted in this group", GROUP_DISSOLVED: "the group was dissolved" };
    msg.error = reasons[error.code] || error.message || String(error);
    updateMessageEl(msg);
  });
  c.addEventListener("kicked", (e) => {
    console.warn("kicked", e.detail.reason, e.detail.message);
  });
  c.addEventListener("authfailed", () => {
    backToLogin("Your session expired. Please log in again.");
  });
}

function onMessage({ message: m, initial }) {
  const type = Number(m.type || 0);
  if (type === T_SYSTEM || (!m.from && type < 32)) return addSystem(m);
  if (type === T_READ) return onReadEvent(m);
  const peer = m.from === state.me ? m.to : m.from;
  if (!peer) return;
  if (type === T_RECALL || type === T_EDIT) return onChangeEvent(peer, m);
  if (type > 2 && type < 32) return; // other engine events (burn, friends): not shown here
  ensureContact(peer);
  if (m.from === peer && state.typing.has(peer)) setTyping(peer, false); // sent: no longer typing
  const c = conv(peer);
  // A conversation that was never opened keeps no messages: opening it loads the newest
  // page of history (which has these). Our own pending sends are still matched up.
  let result = "new";
  if (c.historyStarted || (m.from === state.me && c.pending.has(m.clientMsgId || ""))) {
    result = c.add(m);
    if (!result) return;
  }
  noteActivity(peer, m, { onlyIfNewer: true });
  const isOpen = state.open === c.key;
  if (result === "new" && m.from !== state.me && !isOpen && !initial && cmpId(m.id, state.myRead[peer]) > 0) {
    state.unread[peer] = (state.unread[peer] || 0) + 1;
    saveUnread();
  }
  if (isOpen) {
    renderMessages();
    markReadIfVisible();
  }
  renderContacts();
}

/** TYPE_RECALL / TYPE_EDIT: change the message `ref` in place. */
function onChangeEvent(peer, m) {
  const c = state.convs.get(peer);
  const msg = c?.byId.get(String(m.ref || "0"));
  if (!msg) return;
  if (Number(m.type) === T_RECALL) msg.recalled = true;
  else {
    msg.text = m.text;
    msg.edited = true;
  }
  msg.el = null;
  if (state.open === c.key) renderMessages();
}

// ------------------------------------------------------------------ login / logout
async function startSession(creds, { resume = false } = {}) {
  loadUserState(creds.user);
  client = new ChatClient(url, { storage });
  wireClient(client);
  $("me-name").textContent = creds.user;
  for (const name of state.contacts) client.watched.add(name);
  if (resume) enterChat();
  try {
    await client.start(creds, { waitForNetwork: resume });
  } catch (e) {
    client = null;
    if (resume) backToLogin(e instanceof ProtocolError && e.code === "AUTH_FAILED" ? "Your session expired. Please log in again." : describe(e));
    throw e;
  }
  if (!resume) enterChat();
  for (const item of client.outbox) conv(itemKey(item)).addPending(item);
  renderContacts();
}

function enterChat() {
  showView("chat");
  renderSystem();
  renderContacts();
  renderConvHeader();
  renderStatus();
}

function backToLogin(message = "") {
  if (client) {
    client.stop();
    client = null;
  }
  showView("login");
  setLoginError(message);
  $("login-user").value = state.me || storage.get(null, "lastUser", "") || "";
  $("login-password").value = "";
  document.title = "timnode";
}

function describe(e) {
  if (e instanceof ProtocolError) {
    switch (e.code) {
      case "AUTH_FAILED":
        return e.retryAfter ? `Too many attempts. Try again in ${Math.ceil(e.retryAfter)} s.` : "Wrong user name or password.";
      case "CONFLICT":
        return "That user name is taken.";
      case "BAD_REQUEST":
        return e.message || "Invalid user name or password.";
      case "DEVICE_LIMIT":
        return "Too many devices are logged in to this account.";
      case "RATE_LIMITED":
        return "Slow down a little and try again.";
      default:
        return e.message || e.code;
    }
  }
  return `Cannot reach the node (${url}).`;
}

async function onLoginSubmit(event) {
  event.preventDefault();
  const register = event.submitter?.value === "register";
  const user = $("login-user").value.trim();
  const password = $("login-password").value;
  if (!USER_RE.test(user)) return setLoginError("User names are 1–64 letters, digits or . _ @ -");
  if (new TextEncoder().encode(password).length < 8) return setLoginError("Passwords have at least 8 characters.");
  setLoginError("");
  setBusy(true);
  try {
    await startSession({ user, password, register });
    $("login-password").value = "";
  } catch (e) {
    setLoginError(describe(e));
  } finally {
    setBusy(false);
  }
}

async function onLogout() {
  stopTyping();
  const c = client;
  client = null;
  if (c) await c.logout();
  showView("login");
  setLoginError("");
  $("login-user").value = state.me;
  $("login-password").value = "";
  state.open = "";
  document.title = "timnode";
}

// ------------------------------------------------------------------ composer / contacts form
function onSend(event) {
  event?.preventDefault();
  const input = $("composer-input");
  const text = input.value;
  const c = state.convs.get(state.open);
  if (!c || !client || !text.trim()) return;
  stopTyping();
  const item = c.kind === "group" ? client.sendGroup(c.group, text) : client.send(c.peer, text);
  c.addPending(item);
  noteActivity(c.key, { from: state.me, text, timestamp: item.createdAt });
  input.value = "";
  autoGrow();
  renderMessages("bottom");
  renderContacts();
}

function autoGrow() {
  const t = $("composer-input");
  t.style.height = "auto";
  t.style.height = `${Math.min(t.scrollHeight + 2, 140)}px`;
}

function onAddContact(event) {
  event.preventDefault();
  const input = $("add-contact-input");
  const name = input.value.trim();
  const err = $("contact-error");
  let problem = "";
  if (!USER_RE.test(name)) problem = "User names are 1–64 letters, digits or . _ @ -";
  else if (name === state.me) problem = "That is you.";
  err.textContent = problem;
  err.hidden = !problem;
  if (problem) return;
  ensureContact(name);
  input.value = "";
  renderContacts();
  openConversation(name);
}

// ------------------------------------------------------------------ boot
function boot() {
  $("login-node").textContent = url;
  $("login-form").addEventListener("submit", onLoginSubmit);
  $("logout-btn").addEventListener("click", onLogout);
  $("composer").addEventListener("submit", onSend);
  $("composer-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) onSend(e);
  });
  $("composer-input").addEventListener("input", onComposerInput);
  $("composer-input").addEventListener("blur", () => {
    if (!$("composer-input").value.trim()) stopTyping();
  });
  $("add-contact-form").addEventListener("submit", onAddContact);
  $("group-form").addEventListener("submit", onCreateGroup);
  $("join-group-form").addEventListener("submit", onJoinGroup);
  $("invite-form").addEventListener("submit", onInvite);
  $("leave-group-btn").addEventListener("click", onLeaveGroup);
  $("system-dismiss").addEventListener("click", () => {
    state.system = [];
    renderSystem();
  });
  $("back-btn").addEventListener("click", closeConversation);
  $("messages").addEventListener("scroll", () => {
    const c = state.convs.get(state.open);
    if (c && $("messages").scrollTop < 80) loadOlder(c);
  });
  window.addEventListener("online", () => client?.wake());
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      client?.wake();
      markReadIfVisible();
    }
  });

  const last = storage.get(null, "lastUser", "");
  const token = last ? storage.get(last, "token", "") : "";
  if (last && token) {
    startSession({ user: last, token }, { resume: true }).catch(() => {});
  } else {
    showView("login");
    $("login-user").value = last || "";
  }
}

// For tests and debugging in the console (read-only use).
window.timnode = { get client() { return client; }, state, CAPABILITIES };

boot();
