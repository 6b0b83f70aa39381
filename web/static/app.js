// timnode web client: the UI. Protocol and reconnect logic live in client.js.
//
// Everything user-controlled (names, message text, error text) reaches the DOM through
// textContent / attributes only, never innerHTML.
//
// Conversations are keyed by a conversation key (convKey) rather than by a bare user name,
// and the header has a typing line, so group conversations ("g:<id>") and typing
// indicators can be added when the protocol has operations for them (CAPABILITIES).

import { ChatClient, ConnectionLost, ProtocolError, Storage, cmpId, maxId, nodeUrl } from "./client.js";

const CAPABILITIES = { groups: false, typing: false };
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
  open: "", // open convKey
  seq: 0,
};

const convKey = (peer) => peer; // direct conversations; a group would be "g:<id>"

class Conversation {
  constructor(peer) {
    this.key = convKey(peer);
    this.peer = peer;
    this.kind = "direct";
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
      mine.state = state.delivered.has(id) ? "delivered" : "sent";
      this.byId.set(id, mine);
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
      state: m.from === state.me ? (state.delivered.has(id) ? "delivered" : "sent") : "received",
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
      item,
      seq: ++state.seq,
      el: null,
    };
    this.pending.set(item.clientMsgId, msg);
    return msg;
  }

  sorted() {
    const known = [...this.byId.values()].sort((a, b) => cmpId(a.id, b.id));
    const pending = [...this.pending.values()].sort((a, b) => a.seq - b.seq);
    return known.concat(pending);
  }
}

function conv(peer) {
  const key = convKey(peer);
  let c = state.convs.get(key);
  if (!c) {
    c = new Conversation(peer);
    state.convs.set(key, c);
    for (const item of client?.outbox || []) if (item.to === peer) c.addPending(item);
  }
  return c;
}

// ------------------------------------------------------------------ persistence (per user)
function loadUserState(user) {
  state.me = user;
  state.contacts = storage.get(user, "contacts", []) || [];
  state.meta = storage.get(user, "meta", {}) || {};
  state.unread = storage.get(user, "unread", {}) || {};
  state.delivered = new Set(storage.get(user, "delivered", []) || []);
  state.presence = new Map();
  state.convs = new Map();
  state.open = "";
}
const saveContacts = () => {
  storage.set(state.me, "contacts", state.contacts);
  storage.set(state.me, "meta", state.meta);
};
const saveUnread = () => storage.set(state.me, "unread", state.unread);
let deliveredSaveTimer = null;
function saveDelivered() {
  clearTimeout(deliveredSaveTimer);
  deliveredSaveTimer = setTimeout(() => {
    let ids = [...state.delivered];
    if (ids.length > DELIVERED_MAX) {
      ids = ids.slice(-DELIVERED_MAX);
      state.delivered = new Set(ids);
    }
    storage.set(state.me, "delivered", ids);
  }, 200);
}

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

// -- contacts

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

function contactOrder() {
  return [...state.contacts].sort((a, b) => {
    const ia = state.meta[a]?.lastId || "0";
    const ib = state.meta[b]?.lastId || "0";
    return cmpId(ib, ia) || a.localeCompare(b);
  });
}

function renderContacts() {
  const list = $("contacts");
  const items = contactOrder().map((name) => {
    const li = el("li", "contact");
    li.dataset.user = name;
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", String(state.open === convKey(name)));
    li.tabIndex = 0;
    const avatar = el("span", "avatar", name.slice(0, 1));
    const dot = el("span", "dot");
    const p = state.presence.get(name);
    dot.dataset.online = p === undefined ? "unknown" : String(!!p.online);
    dot.title = p === undefined ? "presence unknown" : p.online ? "online" : "offline";
    avatar.append(dot);
    const body = el("span", "body");
    body.append(el("span", "name", name), el("span", "preview", state.meta[name]?.lastText || ""));
    const count = state.unread[name] || 0;
    const badge = el("span", "badge", String(count));
    badge.dataset.count = String(count);
    badge.setAttribute("aria-label", `${count} unread`);
    li.append(avatar, body, badge);
    li.addEventListener("click", () => openConversation(name));
    li.addEventListener("keydown", (e) => {
      if (e.key === "Enter") openConversation(name);
    });
    return li;
  });
  list.replaceChildren(...items);
  $("contacts-empty").hidden = items.length > 0;
  updateTitle();
}

function renderConvHeader() {
  const c = state.convs.get(state.open);
  const peer = c?.peer || "";
  $("conversation").dataset.peer = peer;
  $("conv-name").textContent = peer;
  const p = state.presence.get(peer);
  const dot = $("conv-presence");
  dot.dataset.online = p === undefined ? "unknown" : String(!!p.online);
  let sub = "";
  if (p === undefined) sub = "";
  else if (p.online) sub = p.devices > 1 ? `online on ${p.devices} devices` : "online";
  else sub = "offline";
  $("conv-sub").textContent = sub;
  $("chat-view").classList.toggle("open", !!peer);
}

// -- messages

function messageEl(msg) {
  if (msg.el) return msg.el;
  const li = el("li", "msg");
  const mine = msg.from === state.me;
  if (mine) li.classList.add("mine");
  let body;
  if (typeof msg.text === "string") body = el("div", "text", msg.text);
  else body = el("div", "data", `${preview(msg)} · ${b64len(msg.data)} bytes`);
  const meta = el("div", "meta");
  const time = el("time", "time", fmtTime(msg.timestamp));
  meta.append(time);
  if (mine) meta.append(el("span", "tick"));
  li.append(body, meta);
  msg.el = li;
  updateMessageEl(msg);
  return li;
}

function updateMessageEl(msg) {
  const li = msg.el;
  if (!li) return;
  li.dataset.id = msg.id || "";
  li.dataset.cmid = msg.clientMsgId || "";
  li.dataset.state = msg.state;
  li.dataset.from = msg.from;
  const time = li.querySelector("time");
  time.textContent = fmtTime(msg.timestamp);
  time.dateTime = new Date(Number(msg.timestamp)).toISOString();
  time.title = new Date(Number(msg.timestamp)).toLocaleString();
  const tick = li.querySelector(".tick");
  if (tick) {
    const ticks = { pending: "…", sent: "✓", delivered: "✓✓", failed: "!" };
    const titles = { pending: "sending", sent: "sent", delivered: "delivered", failed: `not sent: ${msg.error || ""}` };
    tick.textContent = ticks[msg.state] || "";
    tick.title = titles[msg.state] || "";
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
    if (msgs.length) noteActivity(c.peer, msgs[msgs.length - 1], { onlyIfNewer: true });
  } catch (e) {
    if (!(e instanceof ConnectionLost)) console.warn("history failed", e);
    c.loading = false;
    if (state.open === c.key) renderHistoryStatus(c);
    return;
  }
  c.loading = false;
  if (state.open !== c.key) return;
  renderMessages(first ? "bottom" : "prepend");
  // Not enough to scroll yet? Load more so the user can scroll up.
  const box = $("messages");
  if (c.historyMore && box.scrollHeight <= box.clientHeight + 80) loadOlder(c);
}

function openConversation(peer) {
  const c = conv(peer);
  state.open = c.key;
  if (state.unread[peer]) {
    state.unread[peer] = 0;
    saveUnread();
  }
  renderConvHeader();
  renderContacts();
  renderMessages("bottom");
  if (!c.historyStarted) loadOlder(c);
  if (CAPABILITIES.typing) $("typing").hidden = false;
  if (matchMedia("(min-width: 721px)").matches) $("composer-input").focus();
}

function closeConversation() {
  state.open = "";
  renderConvHeader();
  renderContacts();
  renderMessages();
}

function noteActivity(peer, m, { onlyIfNewer = false } = {}) {
  const meta = (state.meta[peer] = state.meta[peer] || {});
  const id = String(m.id || "0");
  if (onlyIfNewer && meta.lastId && cmpId(id, meta.lastId) <= 0) return;
  if (id !== "0") meta.lastId = maxId(meta.lastId, id);
  meta.lastText = (m.from === state.me ? "You: " : "") + preview(m);
  meta.lastTs = String(m.timestamp || Date.now());
  saveContacts();
}

// ------------------------------------------------------------------ client events
function wireClient(c) {
  c.addEventListener("state", (e) => {
    renderStatus(e.detail);
  });
  c.addEventListener("message", (e) => onMessage(e.detail));
  c.addEventListener("presence", (e) => {
    const p = e.detail.presence;
    state.presence.set(p.user, p);
    renderContacts();
    if (state.convs.get(state.open)?.peer === p.user) renderConvHeader();
  });
  c.addEventListener("presenceunknown", () => {
    state.presence.clear();
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
    const { item, messageId, timestamp } = e.detail;
    const cv = conv(item.to);
    const msg = cv.pending.get(item.clientMsgId);
    if (msg) {
      cv.add({ id: messageId, from: state.me, to: item.to, clientMsgId: item.clientMsgId, timestamp, fromDevice: c.device });
      updateMessageEl(msg);
      noteActivity(item.to, { ...msg });
    }
    if (state.open === cv.key) renderMessages();
    renderContacts();
  });
  c.addEventListener("sendfailed", (e) => {
    const { item, error } = e.detail;
    const cv = conv(item.to);
    const msg = cv.pending.get(item.clientMsgId);
    if (!msg) return;
    msg.state = "failed";
    msg.error = error.code === "NOT_FOUND" ? `no user "${item.to}"` : error.message || String(error);
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
  const peer = m.from === state.me ? m.to : m.from;
  if (!peer) return;
  ensureContact(peer);
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
  if (result === "new" && m.from !== state.me && !isOpen && !initial) {
    state.unread[peer] = (state.unread[peer] || 0) + 1;
    saveUnread();
  }
  if (isOpen) {
    renderMessages();
  }
  renderContacts();
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
  for (const item of client.outbox) conv(item.to).addPending(item);
  renderContacts();
}

function enterChat() {
  showView("chat");
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
  const item = client.send(c.peer, text);
  c.addPending(item);
  noteActivity(c.peer, { from: state.me, text, timestamp: item.createdAt });
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
  $("composer-input").addEventListener("input", autoGrow);
  $("add-contact-form").addEventListener("submit", onAddContact);
  $("back-btn").addEventListener("click", closeConversation);
  $("messages").addEventListener("scroll", () => {
    const c = state.convs.get(state.open);
    if (c && $("messages").scrollTop < 80) loadOlder(c);
  });
  window.addEventListener("online", () => client?.wake());
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) client?.wake();
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
