// The demonstration builder. The page owns the draft's state (the slate, rejections,
// rationales) and saves all of it to the server a moment after every change; while the
// connection is down it keeps the unsent copy in localStorage and sends it when it can,
// so a reload, a crash or a lost connection loses nothing. States come from the server.
(function () {
  "use strict";

  const root = document.getElementById("builder");
  if (!root) return;
  const REASONS = root.dataset.reasons.split(",");
  const STORAGE_KEY = `shepherd-draft-${root.dataset.draft}`;
  const SAVE_DELAY_MS = 400;
  const RETRY_MS = 5000;

  let data = JSON.parse(document.getElementById("draft-data").textContent);
  let revision = Number(root.dataset.revision);
  const items = JSON.parse(document.getElementById("draft-items").textContent);
  let historyTitles = JSON.parse(document.getElementById("history-titles").textContent);
  let dirty = false;
  let inFlight = null; // the save on the wire, if any
  let edits = 0; // changes made so far: a save is complete only if none came after it
  let saveTimer = null;
  let selected = -1; // the highlighted candidate
  let touched = null; // the slate item [ and ] move
  let rejecting = null; // a candidate waiting for its reason key

  const $ = (id) => document.getElementById(id);
  const step = () => data.steps[data.steps.length - 1];
  const csrf = () => JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];

  // --- the local copy -----------------------------------------------------------------

  function remember() {
    const started = (recall() || {}).started || Date.now();
    const token = (recall() || {}).token || uuid4();
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ data, revision, dirty, started, token }));
  }

  function uuid4() {
    // crypto.randomUUID needs a secure context; getRandomValues works everywhere.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  function recall() {
    try { return JSON.parse(localStorage.getItem(STORAGE_KEY)); } catch (e) { return null; }
  }

  function restoreUnsent() {
    const local = recall();
    if (local && local.dirty && local.revision === revision) {
      data = local.data; // changes the server never received
      dirty = true;
      scheduleSave(0);
    }
    remember();
  }

  // --- saving ---------------------------------------------------------------------------

  function status(text, isError) {
    $("save-status").textContent = text;
    $("save-status").classList.toggle("error", !!isError);
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(body),
    }).then((response) => response.json().then((json) => ({ ok: response.ok, status: response.status, json })));
  }

  function changed() {
    dirty = true;
    edits += 1;
    remember();
    render();
    scheduleSave(SAVE_DELAY_MS);
  }

  function scheduleSave(delay) {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(save, delay);
  }

  function save() {
    // One save at a time: a second waits for the first (whose answer carries the revision
    // it must send), then sends whatever changed meanwhile.
    if (inFlight) return inFlight.then(() => save());
    if (!dirty) return Promise.resolve(true);
    status("Saving…");
    const sentEdits = edits;
    inFlight = post(root.dataset.saveUrl, { data, revision })
      .then(({ ok, status: code, json }) => {
        if (ok) {
          revision = json.revision;
          dirty = edits !== sentEdits; // changed while on the wire: the scheduled save sends it
          status(dirty ? "Saving…" : "All changes saved.");
        } else if (code === 409) {
          status(json.error, true);
        } else {
          status(`Not saved: ${json.error}`, true);
        }
        remember();
        return ok;
      })
      .catch(() => {
        status("Offline: your changes are kept in this browser and will be sent.", true);
        scheduleSave(RETRY_MS);
        return false;
      })
      .finally(() => { inFlight = null; });
    return inFlight;
  }

  // --- rendering ------------------------------------------------------------------------

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function renderState() {
    const state = step().state;
    $("step-number").textContent = data.steps.length;
    $("step-count").textContent = data.steps.length;
    const situation = $("situation");
    situation.replaceChildren();
    Object.entries(state.situation).forEach(([key, value]) => {
      situation.append(el("dt", key), el("dd", String(value)));
    });
    const fatigue = Object.entries(state.topic_fatigue).sort((a, b) => b[1] - a[1]).slice(0, 5);
    $("fatigue").replaceChildren(...fatigue.map(([topic, value]) => el("li", `${topic} ${value.toFixed(2)}`)));
    const history = state.history.slice(-10).reverse();
    $("history").replaceChildren(...history.map((entry) => {
      const line = el("li");
      line.append(el("span", entry.event, "tag"), document.createTextNode(" " + (historyTitles[entry.item] || entry.item)));
      return line;
    }));
  }

  function itemLine(pk) {
    const info = items[pk] || { title: `item ${pk}`, topics: [], breaks: [] };
    const line = el("span", info.title, "title");
    return [line, info];
  }

  function renderSlate() {
    const slate = $("slate");
    slate.replaceChildren(...step().chosen.map((pk, position) => {
      const [title, info] = itemLine(pk);
      const entry = el("li", undefined, info.breaks && info.breaks.length ? "breaks" : "");
      entry.dataset.item = pk;
      if (pk === touched) entry.classList.add("touched");
      entry.append(title);
      if (info.breaks && info.breaks.length) entry.append(el("div", `breaks ${info.breaks.join(", ")}`, "rule-breaks"));
      const actions = el("span", undefined, "slate-actions");
      [["↑", -1], ["↓", 1]].forEach(([label, delta]) => {
        const button = el("button", label);
        button.type = "button";
        button.addEventListener("click", () => move(position, delta));
        actions.append(button);
      });
      const remove = el("button", "✕");
      remove.type = "button";
      remove.setAttribute("aria-label", "Remove from the slate");
      remove.addEventListener("click", () => { step().chosen.splice(position, 1); changed(); });
      actions.append(remove);
      entry.append(actions);
      return entry;
    }));
    $("rejected").replaceChildren(...step().rejected.map((rejection, index) => {
      const [title] = itemLine(rejection.item);
      const entry = el("li");
      entry.append(title, el("span", ` ${rejection.reason}`, "tag"));
      const undo = el("button", "undo");
      undo.type = "button";
      undo.addEventListener("click", () => { step().rejected.splice(index, 1); changed(); });
      entry.append(undo);
      return entry;
    }));
  }

  function renderFields() {
    const bind = (id, value) => { if (document.activeElement !== $(id)) $(id).value = value; };
    bind("step-rationale", step().rationale);
    bind("expected-outcome", data.expected_outcome);
    bind("tags", data.tags.join(", "));
    bind("trajectory-rationale", data.rationale);
  }

  function render() {
    renderState();
    renderSlate();
    renderFields();
    markCandidates();
  }

  // --- candidates -----------------------------------------------------------------------

  function candidates() {
    return Array.from(document.querySelectorAll("#candidates .candidate"));
  }

  function infoFrom(node) {
    return {
      id: Number(node.dataset.item),
      title: node.dataset.title,
      topics: node.dataset.topics ? node.dataset.topics.split(",") : [],
      source: node.dataset.source,
      sensitivity: Number(node.dataset.sensitivity),
      breaks: node.dataset.breaks ? node.dataset.breaks.split(",") : [],
    };
  }

  function markCandidates() {
    const chosen = new Set(step().chosen);
    const rejected = new Set(step().rejected.map((r) => r.item));
    candidates().forEach((node, index) => {
      const pk = Number(node.dataset.item);
      node.classList.toggle("in-slate", chosen.has(pk));
      node.classList.toggle("rejected", rejected.has(pk));
      node.classList.toggle("selected", index === selected);
    });
  }

  function seen(pk) {
    if (!step().shown.includes(pk)) step().shown.push(pk);
  }

  function add(node) {
    const info = infoFrom(node);
    items[info.id] = info;
    seen(info.id);
    step().rejected = step().rejected.filter((r) => r.item !== info.id);
    if (!step().chosen.includes(info.id)) step().chosen.push(info.id);
    touched = info.id;
    changed();
  }

  function reject(node, reason) {
    const info = infoFrom(node);
    items[info.id] = info;
    seen(info.id);
    step().chosen = step().chosen.filter((pk) => pk !== info.id);
    step().rejected = step().rejected.filter((r) => r.item !== info.id);
    step().rejected.push({ item: info.id, reason });
    changed();
  }

  function askReason(node) {
    rejecting = node;
    $("builder-error").textContent = `Reject why? ${REASONS.map((r, i) => `${i + 1} ${r}`).join(" · ")}`;
  }

  function select(index) {
    const all = candidates();
    if (!all.length) return;
    selected = Math.max(0, Math.min(index, all.length - 1));
    markCandidates();
    all[selected].scrollIntoView({ block: "nearest" });
  }

  function move(position, delta) {
    const chosen = step().chosen;
    const target = position + delta;
    if (target < 0 || target >= chosen.length) return;
    [chosen[position], chosen[target]] = [chosen[target], chosen[position]];
    touched = chosen[target];
    changed();
  }

  // --- steps and submission ---------------------------------------------------------------

  function flush() {
    clearTimeout(saveTimer);
    return dirty ? save() : Promise.resolve(true);
  }

  function nextStep() {
    flush().then((saved) => {
      if (!saved) return;
      post(root.dataset.nextUrl, { revision }).then(({ ok, json }) => {
        if (!ok) { $("builder-error").textContent = json.error; return; }
        data = json.data;
        revision = json.revision;
        Object.assign(items, json.items);
        historyTitles = json.history_titles;
        dirty = false;
        remember();
        $("builder-error").textContent = "";
        render();
      });
    });
  }

  function submit() {
    flush().then((saved) => {
      if (!saved) return;
      const local = recall() || {};
      post(root.dataset.submitUrl, { client_token: local.token, time_spent_ms: Date.now() - (local.started || Date.now()) })
        .then(({ ok, json }) => {
          if (!ok) { $("builder-error").textContent = json.error; return; }
          localStorage.removeItem(STORAGE_KEY);
          window.location.assign(json.next);
        });
    });
  }

  // --- events ---------------------------------------------------------------------------

  $("step-rationale").addEventListener("input", (e) => { step().rationale = e.target.value; changed(); });
  $("expected-outcome").addEventListener("input", (e) => { data.expected_outcome = e.target.value; changed(); });
  $("trajectory-rationale").addEventListener("input", (e) => { data.rationale = e.target.value; changed(); });
  $("tags").addEventListener("input", (e) => {
    data.tags = e.target.value.split(",").map((t) => t.trim()).filter(Boolean);
    changed();
  });
  $("next-step").addEventListener("click", nextStep);
  $("submit-demonstration").addEventListener("click", submit);

  $("candidates").addEventListener("click", (event) => {
    const node = event.target.closest(".candidate");
    if (!node) return;
    selected = candidates().indexOf(node);
    if (event.target.closest("[data-add]")) add(node);
    else if (event.target.closest("[data-reject]")) askReason(node);
    else markCandidates();
  });

  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target.id === "candidates") { selected = -1; markCandidates(); }
  });

  document.addEventListener("keydown", (event) => {
    const typing = event.target.matches("textarea, input, select");
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      if (event.key === "ArrowDown" && event.target.id === "candidate-search") { event.target.blur(); select(0); event.preventDefault(); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    const current = candidates()[selected];
    if (rejecting && /^[1-5]$/.test(key)) {
      reject(rejecting, REASONS[Number(key) - 1]);
      rejecting = null;
      $("builder-error").textContent = "";
    } else if (key === "/") $("candidate-search").focus();
    else if (key === "arrowdown" || key === "j") select(selected + 1);
    else if (key === "arrowup" || key === "k") select(selected - 1);
    else if ((key === "a" || key === "enter") && current) add(current);
    else if (key === "x" && current) askReason(current);
    else if (key === "[" || key === "]") {
      const position = step().chosen.indexOf(touched);
      if (position >= 0) move(position, key === "[" ? -1 : 1);
    } else if (key === "n") nextStep();
    else if (key === "?") $("help").hidden = !$("help").hidden;
    else return;
    event.preventDefault();
  });

  window.addEventListener("online", () => scheduleSave(0));
  window.addEventListener("pagehide", () => { if (dirty) remember(); });

  restoreUnsent();
  render();
})();
