// The Speaking Stone: a small page that talks to `nindub serve` through its
// OpenAI-compatible HTTP API. Plain JavaScript, no libraries, no build step.
//
// What happens, in order:
//   1. ask GET /v1/models for the model id and poll GET /health every 3 s;
//   2. on Send, POST /v1/chat/completions with "stream": true and read the
//      answer as server-sent events (SSE), one token per event;
//   3. show each token as its own <span>, shaded by how unsure the model was,
//      and its top candidates (from "logprobs") beside the answer.

"use strict";

const HEALTH_EVERY_MS = 3000;
const NOT_ANSWERING = "The server is not answering (is `nindub serve` running?)";
const BROKE_OFF = "The connection broke off in the middle of the answer (is `nindub serve` still running?)";

const $ = (selector) => document.querySelector(selector);

// The sampling sliders: element id -> how to show its value.
const SLIDERS = {
  temperature: (v) => v.toFixed(2),
  top_p: (v) => v.toFixed(2),
  top_k: (v) => (v === 0 ? "off" : String(v)),
  min_p: (v) => v.toFixed(2),
  repeat_penalty: (v) => v.toFixed(2),
  max_tokens: (v) => String(v),
};

let modelId = null;       // from /v1/models (or /health), sent with each request
let controller = null;    // AbortController of the request in flight, if any
let tokens = [];          // one entry per answer token: { text, logprob }
let pinned = null;        // index of the token pinned in the side panel
let placeholder = null;   // the side panel's first words, shown when no token is

// ---------------------------------------------------------------------------
// Talking to the server
// ---------------------------------------------------------------------------

function authHeaders() {
  const key = $("#api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// Turns a non-2xx response into an Error whose message is meant for people:
// the server's own `error.message`, its status, and what to do about it.
async function httpError(response) {
  let message = "";
  try {
    const body = await response.json();
    message = body?.error?.message ?? "";
  } catch {
    // Not JSON: keep the status line alone.
  }
  let lead;
  let advice = "";
  if (response.status === 401) {
    lead = "The server wants an API key";
    advice = " Enter it in the “API key” field.";
  } else if (response.status === 503) {
    const retry = response.headers.get("Retry-After");
    lead = "The queue is full";
    advice = retry ? ` Try again in ${retry} s.` : " Try again soon.";
  } else {
    lead = "The server refused the request";
  }
  const detail = message ? `: ${message.replace(/\.$/, "")}` : "";
  const error = new Error(`${lead} (HTTP ${response.status})${detail}.${advice}`);
  error.status = response.status;
  return error;
}

// fetch() and reader.read() reject with a TypeError when the connection
// fails; this gives such an error a message that says what to check.
// An AbortError (the Stop button) passes through unchanged.
function connectionError(message) {
  return (error) => {
    if (error.name === "AbortError") throw error;
    throw new Error(message, { cause: error });
  };
}

async function loadModel() {
  try {
    const response = await fetch("v1/models", { headers: authHeaders(), cache: "no-store" });
    if (!response.ok) return; // e.g. 401 before a key is entered; /health may still name it
    const body = await response.json();
    if (body.data && body.data.length > 0) showModel(body.data[0].id);
  } catch {
    // Network trouble is reported by the health poll.
  }
}

function showModel(id) {
  if (!id || id === modelId) return;
  modelId = id;
  $("#model").textContent = id;
}

// Polls /health, one request at a time, and keeps the status line current.
async function pollHealth() {
  try {
    const response = await fetch("health", {
      headers: authHeaders(),
      cache: "no-store",
      signal: AbortSignal.timeout(5000),
    });
    if (!response.ok) throw await httpError(response);
    const health = await response.json();
    showModel(health.model);
    const q = health.queue;
    const queue = q ? ` · ${q.running} running, ${q.waiting} waiting (room for ${q.capacity})` : "";
    setHealth(`${health.status}${queue}`, health.status === "ok");
    clearBanner("health");
  } catch (error) {
    setHealth("no answer", false);
    showBanner(error.status ? error.message : NOT_ANSWERING, "health");
  } finally {
    setTimeout(pollHealth, HEALTH_EVERY_MS);
  }
}

// ---------------------------------------------------------------------------
// Server-sent events
//
// EventSource cannot send a POST with a body, so the stream is parsed here.
// The format (https://html.spec.whatwg.org/multipage/server-sent-events.html):
//
//   data: {"choices":[...]}       <- a field line: "name: value"
//   : a comment                   <- lines starting with ':' are ignored
//                                 <- a blank line ends one event
//   data: [DONE]                  <- OpenAI's marker for the end of the stream
//
// Lines end with "\n", "\r\n" or "\r". One optional space after the colon is
// not part of the value. An event with several `data:` lines has their values
// joined with "\n". The network hands us the text in arbitrary pieces, so a
// line (or even a "\r\n" pair) can be cut anywhere: unfinished text waits in
// `pending` until the rest arrives.
// ---------------------------------------------------------------------------

function createSseParser(onEvent) {
  let pending = "";   // text received but not yet ended by a line break
  let data = [];      // the `data:` values of the event being assembled

  function handleLine(line) {
    if (line === "") {
      // A blank line dispatches the event, if it had any data.
      if (data.length > 0) onEvent(data.join("\n"));
      data = [];
      return;
    }
    if (line.startsWith(":")) return; // a comment (servers send them as keep-alives)
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    // Other fields (event, id, retry) are not used by this API.
  }

  return {
    // Feeds the next piece of decoded text.
    push(text) {
      pending += text;
      let start = 0;
      for (let i = 0; i < pending.length; i++) {
        const c = pending[i];
        if (c !== "\n" && c !== "\r") continue;
        // A "\r" at the very end may be the first half of "\r\n": wait.
        if (c === "\r" && i === pending.length - 1) break;
        handleLine(pending.slice(start, i));
        if (c === "\r" && pending[i + 1] === "\n") i++; // "\r\n" is one break
        start = i + 1;
      }
      pending = pending.slice(start);
    },
  };
}

// ---------------------------------------------------------------------------
// One chat request, streamed
// ---------------------------------------------------------------------------

function requestBody(prompt) {
  const number = (id) => Number($(`#${id}`).value);
  const body = {
    model: modelId ?? undefined,
    messages: [{ role: "user", content: prompt }],
    stream: true,
    stream_options: { include_usage: true },
    logprobs: true,
    top_logprobs: 5,
    temperature: number("temperature"),
    top_p: number("top_p"),
    top_k: number("top_k"),
    min_p: number("min_p"),
    repeat_penalty: number("repeat_penalty"),
    max_tokens: number("max_tokens"),
  };
  const seed = $("#seed").value.trim();
  if (seed !== "") body.seed = Number(seed);
  return body;
}

async function send() {
  const prompt = $("#prompt").value.trim();
  if (!prompt || controller) return;

  resetAnswer();
  clearBanner("request");
  setBusy(true);
  controller = new AbortController();

  const started = performance.now();
  let firstTokenAt = null;   // time of the first token
  let lastTokenAt = null;    // time of the latest token
  let usage = null;
  let finishReason = null;
  let done = false;          // saw `data: [DONE]`

  // Called by the SSE parser with the data of each event.
  function onEvent(data) {
    if (done) return;
    if (data === "[DONE]") {
      done = true;
      return;
    }
    let chunk;
    try {
      chunk = JSON.parse(data);
    } catch {
      throw new Error(`The server sent an event that is not JSON: ${data.slice(0, 80)}`);
    }
    if (chunk.error) throw new Error(`The server stopped with an error: ${chunk.error.message}`);
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices ?? []) {
      const added = addTokens(choice);
      if (added > 0) {
        lastTokenAt = performance.now();
        firstTokenAt ??= lastTokenAt;
      }
      if (choice.finish_reason) finishReason = choice.finish_reason;
    }
  }

  try {
    const response = await fetch("v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify(requestBody(prompt)),
      signal: controller.signal,
    }).catch(connectionError(NOT_ANSWERING));
    if (!response.ok) throw await httpError(response);

    // Read the body piece by piece as it arrives. The decoder is told that
    // more may follow ({stream: true}) so that a UTF-8 character cut in two
    // between pieces is decoded once both halves are here.
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = createSseParser(onEvent);
    while (true) {
      const { value, done: ended } = await reader.read().catch(connectionError(BROKE_OFF));
      if (ended) break;
      parser.push(decoder.decode(value, { stream: true }));
    }
    setState("done");
    showStats({ started, firstTokenAt, lastTokenAt, usage, finishReason: finishReason ?? (done ? null : "ended early") });
  } catch (error) {
    if (error.name === "AbortError") {
      setState("stopped");
      showStats({ started, firstTokenAt, lastTokenAt, usage, finishReason: "stopped by you" });
    } else {
      controller.abort(); // closes the connection if it is still open
      setState("error");
      showBanner(error.message, "request");
    }
  } finally {
    controller = null;
    setBusy(false);
  }
}

function stop() {
  if (controller) controller.abort();
}

// ---------------------------------------------------------------------------
// The answer, token by token
// ---------------------------------------------------------------------------

// Adds the tokens of one streamed choice to the answer; returns how many.
// Normally one chunk carries one token: its text in delta.content and its
// probabilities in logprobs.content[0]. A token that is only part of a UTF-8
// character arrives with empty content; it still gets its own (empty) span,
// and the next token's text completes the character.
function addTokens(choice) {
  const text = choice.delta?.content;
  const entries = choice.logprobs?.content ?? [];
  if (entries.length === 0) {
    if (!text) return 0; // the opening role chunk, or the closing one
    appendToken(text, null);
    return 1;
  }
  if (entries.length === 1) {
    appendToken(text ?? "", entries[0]);
    return 1;
  }
  // Several tokens in one chunk (not what nindub sends): use their own text.
  for (const entry of entries) appendToken(entry.token, entry);
  return entries.length;
}

function appendToken(text, logprob) {
  const index = tokens.length;
  tokens.push({ text, logprob });
  const span = document.createElement("span");
  span.className = "tok";
  span.dataset.index = index;
  span.textContent = text;
  if (logprob) {
    const p = Math.exp(logprob.logprob);
    span.style.setProperty("--doubt", (1 - p).toFixed(3));
  }
  if (text === "") span.title = "part of a character; the next token completes it";
  $("#answer").append(span);
}

function resetAnswer() {
  tokens = [];
  pinned = null;
  $("#answer").replaceChildren();
  $("#usage").textContent = "";
  showCandidates(null);
}

function showStats({ started, firstTokenAt, lastTokenAt, usage, finishReason }) {
  const parts = [];
  if (usage) {
    parts.push(`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
  } else {
    parts.push(tokens.length === 1 ? "1 token" : `${tokens.length} tokens`);
  }
  if (firstTokenAt !== null) {
    parts.push(`first token after ${Math.round(firstTokenAt - started)} ms`);
    // Speed of the decoding proper: tokens after the first, over the time they took.
    const seconds = (lastTokenAt - firstTokenAt) / 1000;
    if (tokens.length > 1 && seconds > 0) {
      parts.push(`${((tokens.length - 1) / seconds).toFixed(1)} tokens/s`);
    }
  }
  parts.push(`finish: ${finishReason ?? "unknown"}`);
  $("#usage").textContent = parts.join(" · ");
}

// ---------------------------------------------------------------------------
// The side panel: a token's top candidates
// ---------------------------------------------------------------------------

// Shows a token's text so that spaces and line breaks can be seen. A token
// that is not a whole character is shown by its bytes.
function visibleToken(token, bytes) {
  if (token.includes("\uFFFD") && Array.isArray(bytes)) {
    return "bytes " + bytes.map((b) => b.toString(16).padStart(2, "0")).join(" ");
  }
  return token.replaceAll(" ", "␣").replaceAll("\n", "↵").replaceAll("\t", "⇥") || "∅";
}

function formatPercent(p) {
  const pct = p * 100;
  if (pct >= 10) return `${pct.toFixed(1)}%`;
  if (pct >= 0.01) return `${pct.toFixed(2)}%`;
  return "<0.01%";
}

function sameToken(a, b) {
  if (Array.isArray(a.bytes) && Array.isArray(b.bytes)) {
    return a.bytes.length === b.bytes.length && a.bytes.every((x, i) => x === b.bytes[i]);
  }
  return a.token === b.token;
}

function showCandidates(index) {
  const panel = $("#candidates");
  const token = index === null ? null : tokens[index];
  if (!token) {
    panel.replaceChildren(placeholder.cloneNode(true));
    return;
  }
  const head = document.createElement("p");
  head.className = "cand-head";
  head.textContent = `Token ${index + 1} of ${tokens.length}` + (index === pinned ? " · pinned" : "");
  const nodes = [head];

  const chosen = token.logprob;
  if (!chosen) {
    const note = document.createElement("p");
    note.className = "placeholder";
    note.textContent = "The server sent no probabilities for this token.";
    nodes.push(note);
  } else {
    const list = document.createElement("ol");
    list.className = "cand-list";
    const top = chosen.top_logprobs ?? [];
    for (const candidate of top) {
      list.append(candidateRow(candidate, sameToken(candidate, chosen)));
    }
    // A sampled token can lie outside the top few: show it too, apart.
    if (!top.some((c) => sameToken(c, chosen))) {
      const row = candidateRow(chosen, true);
      row.classList.add("outside");
      list.append(row);
    }
    nodes.push(list);
  }
  panel.replaceChildren(...nodes);
}

function candidateRow(candidate, isChosen) {
  const p = Math.exp(candidate.logprob);
  const row = document.createElement("li");
  row.className = isChosen ? "cand chosen" : "cand";

  const text = document.createElement("code");
  text.className = "cand-tok";
  text.textContent = visibleToken(candidate.token, candidate.bytes);

  const bar = document.createElement("span");
  bar.className = "bar";
  const fill = document.createElement("span");
  fill.style.width = `${(p * 100).toFixed(2)}%`;
  bar.append(fill);

  const pct = document.createElement("span");
  pct.className = "pct";
  pct.textContent = formatPercent(p);

  row.append(text, bar, pct);
  return row;
}

function tokenIndexOf(event) {
  const span = event.target.closest(".tok");
  return span ? Number(span.dataset.index) : null;
}

function pin(index) {
  const answer = $("#answer");
  answer.querySelector(".tok.pinned")?.classList.remove("pinned");
  pinned = index === pinned ? null : index; // clicking the pinned token unpins it
  if (pinned !== null) answer.querySelector(`.tok[data-index="${pinned}"]`).classList.add("pinned");
  showCandidates(index);
}

// ---------------------------------------------------------------------------
// Small pieces of the page
// ---------------------------------------------------------------------------

function setState(state) {
  document.body.dataset.state = state; // idle, streaming, done, stopped, error
}

function setBusy(busy) {
  $("#send").disabled = busy;
  $("#stop").disabled = !busy;
  if (busy) setState("streaming");
}

function setHealth(text, good) {
  const health = $("#health");
  health.textContent = text;
  health.classList.toggle("bad", !good);
}

// The banner shows one message. Its source ("health" or "request") lets a
// good health answer clear a health warning without hiding a request error.
function showBanner(message, source) {
  const banner = $("#status");
  banner.textContent = message;
  banner.dataset.source = source;
  banner.hidden = false;
}

function clearBanner(source) {
  const banner = $("#status");
  if (banner.dataset.source === source) {
    banner.hidden = true;
    banner.textContent = "";
    delete banner.dataset.source;
  }
}

// ---------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------

function setUp() {
  for (const [id, format] of Object.entries(SLIDERS)) {
    const input = $(`#${id}`);
    const output = document.querySelector(`output[for="${id}"]`);
    const update = () => { output.textContent = format(Number(input.value)); };
    input.addEventListener("input", update);
    update();
  }

  placeholder = $("#candidates .placeholder").cloneNode(true);

  $("#ask").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("#prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      send();
    }
  });
  $("#stop").addEventListener("click", stop);
  $("#api-key").addEventListener("change", () => { if (!modelId) loadModel(); });

  const answer = $("#answer");
  answer.addEventListener("mouseover", (event) => {
    const index = tokenIndexOf(event);
    if (index !== null) showCandidates(index);
  });
  answer.addEventListener("mouseleave", () => {
    if (pinned !== null) showCandidates(pinned);
  });
  answer.addEventListener("click", (event) => {
    const index = tokenIndexOf(event);
    if (index !== null) pin(index);
  });

  loadModel();
  pollHealth();
}

setUp();
