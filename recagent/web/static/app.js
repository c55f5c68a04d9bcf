// The recagent chat page: plain JavaScript over the HTTP API (no build step, no CDN).
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { session: null, info: null, busy: false, starting: false };

// ---- HTTP ------------------------------------------------------------------------------

function headers(extra = {}) {
  const key = localStorage.getItem("recagent.key");
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function api(path, options = {}) {
  const init = { ...options, headers: headers({ "Content-Type": "application/json" }) };
  if (options.body !== undefined) init.body = JSON.stringify(options.body);
  const response = await fetch(path, init);
  if (response.status === 401) {
    await askForKey();
    return api(path, options);
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.error?.message || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function askForKey() {
  const dialog = $("#key-dialog");
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      localStorage.setItem("recagent.key", $("#key").value.trim());
      resolve();
    }, { once: true });
    dialog.showModal();
  });
}

// A turn as server-sent events over a POST: calls onEvent(name, data) for each event.
async function streamTurn(text, onEvent) {
  const response = await fetch(`/v1/sessions/${state.session.session_id}/messages`, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ text }),
  });
  if (response.status === 401) {
    await askForKey();
    return streamTurn(text, onEvent);
  }
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    onEvent("error", { message: data.error?.message || `HTTP ${response.status}` });
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

// ---- rendering -------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

const log = () => $("#log");
function scrollDown() { window.scrollTo(0, document.body.scrollHeight); }
function system(text, cls = "system") { log().append(el("p", { class: cls }, text)); scrollDown(); }

const VERDICTS = {
  good_pick: "Good pick", maybe: "Maybe", not_for_you: "Probably not",
  seen: "Already seen", disliked: "You disliked it", excluded: "Left out",
};

function renderVerdict(container, verdict) {
  container.append(el("div", { class: `verdict ${verdict.label}`, role: "status" },
    el("p", {}, el("strong", { class: "label" }, VERDICTS[verdict.label] || verdict.label), " ",
      verdict.summary),
    el("ul", { "aria-label": "Evidence" }, ...verdict.reasons.map((r) => el("li", {}, r)))));
}

function renderProfile(container, profile) {
  const genres = profile.profile.top_genres.map((g) => `${g.genre} ${Math.round(g.share * 100)}%`);
  container.append(el("div", { class: "profile", "aria-label": "Your taste" },
    el("p", {}, profile.summary),
    genres.length ? el("p", { class: "genres" }, `Top genres: ${genres.join(" · ")}`) : ""));
}

function renderPlan(container, plan) {
  if (!plan?.steps?.length) return;
  const who = { rules: "the planner's plan", plan: "the model's plan", loop: "the model's calls" };
  const steps = plan.steps.map((s) => {
    const args = Object.entries(s.args || {}).filter(([, v]) => v !== null && !(Array.isArray(v) && !v.length))
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ");
    const state = s.ok === null ? " (dropped)" : s.ok === false ? ` (failed: ${s.error})` : "";
    const fixed = s.repaired?.length ? ` [repaired: ${s.repaired.join("; ")}]` : "";
    return el("li", { class: `plan-step ${s.source}` },
      el("span", { class: "source" }, s.source), " ", el("code", {}, s.tool), ` ${args.slice(0, 160)}${state}${fixed}`);
  });
  container.append(el("details", { class: "plan" },
    el("summary", {}, `The plan that ran: ${who[plan.mode] || plan.mode}, ${plan.steps.length} steps`),
    el("ol", {}, ...steps)));
}

function renderAnswer(container, answer) {
  if (answer.verdict) renderVerdict(container, answer.verdict);
  else if (answer.profile) renderProfile(container, answer.profile);
  else if (answer.message) container.append(el("p", { class: "message" }, answer.message));
  if (answer.notices?.length) {
    container.append(el("ul", { class: "notices", "aria-label": "Notices" },
      ...answer.notices.map((n) => el("li", {}, n))));
  }
  const repairs = Object.entries(answer.repairs || {});
  if (repairs.length) {
    const words = repairs.map(([k, v]) => `${k.replaceAll("_", " ")} × ${v}`).join(", ");
    container.append(el("p", { class: "repairs" }, `The guard repaired the answer: ${words}.`));
  }
  if (answer.items.length) {
    const label = answer.kind === "rank" ? "Your titles, best first"
      : answer.verdict ? "The title" : "Recommendations";
    const cards = el("ol", { class: "cards", "aria-label": label });
    for (const item of answer.items) cards.append(card(item));
    container.append(cards);
  }
  renderPlan(container, answer.plan);
}

function card(item) {
  const label = item.year ? `${item.title} (${item.year})` : item.title;
  const node = el("li", { class: "card", "data-item-id": item.item_id });
  const evidence = el("div", { class: "evidence", hidden: "" });
  const like = el("button", { type: "button", class: "like", "aria-pressed": "false",
    "aria-label": `Like ${label}`, onclick: () => feedback(node, item, true) }, "Like");
  const dislike = el("button", { type: "button", class: "dislike", "aria-pressed": "false",
    "aria-label": `Dislike ${label}`, onclick: () => feedback(node, item, false) }, "Dislike");
  const more = el("button", { type: "button", class: "more",
    "aria-label": `More like ${label}`, onclick: () => send(`more like ${label}`) },
    "More like this");
  const why = el("button", { type: "button", class: "why", "aria-expanded": "false",
    "aria-label": `Why ${label}?`, onclick: () => explain(why, evidence, item) }, "Why?");
  node.append(
    el("h3", {}, el("span", { class: "rank" }, `${item.rank}.`), label),
    el("p", { class: "genres" }, (item.genres || []).join(" · ")),
    el("p", { class: "explanation" }, item.explanation),
    evidence,
    el("div", { class: "actions" }, like, dislike, more, why),
  );
  return node;
}

async function feedback(node, item, liked) {
  try {
    const out = await api(`/v1/sessions/${state.session.session_id}/feedback`, {
      method: "POST", body: { item_id: item.item_id, feedback: liked ? "like" : "dislike" },
    });
    node.classList.toggle("liked", liked);
    node.classList.toggle("disliked", !liked);
    node.querySelector(".like").setAttribute("aria-pressed", String(liked));
    node.querySelector(".dislike").setAttribute("aria-pressed", String(!liked));
    system(`Noted: “${out.said}”.`);
  } catch (error) {
    system(error.message, "system error");
  }
}

async function explain(button, box, item) {
  const open = button.getAttribute("aria-expanded") === "true";
  button.setAttribute("aria-expanded", String(!open));
  box.hidden = open;
  if (open || box.childElementCount) return;
  try {
    const why = await api(`/v1/sessions/${state.session.session_id}/why/${encodeURIComponent(item.item_id)}`);
    box.append(el("ul", {}, ...why.evidence.map((ev) => el("li", {}, el("code", { class: "tool", title: "the tool that found it" }, ev.tool), " ", ev.words))));
  } catch (error) {
    box.append(el("p", { class: "error" }, error.message));
  }
}

function stepsBox() {
  const list = el("ol");
  const box = el("details", { class: "steps", open: "" }, el("summary", {}, "Working…"), list);
  return { box, list };
}

// ---- actions ---------------------------------------------------------------------------

async function send(text) {
  text = text.trim();
  if (!text || state.busy || !state.session) return;
  state.busy = true;
  $("#send").disabled = true;
  log().append(el("p", { class: "said" }, text));
  const turn = el("section", { class: "turn", "aria-label": "Answer" });
  const { box, list } = stepsBox();
  let tokens = null;
  turn.append(box);
  log().append(turn);
  scrollDown();
  let last = null;
  try {
    await streamTurn(text, (name, data) => {
      if (name === "step") {
        last?.classList.remove("running");
        last = el("li", { class: "step running" }, data.text);
        list.append(last);
      } else if (name === "token") {
        if (!tokens) turn.insertBefore(tokens = el("pre", { class: "tokens", "aria-label": "The model is writing" }), box.nextSibling);
        tokens.textContent += data.text;
        tokens.scrollTop = tokens.scrollHeight;
      } else if (name === "answer") {
        renderAnswer(turn, data);
      } else if (name === "error") {
        turn.append(el("p", { class: "error" }, data.message));
      }
      scrollDown();
    });
  } catch (error) {
    turn.append(el("p", { class: "error" }, `The connection failed: ${error.message}`));
  }
  last?.classList.remove("running");
  box.open = false;
  box.querySelector("summary").textContent = `${list.childElementCount} steps`;
  state.busy = false;
  $("#send").disabled = false;
  $("#text").focus();
}

async function newConversation() {
  if (state.starting) return;  // the user field's change and the form's submit, at once
  state.starting = true;
  try {
    const user = $("#user").value.trim();
    const body = { user_id: user || null, dataset: $("#dataset").value || null };
    state.session = await api("/v1/sessions", { method: "POST", body });
    localStorage.setItem("recagent.session", state.session.session_id);
    const entry = state.info.datasets.find((d) => d.name === state.session.dataset);
    if (!entry?.loaded) state.info = await api("/v1/info");  // loaded now: its users are known
    log().replaceChildren();
    showSession();
  } catch (error) {
    system(error.message, "system error");
  } finally {
    state.starting = false;
  }
}

function showSession() {
  const s = state.session;
  $("#user-note").textContent = s.user_note;
  const badge = $("#mode");
  badge.textContent = s.mode === "llm" ? `LLM · ${s.model || "model"}` : "offline planner";
  badge.classList.toggle("offline", s.mode !== "llm");
  $("#user").value = s.user_id || "";
  $("#dataset").value = s.dataset;
  fillUsers(s.dataset);
}

function replay(turns) {
  for (const t of turns) {
    if (t.kind === "message") {
      log().append(el("p", { class: "said" }, t.text));
      const section = el("section", { class: "turn", "aria-label": "Answer" });
      if (t.answer) renderAnswer(section, t.answer);
      log().append(section);
    } else {
      system(t.text);
    }
  }
}

function fillUsers(dataset) {
  const entry = state.info.datasets.find((d) => d.name === dataset);
  $("#users").replaceChildren(...(entry?.sample_users || []).map((u) => el("option", { value: u })));
}

async function start() {
  state.info = await api("/v1/info");
  const select = $("#dataset");
  select.replaceChildren(...state.info.datasets.map((d) => el("option", { value: d.name }, d.name)));
  select.value = state.info.dataset;
  select.disabled = state.info.datasets.length < 2;
  const saved = localStorage.getItem("recagent.session");
  if (saved) {
    try {
      state.session = await api(`/v1/sessions/${saved}`);
      showSession();
      replay(state.session.turns);
      return;
    } catch (error) {
      if (error.status !== 404) throw error;
    }
  }
  await newConversation();
}

function wire() {
  $("#ask").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("#text").value;
    $("#text").value = "";
    send(text);
  });
  $("#text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("#ask").requestSubmit();
    }
  });
  $("#who").addEventListener("submit", (event) => { event.preventDefault(); newConversation(); });
  $("#dataset").addEventListener("change", () => { $("#user").value = ""; newConversation(); });
  $("#user").addEventListener("change", () => {
    if (($("#user").value.trim() || null) !== (state.session?.user_id ?? null)) newConversation();
  });
}

wire();
start().then(() => $("#text").focus()).catch((error) => system(error.message, "system error"));
