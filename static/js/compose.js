// The compose page: post the form as JSON, read the SSE answer with a stream reader, show
// the state in words, and never leave the result blank or ambiguous. Runs are resumable: when
// the stream drops before its terminal event the page says "Reconnecting…" and asks for the
// events after the last id it saw, with backoff, for as long as the server keeps the run
// waiting (its grace period); only then is the connection lost.
import { readEvents } from "./sse.js";
import { OutputBuffer } from "./output.js";

const $ = (id) => document.getElementById(id);
const form = $("compose-form");
const typeNames = JSON.parse($("type-names").textContent);
const labels = JSON.parse($("field-labels").textContent);
const output = new OutputBuffer($("output"), typeNames, { onError: (error) => displayFault("delta", error) });
const ui = {
  status: $("status"), statusText: $("status-text"), progress: $("progress"),
  banner: $("banner"), bannerText: $("banner-text"), retry: $("retry"),
  generate: $("generate"), cancel: $("cancel"), copy: $("copy"), regenerate: $("regenerate"),
  copyNote: $("copy-note"), output: $("output"),
};
const control = (name) => form.elements.namedItem(name);
const TERMINAL = new Set(["done", "cancelled", "error"]);
const ZERO_ID = "00000000-0000-0000-0000-000000000000"; // the id placeholder in the page's URLs
const REASONS = {
  client_cancel: "you stopped it", admin_cancel: "an administrator stopped it",
  shutdown: "the server is restarting", client_disconnect: "the connection closed",
};

const RESUME_GRACE_MS = Number(form.dataset.resumeGraceMs || 0);
const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 4000;
let run = null; // the generation in flight
let lastBody = null;

function csrfToken() {
  return form.querySelector("input[name=csrfmiddlewaretoken]").value;
}

function formBody() {
  const body = {};
  for (const element of form.elements) {
    if (element.name && element.name !== "csrfmiddlewaretoken") body[element.name] = element.value;
  }
  return body;
}

function setStatus(state, words) {
  ui.status.dataset.state = state;
  ui.statusText.textContent = words;
}

function showBanner(kind, words, { retry = false } = {}) {
  ui.banner.className = `banner banner-${kind}`;
  ui.bannerText.textContent = words;
  ui.retry.hidden = !retry;
  ui.banner.hidden = false;
}

function clearErrors() {
  ui.banner.hidden = true;
  for (const error of form.querySelectorAll(".field-error")) {
    error.hidden = true;
    error.textContent = "";
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

function showFieldError(field, words) {
  const input = control(field);
  const slot = $(`error-${field}`);
  slot.textContent = words;
  slot.hidden = false;
  input.setAttribute("aria-invalid", "true");
  const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
  if (!described.includes(slot.id)) input.setAttribute("aria-describedby", [slot.id, ...described].join(" "));
  input.focus();
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

const isCount = (value) => Number.isInteger(value) && value >= 0;
const isNumber = (value) => typeof value === "number" && Number.isFinite(value);
const tokenWords = (count) => `${count} ${count === 1 ? "token" : "tokens"}`;

// The done event's summary. A run of 0 or 1 tokens has no rate (tokens_per_second is null)
// and one of 0 tokens no first token (ttft_ms is null): leave out what is missing.
function doneWords({ finish_reason: reason, usage, timings }) {
  const tokens = usage?.completion_tokens;
  const parts = [];
  let head = isCount(tokens) ? `Done: ${tokenWords(tokens)}` : "Done";
  const ms = [timings?.queue_ms, timings?.generation_ms].filter(isNumber);
  if (ms.length) head += ` in ${seconds(ms.reduce((a, b) => a + b, 0))}`;
  parts.push(head);
  if (isNumber(timings?.tokens_per_second)) parts.push(`${timings.tokens_per_second.toFixed(1)} tokens/s`);
  if (isNumber(timings?.ttft_ms)) parts.push(`first token after ${Math.round(timings.ttft_ms)} ms`);
  let words = `${parts.join(" · ")}.`;
  if (tokens === 0) words += " The model wrote nothing.";
  if (reason === "length") words += " Stopped at the length limit.";
  return words;
}

// Tokens so far: the server's running count when delta events carry one (`tokens`), else
// the number of deltas, a lower bound, since one delta holds every token that arrived while
// the reader was busy.
function tokensSoFar() {
  return run.tokens !== null ? run.tokens : output.deltas;
}

function setRunning(running) {
  ui.generate.disabled = running;
  ui.cancel.hidden = !running;
  ui.cancel.disabled = false;
  ui.regenerate.disabled = running || lastBody === null;
  ui.copy.disabled = running || !output.text;
  ui.output.setAttribute("aria-busy", String(running));
  if (running) ui.cancel.focus();
  else if (document.activeElement === ui.cancel || document.activeElement === document.body) ui.generate.focus();
}

function tick() {
  if (!run || run.phase !== "generating" || run.reconnecting) return;
  const elapsed = performance.now() - run.startedAt;
  const tokens = tokensSoFar();
  ui.status.dataset.tokens = String(tokens);
  const counted = run.tokens !== null ? tokenWords(tokens) : `at least ${tokenWords(tokens)}`;
  const parts = [`Generating: ${seconds(elapsed)}`, `${counted} so far`];
  if (run.firstTokenAt !== null) parts.push(`first token after ${Math.round(run.firstTokenAt - run.sentAt)} ms`);
  else parts.push("waiting for the first token");
  setStatus("generating", parts.join(" · "));
  ui.progress.value = Math.min(tokens, run.maxTokens);
}

// A fault in this page (an event it cannot parse or render) is said as such, never as a
// lost connection. Only the error's type is shown: its message can quote the event's text.
function displayFault(eventName, error) {
  if (ui.status.dataset.displayError) return; // the first fault of the run says enough
  const errorName = error?.name || "Error";
  ui.status.dataset.displayError = errorName;
  showBanner("error", `This page could not display a "${eventName}" event (${errorName}); ` +
    "the text shown may be incomplete. This is a fault in the page, not the connection.", { retry: true });
}

function handle(event) {
  const { name, data } = event;
  if (event.error) throw event.error;
  if (name === "accepted") {
    run.requestId = data.request_id;
    if (data.queue_position > 0) setStatus("queued", `Queued: position ${data.queue_position} in line.`);
    else setStatus("starting", "Accepted: starting…");
  } else if (name === "queued") {
    setStatus("queued", `Queued: position ${data.position} in line.`);
  } else if (name === "started") {
    run.phase = "generating";
    run.startedAt = performance.now();
    ui.progress.max = run.maxTokens;
    ui.progress.value = 0;
    run.ticker = setInterval(tick, 250);
    tick();
  } else if (name === "delta") {
    if (run.firstTokenAt === null) run.firstTokenAt = performance.now();
    if (isCount(data.tokens)) run.tokens = Math.max(run.tokens ?? 0, data.tokens);
    output.push(data);
  } else if (name === "done") {
    output.flush();
    const tokens = data.usage?.completion_tokens;
    if (isCount(tokens)) {
      ui.status.dataset.completionTokens = String(tokens);
      ui.status.dataset.tokens = String(tokens);
    }
    ui.progress.max = Math.max(run.maxTokens, 1);
    ui.progress.value = ui.progress.max;
    setStatus("done", doneWords(data));
  } else if (name === "cancelled") {
    output.flush();
    setStatus("stopped", `Stopped: ${REASONS[data.reason] || data.reason}. The text so far is kept.`);
  } else if (name === "error") {
    output.flush();
    setStatus("failed", "Failed.");
    showBanner("error", output.text ? `${data.message} The text above is incomplete.` : data.message, { retry: true });
  }
}

async function explainRefusal(response) {
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch (_) { /* not JSON: fall through to the status line */ }
  const message = error.message || `The server refused the request (HTTP ${response.status}).`;
  if (response.status === 401 || response.status === 403) {
    setStatus("failed", "Not sent.");
    showBanner("error", `${message} Your session may have expired: reload the page and sign in again.`);
  } else if (error.param && labels[error.param] && control(error.param)) {
    const words = error.code === "sensitive_data_rejected" && error.types
      ? `${labels[error.param]} contains ${error.types.map((t) => typeNames[t] || t).join(", ")}, which this field does not accept. Remove it and try again.`
      : message;
    setStatus("failed", `Not sent: check ${labels[error.param]}.`);
    showFieldError(error.param, words);
  } else if (response.status === 503 || response.status === 429) {
    const after = response.headers.get("Retry-After");
    setStatus("failed", "Not sent: the server is busy.");
    showBanner("warning", after ? `${message} Try again in ${after} s.` : message, { retry: true });
  } else {
    setStatus("failed", "Not sent.");
    showBanner("error", message);
  }
}

async function start(body) {
  if (run) return;
  lastBody = body;
  clearErrors();
  output.reset();
  delete ui.status.dataset.completionTokens;
  delete ui.status.dataset.tokens;
  delete ui.status.dataset.displayError;
  ui.copyNote.textContent = "";
  const lengthOption = control("length").selectedOptions[0];
  run = {
    controller: new AbortController(), requestId: null, phase: "sending", userCancelled: false,
    sentAt: performance.now(), startedAt: null, firstTokenAt: null, ticker: null,
    maxTokens: Number(lengthOption?.dataset.maxTokens || 100), terminal: null, tokens: null,
    lastEventId: 0, reconnecting: false, reconnects: 0,
  };
  const current = run;
  setRunning(true);
  setStatus("sending", "Sending…");
  ui.progress.hidden = false;
  ui.progress.removeAttribute("value"); // indeterminate until a slot is taken
  try {
    const response = await fetch(form.action, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
      credentials: "same-origin",
      signal: current.controller.signal,
    });
    current.requestId = response.headers.get("X-Request-ID");
    if (!response.ok) {
      await explainRefusal(response);
      return;
    }
    let reading = response;
    while (reading) {
      await consume(reading, current);
      if (current.terminal || current.userCancelled) break;
      reading = await reconnect(current);
    }
    if (current.userCancelled && !current.terminal) stopped();
    else if (!current.terminal) lost();
  } catch (error) {
    if (current.userCancelled) stopped();
    else if (current.phase === "sending" && !current.requestId) {
      setStatus("failed", "Not sent.");
      showBanner("error", "Could not reach the server. Check the connection and retry.", { retry: true });
    } else lost();
  } finally {
    clearInterval(current.ticker);
    output.flush(); // render faults go to displayFault, so this does not throw
    if (!current.terminal && !current.userCancelled && ui.status.dataset.state === "sending") {
      setStatus("failed", "Not sent.");
    }
    if (ui.progress.value === 0 && !current.terminal) ui.progress.hidden = true;
    run = null;
    setRunning(false);
  }
}

// Read one response's events; a dropped connection just ends the read (the caller resumes).
async function consume(response, current) {
  try {
    for await (const event of readEvents(response)) {
      if (event.id !== null && event.id !== "") current.lastEventId = Number(event.id);
      try {
        handle(event);
      } catch (error) {
        displayFault(event.name, error);
        if (TERMINAL.has(event.name)) unreadable(event.name);
      }
      if (TERMINAL.has(event.name)) {
        current.terminal = event.name;
        return;
      }
    }
  } catch (error) {
    if (current.userCancelled) throw error;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Ask for the events after the last id seen, with backoff, within the server's grace period.
// Returns the resumed response, or null when the run cannot be resumed (gone, not ours) or
// the grace period ran out.
async function reconnect(current) {
  if (!current.requestId || !RESUME_GRACE_MS) return null;
  const deadline = performance.now() + RESUME_GRACE_MS;
  let delay = FIRST_RETRY_MS;
  current.reconnecting = true;
  current.reconnects += 1;
  ui.status.dataset.reconnects = String(current.reconnects);
  output.flush();
  setStatus("reconnecting", "Reconnecting…");
  try {
    while (!current.userCancelled && performance.now() < deadline) {
      await sleep(Math.min(delay, Math.max(deadline - performance.now(), 0)));
      delay = Math.min(delay * 2, MAX_RETRY_MS);
      if (current.userCancelled) return null;
      try {
        const response = await fetch(form.dataset.eventsUrl.replace(ZERO_ID, current.requestId), {
          headers: { Accept: "text/event-stream", "Last-Event-ID": String(current.lastEventId) },
          credentials: "same-origin",
          signal: current.controller.signal,
        });
        if (response.ok) return response;
        if (response.status < 500 && response.status !== 429) return null; // 404, 409, 410: it cannot come back
      } catch (_) { /* still offline: try again */ }
    }
    return null;
  } finally {
    current.reconnecting = false;
    if (current.phase === "generating") tick();
    else if (ui.status.dataset.state === "reconnecting") setStatus("starting", "Reconnected: waiting for the model…");
  }
}

function lost() {
  output.flush();
  setStatus("lost", "Connection lost: output incomplete.");
  showBanner("error", output.text
    ? "Connection lost, output incomplete. The text below stops where the connection dropped."
    : "Connection lost before any text arrived.", { retry: true });
}

// The server ended the run, but its terminal event could not be shown.
function unreadable(eventName) {
  output.flush();
  const outcome = { done: "finished", cancelled: "was stopped", error: "failed" }[eventName];
  setStatus("display-error", `The run ${outcome}, but this page could not display how.`);
}

function stopped() {
  output.flush();
  setStatus("stopped", output.text ? "Stopped. The text so far is kept." : "Stopped before any text arrived.");
}

async function cancel() {
  const current = run;
  if (!current) return;
  current.userCancelled = true;
  ui.cancel.disabled = true;
  setStatus("stopping", "Stopping…");
  if (current.requestId) {
    // Ask the server first so the record says client_cancel, then drop the stream.
    const url = form.dataset.cancelUrl.replace(ZERO_ID, current.requestId);
    try {
      await fetch(url, {
        method: "POST", headers: { "X-CSRFToken": csrfToken() }, credentials: "same-origin",
        signal: AbortSignal.timeout(3000),
      });
    } catch (_) { /* the abort below still stops it (recorded as a disconnect) */ }
  }
  current.controller.abort();
}

async function copyText() {
  try {
    await navigator.clipboard.writeText(output.text);
  } catch (_) {
    const range = document.createRange();
    range.selectNodeContents(ui.output);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    document.execCommand("copy");
  }
  ui.copyNote.textContent = "Copied.";
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  start(formBody());
});
ui.cancel.addEventListener("click", cancel);
ui.retry.addEventListener("click", () => lastBody && start(lastBody));
ui.regenerate.addEventListener("click", () => lastBody && start(lastBody));
ui.copy.addEventListener("click", copyText);
form.addEventListener("input", (event) => {
  const slot = event.target.name && $(`error-${event.target.name}`);
  if (slot && !slot.hidden) {
    slot.hidden = true;
    event.target.removeAttribute("aria-invalid");
  }
});
