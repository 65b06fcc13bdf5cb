// flowstore dashboard. Plain JavaScript, no build step: every view reads the public
// API (/api/v1/...) with the session cookie the sign-in set, and sends the session's
// CSRF token with every change. Filters live in the URL (#/runs?status=failed), so
// links can be shared. Text from the API is only ever set as text, never as markup.
"use strict";

const main = document.getElementById("main");
let me = null; // {user, role} once signed in
let live = null; // the EventSource of the open view
let refresh = null; // a refresh of the open view, due shortly
let gen = 0; // which view is current: a view still loading when another opens shows nothing
// The event types of runs and of their tasks (an SSE event's name is its type).
const RUN_EVENTS = ["run.started", "run.updated", "run.retried", "run.completed", "run.failed", "run.cancelled", "run.timed_out"];
const TASK_EVENTS = ["task.ready", "task.claimed", "task.completed", "task.failed", "task.retrying", "task.cancelled", "task.timed_out"];

// ---------------------------------------------------------------- helpers

function h(tag, attrs, ...children) {
  const svg = ["svg", "rect", "line", "text", "g", "title", "path"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function cookie(name) {
  const m = document.cookie.split(";").map((c) => c.trim().split("=")).find(([k]) => k === name);
  return m ? decodeURIComponent(m.slice(1).join("=")) : "";
}

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && problem.detail) || "HTTP " + status);
    this.status = status;
    this.problem = problem;
  }
}

async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET") headers["x-csrf-token"] = cookie("flowstore_csrf");
  const r = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 204) return null;
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    if (r.status === 401 && !path.startsWith("/ui/")) {
      me = null;
      showSignIn();
    }
    throw new ApiError(r.status, data);
  }
  return data;
}

function when(t) {
  return t ? new Date(t).toLocaleString() : "–";
}

function ms(v) {
  if (v === null || v === undefined) return "–";
  if (v < 1000) return Math.round(v) + " ms";
  if (v < 60000) return (v / 1000).toFixed(1) + " s";
  return (v / 60000).toFixed(1) + " min";
}

function badge(status) {
  return h("span", { class: "status s-" + status }, status);
}

function params() {
  const q = location.hash.split("?")[1] || "";
  return new URLSearchParams(q);
}

function stop() {
  if (live) live.close();
  if (refresh) clearTimeout(refresh);
  live = null;
  refresh = null;
}

// Shows the nodes of the view opened as generation `g`, unless another has opened.
function show(g, ...nodes) {
  if (g === gen) main.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
}

function failure(e) {
  return h("p", { class: "error", role: "alert" }, e instanceof ApiError ? e.message : "Something went wrong: " + e);
}

// ---------------------------------------------------------------- sign-in

function showSignIn(message) {
  stop();
  const g = ++gen;
  document.getElementById("signout").hidden = true;
  document.getElementById("who").textContent = "";
  const error = h("p", { class: "error", role: "alert" }, message || "");
  const email = h("input", { name: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: async (ev) => {
        ev.preventDefault();
        error.textContent = "";
        try {
          await api("POST", "/ui/session", { email: email.value, password: password.value });
          await whoAmI();
          route();
        } catch (e) {
          error.textContent = e.message;
        }
      },
    },
    h("h1", {}, "Sign in"),
    h("label", {}, "Email", email),
    h("label", {}, "Password", password),
    h("button", { class: "primary", type: "submit" }, "Sign in"),
    error,
    h("p", {}, h("a", { href: "#/forgot-password" }, "Forgot your password?")),
    h(
      "p",
      { class: "muted" },
      "No account yet? An admin creates one with `flowstore users create --email you@example.com --role admin` " +
        "(the password is read from standard input), or with the admin API key the server printed on its first start."
    )
  );
  show(g, form);
  email.focus();
}

// ---------------------------------------------------------------- password reset and email verification
// Reached without signing in: the links of reset and verification mail carry their
// token in the fragment (#/reset-password?token=…), which is never sent to a server.

function forgotPassword(g) {
  const out = h("p", { role: "status" });
  const email = h("input", { name: "email", type: "email", autocomplete: "username", required: true });
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: async (ev) => {
        ev.preventDefault();
        out.textContent = "";
        try {
          const r = await api("POST", "/api/v1/password-resets", { email: email.value });
          out.textContent = r.message;
        } catch (e) {
          out.textContent = e.message;
        }
      },
    },
    h("h1", {}, "Forgot your password?"),
    h("label", {}, "Email", email),
    h("button", { class: "primary", type: "submit" }, "Send me a link"),
    out,
    h("p", {}, h("a", { href: "#/" }, "Back to signing in"))
  );
  show(g, form);
  email.focus();
}

function resetPassword(g) {
  const token = params().get("token") || "";
  const out = h("p", { class: "error", role: "alert" });
  const password = h("input", { name: "password", type: "password", autocomplete: "new-password", required: true });
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: async (ev) => {
        ev.preventDefault();
        out.textContent = "";
        try {
          await api("POST", "/api/v1/password-resets/confirm", { token, password: password.value });
          // The token leaves the address bar (without a hashchange, which would
          // replace the message).
          history.replaceState(null, "", "#/");
          showSignIn("Your password is changed: sign in with it.");
        } catch (e) {
          out.textContent = e.message;
        }
      },
    },
    h("h1", {}, "Choose a new password"),
    h("label", {}, "New password", password),
    h("p", { class: "muted" }, "At least 8 characters, not a common password: a few unrelated words will do. Choosing it signs you out everywhere."),
    h("button", { class: "primary", type: "submit" }, "Set the password"),
    out
  );
  show(g, form);
  password.focus();
}

async function verifyEmail(g) {
  const token = params().get("token") || "";
  try {
    await api("POST", "/api/v1/email-verifications/confirm", { token });
    show(g, h("p", { role: "status" }, "Your email address is confirmed."), h("p", {}, h("a", { href: "#/" }, "Go to the dashboard")));
  } catch (e) {
    show(g, failure(e));
  }
}

async function whoAmI() {
  const w = await api("GET", "/api/v1/sessions/current");
  me = { user: w.user, role: w.role };
  document.getElementById("admin-link").hidden = w.role !== "admin";
  unread();
  document.getElementById("who").textContent = (w.user && w.user.email) || w.role;
  document.getElementById("signout").hidden = false;
}

// ---------------------------------------------------------------- overview

function chart(points, since, hours) {
  // One slot per hour of the window, so an hour without runs shows as a gap.
  const width = 720, height = 160, pad = 28;
  const max = Math.max(1, ...points.map((p) => p.total));
  const slot = (width - pad) / hours;
  const svg = h("svg", { class: "chart", viewBox: `0 0 ${width} ${height + 20}`, role: "img",
    "aria-label": "Finished runs per hour over the last 24 hours: completed, failed and cancelled" });
  svg.append(h("line", { class: "axis", x1: pad, y1: height, x2: width, y2: height }));
  svg.append(h("text", { x: 0, y: 12 }, String(max)));
  for (let i = 0; i < hours; i += 6) {
    const t = new Date(since + i * 3600000);
    svg.append(h("text", { x: pad + i * slot, y: height + 16 }, t.getHours() + ":00"));
  }
  for (const p of points) {
    const i = Math.floor((Date.parse(p.bucket_start) - since) / 3600000);
    if (i < 0 || i >= hours) continue;
    let y = height;
    for (const [cls, n] of [["c", p.completed], ["f", p.failed + p.timed_out], ["x", p.cancelled]]) {
      const tall = (n / max) * (height - 10);
      if (tall > 0) {
        y -= tall;
        svg.append(h("rect", { class: cls, x: pad + i * slot + 1, y, width: Math.max(1, slot - 2), height: tall },
          h("title", {}, `${when(p.bucket_start)}: ${p.completed} completed, ${p.failed} failed, ${p.timed_out} timed out, ${p.cancelled} cancelled`)));
      }
    }
  }
  return svg;
}

async function overview(g) {
  const hours = 24;
  const hour = Math.floor(Date.now() / 3600000) * 3600000;
  const since = hour - (hours - 1) * 3600000;
  const [points, failed] = await Promise.all([
    api("GET", "/api/v1/analytics/runs?bucket=hour&since=" + new Date(since).toISOString()),
    api("GET", "/api/v1/runs?status=failed&limit=10"),
  ]);
  const sum = (k) => points.reduce((a, p) => a + p[k], 0);
  const total = sum("total");
  const rate = total ? ((sum("failed") + sum("timed_out")) / total) * 100 : 0;
  const nodes = [
    h("h1", {}, "Overview"),
    h("div", { class: "cards" },
      h("div", { class: "card" }, h("div", { class: "muted" }, "Runs finished (24 h)"), h("div", { class: "big" }, total)),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Completed"), h("div", { class: "big" }, sum("completed"))),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Failed or timed out"), h("div", { class: "big" }, sum("failed") + sum("timed_out"))),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Failure rate"), h("div", { class: "big" }, rate.toFixed(1) + " %")),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Runs finished this hour"),
        h("div", { class: "big" }, points.filter((p) => Date.parse(p.bucket_start) >= hour).reduce((a, p) => a + p.total, 0)))
    ),
    h("h2", {}, "Finished runs per hour"),
    points.length ? chart(points, since, hours) : h("p", { class: "muted" }, "No run finished in the last 24 hours."),
    h("h2", {}, "Recent failures"),
    runTable(failed.items),
  ];
  if (me && me.role === "admin") {
    const [queues, workers] = await Promise.all([api("GET", "/api/v1/queues"), api("GET", "/api/v1/workers")]);
    const count = (k) => workers.reduce((a, w) => a + w[k], 0);
    nodes.splice(2, 0, h("div", { class: "cards" },
      h("div", { class: "card" }, h("div", { class: "muted" }, "Tasks done per minute (15 min)"),
        h("div", { class: "big", id: "throughput" }, (count("completed") / 15).toFixed(1))),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Tasks failed (15 min)"), h("div", { class: "big" }, count("failed"))),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Lease expirations (15 min)"),
        h("div", { class: "big", id: "expirations" }, count("lease_expired"))),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Active workers"), h("div", { class: "big" }, workers.length))
    ));
    nodes.push(
      h("h2", {}, "Queues"),
      queues.length
        ? table(["Handler type", "State", "Tasks"], queues.map((q) => [q.handler_type, badge(q.status), q.tasks]))
        : h("p", { class: "muted" }, "No task is ready or running."),
      h("h2", {}, "Workers seen in the last 15 minutes"),
      workers.length
        ? table(["Worker", "Last seen", "Running", "Completed", "Failed", "Lease expired"],
            workers.map((w) => [w.worker_id, when(w.last_seen_at), w.running, w.completed, w.failed, w.lease_expired]))
        : h("p", { class: "muted" }, "No worker was seen.")
    );
  }
  show(g, ...nodes);
}

function table(head, rows) {
  return h("div", { class: "scroll" },
    h("table", {}, h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))));
}

function runTable(runs) {
  if (!runs.length) return h("p", { class: "muted" }, "No runs.");
  return table(["Run", "Workflow", "Status", "Created", "Duration"],
    runs.map((r) => [
      h("a", { href: "#/runs/" + r.id }, r.execution_id),
      r.workflow_name,
      badge(r.status),
      when(r.created_at),
      ms(r.actual_duration),
    ]));
}

// ---------------------------------------------------------------- runs

async function runs(g) {
  const p = params();
  const field = (name, label, input) => h("label", {}, label, input);
  const status = h("select", { name: "status" },
    ["", "pending", "running", "completed", "failed", "cancelled", "timed_out"].map((s) =>
      h("option", { value: s, selected: p.get("status") === s }, s || "any")));
  const workflow = h("input", { name: "workflow_id", value: p.get("workflow_id") || "", placeholder: "workflow ID" });
  const text = h("input", { name: "q", value: p.get("q") || "", placeholder: "run, execution ID or name", type: "search" });
  const since = h("input", { name: "since", type: "datetime-local", value: p.get("since") ? p.get("since").slice(0, 16) : "" });
  const form = h("form", {
    class: "filters",
    onsubmit: (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      if (status.value) q.set("status", status.value);
      if (workflow.value.trim()) q.set("workflow_id", workflow.value.trim());
      if (text.value.trim()) q.set("q", text.value.trim());
      if (since.value) q.set("since", new Date(since.value).toISOString());
      location.hash = "#/runs" + (q.toString() ? "?" + q : "");
    },
  }, field("status", "Status", status), field("workflow_id", "Workflow", workflow), field("q", "Search", text),
    field("since", "Created since", since), h("button", { type: "submit", class: "primary" }, "Filter"));
  const query = new URLSearchParams();
  for (const k of ["status", "workflow_id", "q", "since", "cursor"]) if (p.get(k)) query.set(k, p.get(k));
  query.set("limit", "50");
  const list = h("div", {});
  const load = async () => {
    const page = await api("GET", "/api/v1/runs?" + query);
    const next = page.next_cursor
      ? h("a", { href: "#/runs?" + new URLSearchParams({ ...Object.fromEntries(p), cursor: page.next_cursor }) }, "Older runs →")
      : null;
    list.replaceChildren(runTable(page.items), h("p", {}, next));
  };
  show(g, h("h1", {}, "Runs"), form, list);
  await load();
  // The first page stays current while it is open: a run that starts, changes or
  // ends (one the reader may see: the server filters the stream) reloads it, at
  // most once a second. The stream starts at the newest event, not the history.
  if (!p.get("cursor")) {
    live = new EventSource("/api/v1/events?tail=true");
    const onEvent = () => {
      if (refresh) return;
      refresh = setTimeout(() => {
        refresh = null;
        load().catch(() => {});
      }, 1000);
    };
    for (const t of RUN_EVENTS) live.addEventListener(t, onEvent);
  }
}

// ---------------------------------------------------------------- one run

function dag(definition, tasks) {
  const steps = (definition && definition.steps) || [];
  if (!steps.length) return null;
  const depth = {};
  const byKey = Object.fromEntries(steps.map((s) => [s.key, s]));
  const level = (k, seen = new Set()) => {
    if (depth[k] !== undefined) return depth[k];
    if (seen.has(k)) return 0;
    seen.add(k);
    const deps = (byKey[k] && byKey[k].depends_on) || [];
    depth[k] = deps.length ? 1 + Math.max(...deps.map((d) => level(d, seen))) : 0;
    return depth[k];
  };
  steps.forEach((s) => level(s.key));
  const columns = [];
  steps.forEach((s) => (columns[depth[s.key]] = columns[depth[s.key]] || []).push(s.key));
  const status = Object.fromEntries(tasks.map((t) => [t.step_key, t.status]));
  const w = 150, gap = 50, rowH = 44;
  const pos = {};
  columns.forEach((col, x) => col.forEach((k, y) => (pos[k] = { x: x * (w + gap) + 4, y: y * rowH + 4 })));
  const rows = Math.max(...columns.map((c) => c.length));
  const [vw, vh] = [columns.length * (w + gap), rows * rowH + 8];
  const svg = h("svg", { class: "dag", width: vw, height: vh, viewBox: `0 0 ${vw} ${vh}`, role: "img",
    "aria-label": "The run's steps and their dependencies" });
  for (const s of steps) {
    for (const d of s.depends_on || []) {
      if (!pos[d]) continue;
      svg.append(h("line", { x1: pos[d].x + w, y1: pos[d].y + 16, x2: pos[s.key].x, y2: pos[s.key].y + 16 }));
    }
  }
  for (const s of steps) {
    // A workflow's own graph has no statuses; a run's shows each step's.
    const st = tasks.length ? status[s.key] || "pending" : null;
    svg.append(h("g", {},
      h("rect", { class: st || "step", x: pos[s.key].x, y: pos[s.key].y, width: w, height: 32 }),
      h("text", { x: pos[s.key].x + 8, y: pos[s.key].y + 20 }, st ? `${s.key} · ${st}` : s.key)));
  }
  return svg;
}

function gantt(attempts, tasks) {
  const step = (a) => (tasks.find((t) => t.id === a.task_id) || {}).step_key || a.agent_type;
  const started = attempts.filter((a) => a.started_at);
  if (!started.length) return h("p", { class: "muted" }, "No attempt has started.");
  const t0 = Math.min(...started.map((a) => Date.parse(a.started_at)));
  const end = (a) => (a.completed_at ? Date.parse(a.completed_at) : Date.now());
  const t1 = Math.max(t0 + 1, ...started.map(end));
  const width = 720, label = 160, rowH = 22;
  const svg = h("svg", { class: "gantt", width, height: started.length * rowH + 4,
    viewBox: `0 0 ${width} ${started.length * rowH + 4}`, role: "img",
    "aria-label": "Timeline of the attempts" });
  started.forEach((a, i) => {
    const x = label + ((Date.parse(a.started_at) - t0) / (t1 - t0)) * (width - label - 4);
    const wd = Math.max(2, ((end(a) - Date.parse(a.started_at)) / (t1 - t0)) * (width - label - 4));
    svg.append(h("text", { x: 0, y: i * rowH + 15 }, `${step(a)} #${a.attempt}`));
    svg.append(h("rect", { class: a.execution_status, x, y: i * rowH + 4, width: wd, height: 14 },
      h("title", {}, `${a.execution_status}, ${ms(a.duration_ms)} on ${a.worker_id || "?"}`)));
  });
  return svg;
}

async function run(g, id) {
  const r = await api("GET", "/api/v1/runs/" + id);
  const [tasks, attempts] = await Promise.all([
    api("GET", `/api/v1/runs/${id}/tasks`),
    api("GET", `/api/v1/runs/${id}/attempts`),
  ]);
  let definition = null;
  if (r.workflow_ref && r.workflow_version) {
    definition = await api("GET", `/api/v1/workflows/${r.workflow_ref}/versions/${r.workflow_version}`)
      .then((v) => v.definition)
      .catch(() => null);
  }
  const message = h("p", { role: "status" });
  const act = (label, path, ask, cls) =>
    h("button", {
      type: "button",
      class: cls,
      onclick: async () => {
        if (!confirm(ask)) return;
        try {
          const out = await api("POST", path);
          if (out && out.run) location.hash = "#/runs/" + out.run.id;
          else route();
        } catch (e) {
          message.textContent = e.message;
        }
      },
    }, label);
  const terminal = ["completed", "failed", "cancelled", "timed_out"].includes(r.status);
  const events = h("ol", { class: "events", "aria-label": "Events" });
  if (g !== gen) return;
  show(
    g,
    h("h1", {}, "Run ", r.execution_id, " ", badge(r.status)),
    h("p", { class: "muted" },
      r.workflow_ref ? h("a", { href: "#/workflows/" + r.workflow_ref }, r.workflow_name) : r.workflow_name,
      ` v${r.workflow_version || "?"} · started ${when(r.start_time)} · ended ${when(r.end_time)} · ${ms(r.actual_duration)}`),
    h("div", { class: "actions" },
      terminal ? null : act("Cancel", `/api/v1/runs/${id}/cancel`, "Cancel this run?", "danger"),
      ["failed", "cancelled", "timed_out"].includes(r.status)
        ? act("Retry", `/api/v1/runs/${id}/retry`, "Run this run's unfinished tasks again?")
        : null,
      r.workflow_ref ? act("Re-run", `/api/v1/runs/${id}/rerun`, "Start this workflow version again with the same input?") : null),
    message,
    definition ? h("h2", {}, "Steps") : null,
    dag(definition, tasks),
    h("h2", {}, "Tasks"),
    table(["Step", "Handler", "Status", "Attempt", "Retries"],
      tasks.map((t) => [t.step_key || t.id, t.handler_type || "–", badge(t.status), t.attempt, t.retry_count])),
    h("h2", {}, "Attempts"),
    gantt(attempts, tasks),
    table(["Task", "#", "Worker", "Status", "Started", "Duration", "Memory", "CPU", "Error or output"],
      attempts.map((a) => [
        (tasks.find((t) => t.id === a.task_id) || {}).step_key || a.task_id,
        a.attempt,
        a.worker_id || "–",
        badge(a.execution_status),
        when(a.started_at),
        ms(a.duration_ms),
        a.memory_usage_mb === null ? "–" : a.memory_usage_mb + " MB",
        ms(a.cpu_time_ms),
        h("pre", {}, JSON.stringify(Object.keys(a.error_details || {}).length ? a.error_details : a.output_results)),
      ])),
    h("h2", {}, "Input"),
    h("pre", {}, JSON.stringify(r.input, null, 2)),
    h("h2", {}, "Events"),
    events
  );
  // The run's events, from its first; a new one refreshes the view shortly after
  // (the replay of those already shown does not).
  let top = run.seen[id] || 0;
  live = new EventSource(`/api/v1/events?run_id=${encodeURIComponent(id)}`);
  const onEvent = (ev) => {
    const e = JSON.parse(ev.data);
    events.append(h("li", {}, `${when(e.created_at)} · ${e.event_type}`));
    top = Math.max(top, e.seq);
    if (!refresh && e.seq > (run.seen[id] || 0)) {
      refresh = setTimeout(() => {
        refresh = null;
        run.seen[id] = top;
        route();
      }, 300);
    }
  };
  for (const t of [...RUN_EVENTS, ...TASK_EVENTS]) live.addEventListener(t, onEvent);
  live.onmessage = onEvent;
}
run.seen = {};

// ---------------------------------------------------------------- workflows

async function workflows(g) {
  const p = params();
  const query = new URLSearchParams({ limit: "50" });
  for (const k of ["status", "cursor"]) if (p.get(k)) query.set(k, p.get(k));
  const page = await api("GET", "/api/v1/workflows?" + query);
  const next = page.next_cursor
    ? h("a", { href: "#/workflows?" + new URLSearchParams({ ...Object.fromEntries(p), cursor: page.next_cursor }) }, "More →")
    : null;
  show(
    g,
    h("h1", {}, "Workflows"),
    page.items.length
      ? table(["Name", "Status", "Version", "Strategy", "Updated"],
          page.items.map((w) => [
            h("a", { href: "#/workflows/" + w.id }, w.name),
            badge(w.status),
            "v" + w.version,
            `${w.execution_strategy}, ${w.failure_strategy}`,
            when(w.updated_at),
          ]))
      : h("p", { class: "muted" }, "No workflows."),
    h("p", {}, next)
  );
}

// The lines of `a` and `b` marked kept, removed or added (a longest common
// subsequence, which definitions of a few hundred lines afford).
function diff(a, b) {
  const n = a.length, m = b.length;
  const len = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      len[i][j] = a[i] === b[j] ? len[i + 1][j + 1] + 1 : Math.max(len[i + 1][j], len[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) out.push([" ", a[i++], j++]);
    else if (j < m && (i === n || len[i][j + 1] >= len[i + 1][j])) out.push(["+", b[j++]]);
    else out.push(["-", a[i++]]);
  }
  return out;
}

async function workflow(g, id) {
  const [w, summary, durations, versions, days, recent] = await Promise.all([
    api("GET", "/api/v1/workflows/" + id),
    api("GET", `/api/v1/workflows/${id}/summary`),
    api("GET", `/api/v1/workflows/${id}/durations`),
    api("GET", `/api/v1/workflows/${id}/versions`),
    api("GET", `/api/v1/analytics/runs?bucket=day&workflow_id=${id}`),
    api("GET", `/api/v1/runs?limit=10&workflow_id=${id}`),
  ]);
  const list = Array.isArray(versions) ? versions : versions.items || [];
  const newest = [...list].sort((x, y) => y.version - x.version);
  const pick = h("select", { "aria-label": "Compare with version" },
    newest.slice(1).map((v) => h("option", { value: v.version }, "v" + v.version)));
  const shown = h("pre", { class: "diff", "aria-live": "polite" });
  const compare = () => {
    const old = newest.find((v) => String(v.version) === pick.value);
    const lines = (v) => JSON.stringify(v.definition, null, 2).split("\n");
    const d = old ? diff(lines(old), lines(newest[0])) : lines(newest[0]).map((l) => [" ", l]);
    shown.replaceChildren(...d.map(([k, l]) => h("span", { class: k === "+" ? "add" : k === "-" ? "del" : "" }, `${k} ${l}\n`)));
  };
  pick.addEventListener("change", compare);
  const runs = summary.runs || {};
  const rate = runs.total ? ((runs.completed || 0) / runs.total) * 100 : 0;
  show(
    g,
    h("h1", {}, w.name, " ", badge(w.status)),
    h("p", { class: "muted" }, `v${w.version} · ${w.execution_strategy} · ${w.failure_strategy} · ${w.visibility}`),
    w.description ? h("p", {}, w.description) : null,
    h("div", { class: "cards" },
      h("div", { class: "card" }, h("div", { class: "muted" }, "Runs"), h("div", { class: "big" }, runs.total || 0)),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Success rate"), h("div", { class: "big" }, rate.toFixed(1) + " %")),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Median duration"), h("div", { class: "big" }, ms(durations.p50_ms))),
      h("div", { class: "card" }, h("div", { class: "muted" }, "p90 / p99"), h("div", { class: "big" }, `${ms(durations.p90_ms)} / ${ms(durations.p99_ms)}`))
    ),
    h("h2", {}, "Runs per day (30 days)"),
    days.length
      ? table(["Day", "Finished", "Completed", "Failed", "Mean duration"],
          days.map((d) => [new Date(d.bucket_start).toLocaleDateString(), d.total, d.completed, d.failed + d.timed_out, ms(d.average_duration_ms)]))
      : h("p", { class: "muted" }, "No run finished in the last 30 days."),
    h("h2", {}, "Steps"),
    dag(w.definition, []),
    h("h2", {}, "Recent runs"),
    runTable(recent.items),
    h("p", {}, h("a", { href: "#/runs?workflow_id=" + encodeURIComponent(id) }, "All runs of this workflow →")),
    h("h2", {}, "Versions"),
    table(["Version", "Note", "Created"], newest.map((v) => ["v" + v.version, v.change_note || "–", when(v.created_at)])),
    newest.length > 1 ? h("label", {}, "Changes in the current version since", pick) : null,
    shown
  );
  compare();
}

// ---------------------------------------------------------------- projects

async function projects(g) {
  const page = await api("GET", "/api/v1/projects?limit=100");
  show(
    g,
    h("h1", {}, "Projects"),
    page.items.length
      ? table(["Name", "Repository", "Branch", "Created"],
          page.items.map((p) => [
            h("a", { href: "#/projects/" + p.id }, p.name),
            p.repository_name || p.repository_url || "–",
            p.default_branch || "–",
            when(p.created_at),
          ]))
      : h("p", { class: "muted" }, "No projects.")
  );
}

// A board: one column per status, a card per item.
function board(statuses, items, card) {
  return h("div", { class: "board" },
    statuses.map((st) => {
      const here = items.filter((i) => i.status === st);
      return h("section", { class: "column", "aria-label": st },
        h("h3", {}, badge(st), " ", here.length),
        here.map((i) => h("div", { class: "card" }, card(i))));
    }));
}

async function project(g, id) {
  const [p, tasks, prs] = await Promise.all([
    api("GET", "/api/v1/projects/" + id),
    api("GET", `/api/v1/tasks?project_id=${id}&limit=200`),
    api("GET", `/api/v1/pull-requests?project_id=${id}&limit=200`),
  ]);
  show(
    g,
    h("h1", {}, p.name),
    p.description ? h("p", {}, p.description) : null,
    h("h2", {}, "Tasks"),
    board(["pending", "ready", "running", "completed", "failed", "cancelled"], tasks.items, (t) => [
      h("strong", {}, t.title),
      h("div", { class: "muted" }, `priority ${t.priority ?? "–"}${t.assigned_agent ? " · " + t.assigned_agent : ""}`),
    ]),
    h("h2", {}, "Pull requests"),
    board(["draft", "open", "review", "merged", "closed"], prs.items, (r) => [
      h("strong", {}, (r.pr_number ? "#" + r.pr_number + " " : "") + r.title),
      h("div", { class: "muted" }, `${r.branch_name} · ${(r.validation_results && r.validation_results.status) || "not validated"}`),
    ])
  );
}

// ---------------------------------------------------------------- handlers

async function handlers(g) {
  const [hs, health] = await Promise.all([
    api("GET", "/api/v1/handlers?limit=200"),
    api("GET", "/api/v1/components/health"),
  ]);
  const items = Array.isArray(hs) ? hs : hs.items;
  const comps = Array.isArray(health) ? health : health.items || [];
  show(
    g,
    h("h1", {}, "Handlers and components"),
    h("h2", {}, "Handlers"),
    items.length
      ? table(["Type", "Name", "Version", "Active"],
          items.map((x) => [x.handler_type, x.handler_name, x.version || "–", x.is_active ? "yes" : "no"]))
      : h("p", { class: "muted" }, "No handlers."),
    h("h2", {}, "Components"),
    comps.length
      ? table(["Name", "Type", "Status", "Health", "Last check"],
          comps.map((c) => [c.component.name, c.component.component_type, badge(c.component.status),
            badge(c.effective_health + (c.stale ? " (stale)" : "")), when(c.component.last_health_check)]))
      : h("p", { class: "muted" }, "No components.")
  );
}

// ---------------------------------------------------------------- admin

async function admin(g) {
  const [users, teams, keys, hooks, audit, verify, configs] = await Promise.all([
    api("GET", "/api/v1/users?limit=100"),
    api("GET", "/api/v1/teams?limit=100"),
    api("GET", "/api/v1/apikeys?limit=100"),
    api("GET", "/api/v1/webhooks?limit=100"),
    api("GET", "/api/v1/audit?limit=50"),
    api("GET", "/api/v1/audit/verify"),
    api("GET", "/api/v1/configurations?limit=100"),
  ]);
  const intact = !verify.first_broken && !verify.head_mismatch;
  show(
    g,
    h("h1", {}, "Administration"),
    h("h2", {}, "Users"),
    table(["Email", "Name", "Role", "Status", "Last sign-in"],
      users.items.map((u) => [u.email, u.display_name || "–", u.role, badge(u.status), when(u.last_login_at)])),
    h("h2", {}, "Teams"),
    teams.items.length ? table(["Name", "Description"], teams.items.map((t) => [t.name, t.description || "–"]))
      : h("p", { class: "muted" }, "No teams."),
    h("h2", {}, "API keys"),
    table(["Name", "Prefix", "Role", "Scopes", "Last used", "Revoked"],
      keys.items.map((k) => [k.name, k.prefix, k.role, (k.scopes || []).join(", ") || "role", when(k.last_used_at), when(k.revoked_at)])),
    h("h2", {}, "Webhooks"),
    hooks.items.length
      ? table(["URL", "Events", "Active", "Deliveries"],
          hooks.items.map((w) => [w.url, (w.events || []).join(", "), w.active ? "yes" : "no",
            h("a", { href: "#/admin/webhooks/" + w.id }, "deliveries")]))
      : h("p", { class: "muted" }, "No webhooks."),
    h("h2", {}, "Audit log"),
    h("p", { class: intact ? "" : "error", role: "status" },
      intact
        ? `The chain verifies: ${verify.checked} entries up to #${verify.last_seq}.`
        : `The chain does not verify: ${JSON.stringify(verify.first_broken || verify.head_mismatch)}`),
    table(["#", "When", "Actor", "Action", "Entity"],
      audit.items.map((e) => [e.seq, when(e.created_at), `${e.actor_type}${e.actor_id ? " " + e.actor_id : ""}`, e.action,
        `${e.entity_type} ${e.entity_id || ""}`])),
    h("h2", {}, "Configurations"),
    configs.items.length
      ? table(["Key", "Type", "Value"],
          configs.items.map((c) => [c.key, c.config_type || "–", c.is_sensitive ? "(secret, not shown)" : JSON.stringify(c.value)]))
      : h("p", { class: "muted" }, "No configurations.")
  );
}

async function deliveries(g, id) {
  const page = await api("GET", `/api/v1/webhooks/${id}/deliveries?limit=100`);
  show(
    g,
    h("h1", {}, "Deliveries"),
    page.items.length
      ? table(["Event", "Status", "Attempts", "Answer", "Next attempt", "Created"],
          page.items.map((d) => [d.event_type || d.event_seq, badge(d.status), d.attempts, d.response_code ?? "–",
            when(d.next_attempt_at), when(d.created_at)]))
      : h("p", { class: "muted" }, "No deliveries yet.")
  );
}

// ---------------------------------------------------------------- notifications

async function unread() {
  const link = document.getElementById("notes-link");
  try {
    const n = await api("GET", "/api/v1/notifications/unread-count");
    link.textContent = n.unread ? `Notifications (${n.unread})` : "Notifications";
  } catch (e) {
    /* the count is a hint; the page says more */
  }
}

async function notifications(g) {
  const page = await api("GET", "/api/v1/notifications?limit=100");
  const readAll = h("button", {
    type: "button",
    onclick: async () => {
      await api("POST", "/api/v1/notifications/read-all");
      route();
    },
  }, "Mark all read");
  // A user whose address is not confirmed may ask for the message that confirms it.
  const sent = h("span", { role: "status" });
  const confirm = me && me.user && !me.user.email_verified_at
    ? h("button", {
        type: "button",
        onclick: async () => {
          try {
            sent.textContent = (await api("POST", "/api/v1/users/me/email-verification")).message;
          } catch (e) {
            sent.textContent = e.message;
          }
        },
      }, "Confirm my email address")
    : null;
  show(
    g,
    h("h1", {}, "Notifications"),
    h("div", { class: "actions" }, readAll, confirm, sent),
    page.items.length
      ? table(["", "When", "What", "Kind"],
          page.items.map((n) => [
            n.read ? "" : h("strong", {}, "new"),
            when(n.created_at),
            n.data && n.data.run_id
              ? h("a", { href: "#/runs/" + n.data.run_id }, n.title)
              : n.data && n.data.workflow_id
                ? h("a", { href: "#/workflows/" + n.data.workflow_id }, n.title)
                : n.title,
            n.type,
          ]))
      : h("p", { class: "muted" }, "Nothing to tell yet.")
  );
}

// ---------------------------------------------------------------- routing

async function route() {
  stop();
  const g = ++gen;
  const path = location.hash.replace(/^#/, "").split("?")[0] || "/";
  for (const a of document.querySelectorAll("#nav a")) {
    const target = a.getAttribute("href").slice(1);
    a.setAttribute("aria-current", (target === "/" ? path === "/" : path.startsWith(target)) ? "page" : "false");
  }
  if (path === "/forgot-password") return forgotPassword(g);
  if (path === "/reset-password") return resetPassword(g);
  if (path === "/verify-email") return verifyEmail(g);
  if (!me) {
    try {
      await whoAmI();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) show(g, failure(e));
      return;
    }
  }
  unread();
  try {
    const m = path.match(/^\/runs\/([0-9a-fA-F-]{36})$/);
    const w = path.match(/^\/workflows\/([0-9a-fA-F-]{36})$/);
    const pr = path.match(/^\/projects\/([0-9a-fA-F-]{36})$/);
    const hook = path.match(/^\/admin\/webhooks\/([0-9a-fA-F-]{36})$/);
    if (m) await run(g, m[1]);
    else if (w) await workflow(g, w[1]);
    else if (pr) await project(g, pr[1]);
    else if (hook) await deliveries(g, hook[1]);
    else if (path === "/projects") await projects(g);
    else if (path === "/handlers") await handlers(g);
    else if (path === "/admin") await admin(g);
    else if (path === "/notifications") await notifications(g);
    else if (path === "/workflows") await workflows(g);
    else if (path === "/runs") await runs(g);
    else await overview(g);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) show(g, failure(e));
  }
}

function theme() {
  const chosen = localStorage.getItem("flowstore-theme");
  if (chosen) document.documentElement.dataset.theme = chosen;
}

document.getElementById("theme").addEventListener("click", () => {
  const dark = getComputedStyle(document.documentElement).getPropertyValue("--bg").trim() === "#14161a";
  const next = dark ? "light" : "dark";
  localStorage.setItem("flowstore-theme", next);
  document.documentElement.dataset.theme = next;
});

document.getElementById("signout").addEventListener("click", async () => {
  try {
    await api("DELETE", "/api/v1/sessions/current");
  } catch (e) {
    /* signed out already */
  }
  me = null;
  showSignIn("Signed out.");
});

window.addEventListener("hashchange", route);
theme();
route();
