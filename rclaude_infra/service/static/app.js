// The dashboard's one script: each page's data from the /v1 API, with the session's CSRF
// token on what changes anything. Everything a task wrote is put in as text, never HTML.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const DONE = new Set(["SUCCEEDED", "FAILED", "STOPPED", "PREEMPTED"]);
// The most log lines kept on the page: a long log stays fast (the oldest are dropped).
const MAX_LINES = 5000;

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const answer = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = answer.headers.get("content-type") || "";
  const data = type.includes("json") ? await answer.json() : await answer.text();
  if (!answer.ok) throw Object.assign(new Error(data.detail || String(answer.status)),
                                      { status: answer.status, problem: data });
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child ?? "");
  return node;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function duration(start, stop) {
  if (!start) return "";
  const seconds = Math.max(0, ((stop ? new Date(stop) : new Date()) - new Date(start)) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function badge(node, status) {
  node.textContent = status.toLowerCase();
  node.className = `badge ${status.toLowerCase()}`;
}

// -- the task list ---------------------------------------------------------------------

async function tasksPage() {
  const rows = document.getElementById("task-rows");
  const state = document.getElementById("tasks-state");
  const older = document.getElementById("older");
  const filter = document.getElementById("status-filter");
  let cursor = null;

  async function load(more) {
    const params = new URLSearchParams({ limit: "25" });
    if (filter.value) params.set("status", filter.value);
    if (more && cursor) params.set("cursor", cursor);
    const page = await api("GET", `/v1/tasks?${params}`);
    if (!more) rows.replaceChildren();
    for (const task of page.tasks) {
      const status = el("span", {});
      badge(status, task.status);
      rows.append(el("tr", { "data-task": task.id },
        el("td", {}, el("a", { href: `/tasks/${encodeURIComponent(task.id)}`, class: "mono" }, task.id),
          el("div", { class: "muted clip" }, task.prompt || task.command || "")),
        el("td", {}, status),
        el("td", { class: "clip" }, task.repo || ""),
        el("td", {}, when(task.started_at || task.created_at)),
        el("td", {}, duration(task.started_at, task.stopped_at))));
    }
    cursor = page.next_cursor;
    older.hidden = !cursor;
    state.textContent = rows.children.length ? "" : "No tasks yet.";
    return page.tasks;
  }

  filter.addEventListener("change", () => load(false));
  older.addEventListener("click", () => load(true));
  await load(false);
  // Status badges of the tasks not ended follow along.
  setInterval(async () => {
    const open = [...rows.querySelectorAll("tr")].filter(
      (row) => !DONE.has(row.querySelector(".badge").textContent.toUpperCase()));
    for (const row of open) {
      try {
        const task = await api("GET", `/v1/tasks/${encodeURIComponent(row.dataset.task)}`);
        badge(row.querySelector(".badge"), task.status);
        row.children[4].textContent = duration(task.started_at, task.stopped_at);
      } catch { /* gone: the next load says so */ }
    }
  }, 3000);
}

// -- a new task --------------------------------------------------------------------------

async function newPage() {
  const form = document.getElementById("new-task");
  const prompt = document.getElementById("f-prompt");
  const command = document.getElementById("f-command");
  for (const radio of form.querySelectorAll('input[name="kind"]')) {
    radio.addEventListener("change", () => {
      const isPrompt = form.kind.value === "prompt";
      for (const node of [prompt, prompt.labels[0]]) node.hidden = !isPrompt;
      for (const node of [command, command.labels[0]]) node.hidden = isPrompt;
    });
  }
  try {
    const { secrets } = await api("GET", "/v1/secrets");
    const box = document.getElementById("secret-choices");
    if (secrets.length) box.append(el("p", { class: "label" }, "Secrets to pass"));
    for (const secret of secrets) {
      const id = `s-${secret.name}`;
      box.append(el("label", { for: id },
        el("input", { type: "checkbox", id, name: "secrets", value: secret.name }),
        ` ${secret.name}`));
    }
  } catch { /* no secrets to offer */ }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const node of form.querySelectorAll(".error")) node.textContent = "";
    const body = {};
    if (form.kind.value === "prompt") body.prompt = prompt.value;
    else body.command = command.value;
    for (const name of ["repo", "ref", "output"]) {
      if (form[name].value) body[name] = form[name].value;
    }
    for (const name of ["max_budget_usd", "timeout"]) {
      if (form[name].value) body[name] = Number(form[name].value);
    }
    const chosen = [...form.querySelectorAll('input[name="secrets"]:checked')].map((n) => n.value);
    if (chosen.length) body.secrets = chosen;
    try {
      const task = await api("POST", "/v1/tasks", body);
      window.location.assign(`/tasks/${encodeURIComponent(task.id)}`);
    } catch (error) {
      const field = (error.problem && error.problem.field) || "form";
      const slot = document.getElementById(`e-${field.split(".")[0]}`) ||
                   document.getElementById("e-form");
      slot.textContent = error.message;
      document.getElementById(`f-${field}`)?.focus();
    }
  });
}

// -- one task ----------------------------------------------------------------------------

async function taskPage() {
  const id = document.body.dataset.task;
  const path = `/v1/tasks/${encodeURIComponent(id)}`;
  const status = document.getElementById("status");
  const log = document.getElementById("log");
  const cancel = document.getElementById("cancel");
  let lines = 0;

  // Each status the task went through, when this page (or the task's times) saw it.
  const timeline = document.getElementById("timeline");
  const marked = new Set();
  function mark(state, at) {
    if (marked.has(state)) return;
    marked.add(state);
    const dot = el("span", {});
    badge(dot, state);
    timeline.append(el("li", {}, dot, " ", el("time", at ? { datetime: at } : {}, when(at) || "now")));
  }
  function timelineOf(task) {
    mark("QUEUED", task.created_at);
    if (task.started_at) mark("RUNNING", task.started_at);
    if (task.status !== "QUEUED") mark(task.status, DONE.has(task.status) ? task.stopped_at : null);
  }

  function show(task) {
    timelineOf(task);
    badge(status, task.status);
    document.getElementById("what").textContent = task.prompt || task.command || "";
    const facts = document.getElementById("facts");
    facts.replaceChildren();
    const items = [["Repository", task.repo], ["Ref", task.ref], ["Created", when(task.created_at)],
                   ["Started", when(task.started_at)],
                   ["Duration", duration(task.started_at, task.stopped_at)],
                   ["Exit code", task.exit_code], ["Why", task.reason]];
    for (const [name, value] of items) {
      if (value === null || value === undefined || value === "") continue;
      facts.append(el("dt", {}, name), el("dd", {}, String(value)));
    }
    cancel.hidden = DONE.has(task.status);
  }

  // Lines are put on the page once a frame, together: a burst of thousands (a long log
  // read from the start) costs one layout, not one each.
  let pending = [];
  function append(text) {
    pending.push(text);
    lines += 1;
    // A hidden tab gets no frames: what it cannot show is not kept either.
    if (pending.length > 2 * MAX_LINES) pending = pending.slice(-MAX_LINES);
    if (pending.length === 1) requestAnimationFrame(flush);
  }
  function flush() {
    const batch = pending.slice(-MAX_LINES);
    pending = [];
    const fragment = document.createDocumentFragment();
    for (const text of batch) fragment.append(el("div", { class: "line" }, text));
    log.append(fragment);
    const extra = log.children.length - MAX_LINES;
    for (let n = 0; n < extra; n += 1) log.firstElementChild.remove();
    if (lines > MAX_LINES) {
      document.getElementById("log-note").textContent =
        `Showing the last ${MAX_LINES} of ${lines} lines.`;
    }
    log.scrollTop = log.scrollHeight;
  }

  async function ended() {
    document.getElementById("follow").hidden = false;
    try {
      const result = await api("GET", `${path}/result`);
      const facts = document.getElementById("result");
      const cost = result.cost || {};
      const agent = result.agent || {};
      const items = [["Cost", cost.total_usd !== undefined ? `$${Number(cost.total_usd).toFixed(4)}` : ""],
                     ["Model", cost.model_usd != null ? `$${Number(cost.model_usd).toFixed(4)}` : ""],
                     ["Compute", cost.compute_usd != null ? `$${Number(cost.compute_usd).toFixed(4)}` : ""],
                     ["Turns", agent.turns], ["Branch", result.branch],
                     ["Pull request", result.pull_request_url]];
      for (const [name, value] of items) {
        if (value === null || value === undefined || value === "") continue;
        facts.append(el("dt", {}, name), el("dd", {}, String(value)));
      }
      document.getElementById("summary").textContent = agent.text || "";
      const files = await api("GET", `${path}/files`);
      const list = document.getElementById("files");
      for (const file of files.files) {
        const href = `${path}/files/${file.name.split("/").map(encodeURIComponent).join("/")}`;
        list.append(el("li", {}, el("a", { href, download: file.name.split("/").pop() }, file.name),
                       el("span", { class: "muted" }, ` ${file.size.toLocaleString()} bytes`)));
      }
      for (const skipped of files.skipped) {
        list.append(el("li", { class: "muted" }, `${skipped.name}: not taken (${skipped.why})`));
      }
      const diff = await api("GET", `${path}/diff/files`);
      renderDiff(document.getElementById("diff"), diff.files);
      document.getElementById("outcome").hidden = false;
    } catch (error) {
      document.getElementById("log-note").textContent = error.message;
    }
  }

  show(await api("GET", path));
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    show(await api("POST", `${path}/cancel`));
  });
  document.getElementById("follow-up").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const task = await api("POST", `${path}/follow-up`,
                             { prompt: document.getElementById("f-follow").value });
      window.location.assign(`/tasks/${encodeURIComponent(task.id)}`);
    } catch (error) {
      document.getElementById("e-follow").textContent = error.message;
    }
  });
  // The browser reconnects an event stream by itself, sending Last-Event-ID: the
  // service goes on after it, nothing missed or repeated.
  const events = new EventSource(`${path}/events`);
  events.addEventListener("log", (event) => append(JSON.parse(event.data).text));
  events.addEventListener("status", (event) => {
    const task = JSON.parse(event.data);
    show(task);
    if (DONE.has(task.status)) {
      events.close();
      ended();
    }
  });
  events.addEventListener("error", (event) => {
    if (event.data) document.getElementById("log-note").textContent = JSON.parse(event.data).detail;
  });
}

// A file with more lines than this starts closed and is drawn when opened, so a large
// patch does not stall the page.
const OPEN_LINES = 400;

function renderDiff(box, files) {
  box.replaceChildren();
  if (!files.length) {
    box.append(el("p", { class: "muted" }, "No change."));
    return;
  }
  for (const file of files) {
    const lines = file.hunks.reduce((total, hunk) => total + hunk.lines.length, 0);
    const title = file.status === "renamed" ? `${file.old_name} → ${file.name}` : file.name;
    const summary = el("summary", {},
      el("span", { class: "mono" }, title),
      el("span", { class: `badge ${file.status}` }, file.status),
      el("span", { class: "plus" }, ` +${file.added}`),
      el("span", { class: "minus" }, ` −${file.removed}`));
    const details = el("details", { class: "file-diff" }, summary);
    const draw = () => {
      if (details.dataset.drawn) return;
      details.dataset.drawn = "1";
      if (file.binary) {
        details.append(el("p", { class: "muted" }, "Binary file: not shown."));
        return;
      }
      const table = el("table", { class: "code", "aria-label": file.name });
      const body = el("tbody");
      for (const hunk of file.hunks) {
        body.append(el("tr", { class: "hunk" }, el("td", { colspan: "3" }, hunk.header)));
        for (const line of hunk.lines) {
          const kind = { "+": "add", "-": "del", "\\": "note" }[line.kind] || "";
          const code = el("td", { class: "src" }, line.kind);
          for (const [css, text] of line.tokens) code.append(css ? el("span", { class: css }, text) : text);
          body.append(el("tr", { class: `d ${kind}` },
            el("td", { class: "num" }, line.old == null ? "" : String(line.old)),
            el("td", { class: "num" }, line.new == null ? "" : String(line.new)), code));
        }
      }
      table.append(body);
      // Scrolls sideways on a narrow screen: focusable, so a keyboard can scroll it too.
      details.append(el("div", { class: "table-wrap", tabindex: "0", role: "region",
                                 "aria-label": `Changes to ${file.name}` }, table));
    };
    details.addEventListener("toggle", () => { if (details.open) draw(); });
    if (lines <= OPEN_LINES) {
      details.open = true;
      draw();
    } else {
      summary.append(el("span", { class: "muted" }, ` (${lines.toLocaleString()} lines: open to show)`));
    }
    box.append(details);
  }
}

// -- usage -------------------------------------------------------------------------------

function dollars(value) {
  return `$${Number(value || 0).toFixed(2)}`;
}

async function planCard(usage) {
  const billing = await api("GET", "/v1/billing");
  const plan = usage.plan;
  document.getElementById("p-name").textContent = plan.title;
  document.getElementById("p-period").textContent =
    `${when(usage.since)} to ${when(usage.until)}`;
  const meter = document.getElementById("p-meter");
  const allowance = usage.allowance;
  if (allowance == null) {
    meter.hidden = true;
    document.querySelector("label[for=p-meter]").hidden = true;
  } else {
    meter.max = allowance;
    meter.value = Math.min(usage.executions, allowance);
  }
  document.getElementById("p-used").textContent = allowance == null
    ? `${usage.executions} executions (no limit)`
    : `${usage.executions} of ${allowance} executions`
      + (usage.executions > allowance && usage.limits.overage ? " (the rest billed as overage)" : "")
      + `; ${usage.limits.concurrency} at once`;
  const note = document.getElementById("p-note");
  if (!billing.stripe) {
    note.textContent = "Billing is not set up on this service: an administrator assigns plans.";
  } else if (billing.grace_until) {
    note.textContent = `A payment failed: update your card before ${when(billing.grace_until)} to keep ${plan.title}.`;
  } else if (billing.note) {
    note.textContent = billing.note;
  }
  const go = async (path) => {
    try {
      window.location.assign((await api("POST", path)).url);
    } catch (error) {
      document.getElementById("e-billing").textContent = error.message;
    }
  };
  const upgrade = document.getElementById("p-upgrade");
  const manage = document.getElementById("p-manage");
  upgrade.hidden = !billing.stripe || plan.name !== "free";
  manage.hidden = !billing.stripe || !billing.can_manage;
  upgrade.addEventListener("click", () => go("/v1/billing/checkout"));
  manage.addEventListener("click", () => go("/v1/billing/portal"));
}

async function usagePage() {
  const usage = await api("GET", "/v1/usage");
  planCard(usage);
  document.getElementById("u-tasks").textContent = String(usage.tasks);
  document.getElementById("u-model").textContent = dollars(usage.model_usd);
  document.getElementById("u-compute").textContent = dollars(usage.compute_usd);
  document.getElementById("u-total").textContent = dollars(usage.total_usd);
  const chart = document.getElementById("chart");
  if (!usage.days.length) {
    chart.append(el("p", { class: "muted" }, "No cost yet this month."));
  } else {
    // Stacked bars, model over compute, drawn as SVG nodes (no library, no inline script).
    const ns = "http://www.w3.org/2000/svg";
    const width = 640, height = 200, gap = 4;
    const top = Math.max(...usage.days.map((d) => d.model_usd + d.compute_usd), 0.0001);
    const bar = Math.min(48, (width - gap * usage.days.length) / usage.days.length);
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height + 20}`);
    svg.setAttribute("aria-hidden", "true");
    usage.days.forEach((day, n) => {
      const x = n * (bar + gap);
      const compute = (day.compute_usd / top) * height;
      const model = (day.model_usd / top) * height;
      for (const [kind, h, y] of [["compute", compute, height - compute],
                                  ["model", model, height - compute - model]]) {
        const rect = document.createElementNS(ns, "rect");
        Object.entries({ x, y, width: bar, height: Math.max(h, 0), class: kind })
          .forEach(([k, v]) => rect.setAttribute(k, String(v)));
        const title = document.createElementNS(ns, "title");
        title.textContent = `${day.date}: ${kind} ${dollars(kind === "model" ? day.model_usd : day.compute_usd)}`;
        rect.append(title);
        svg.append(rect);
      }
      const label = document.createElementNS(ns, "text");
      Object.entries({ x: x + bar / 2, y: height + 14, "text-anchor": "middle" })
        .forEach(([k, v]) => label.setAttribute(k, String(v)));
      label.textContent = day.date.slice(8);
      svg.append(label);
    });
    chart.append(svg);
    chart.setAttribute("aria-label", usage.days.map(
      (d) => `${d.date}: model ${dollars(d.model_usd)}, compute ${dollars(d.compute_usd)}`).join("; "));
  }
  const rows = document.getElementById("repo-rows");
  for (const repo of usage.repos) {
    rows.append(el("tr", {}, el("td", { class: "clip" }, repo.repo), el("td", {}, String(repo.tasks)),
                   el("td", {}, dollars(repo.total_usd))));
  }
}

// -- settings ----------------------------------------------------------------------------

async function settingsPage() {
  const tokenRows = document.getElementById("token-rows");
  const secretRows = document.getElementById("secret-rows");

  async function tokens() {
    const listed = (await api("GET", "/v1/tokens")).tokens;
    tokenRows.replaceChildren();
    for (const token of listed) {
      const revoke = el("button", { type: "button", class: "quiet danger" }, "Revoke");
      revoke.setAttribute("aria-label", `Revoke ${token.name}`);
      revoke.hidden = Boolean(token.revoked_at);
      revoke.addEventListener("click", async () => {
        await api("DELETE", `/v1/tokens/${token.id}`);
        await tokens();
      });
      tokenRows.append(el("tr", { "data-token": String(token.id) },
        el("td", {}, token.name), el("td", { class: "mono" }, `${token.prefix}…`),
        el("td", {}, token.scopes.join(", ")),
        el("td", {}, token.revoked_at ? `revoked ${when(token.revoked_at)}` : when(token.last_used_at) || "never"),
        el("td", {}, revoke)));
    }
  }

  async function secrets() {
    const listed = (await api("GET", "/v1/secrets")).secrets;
    secretRows.replaceChildren();
    if (!listed.length) secretRows.append(el("li", { class: "muted" }, "No secrets yet."));
    for (const secret of listed) {
      const remove = el("button", { type: "button", class: "quiet danger" }, "Delete");
      remove.setAttribute("aria-label", `Delete ${secret.name}`);
      remove.addEventListener("click", async () => {
        await api("DELETE", `/v1/secrets/${encodeURIComponent(secret.name)}`);
        await secrets();
      });
      secretRows.append(el("li", {}, el("span", { class: "mono" }, secret.name),
        el("span", { class: "muted" }, ` updated ${when(secret.updated_at)} `), remove));
    }
  }

  document.getElementById("new-token").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("e-token");
    error.textContent = "";
    try {
      const made = await api("POST", "/v1/tokens", { name: event.target.name.value });
      document.getElementById("token-value").textContent = made.token;
      document.getElementById("token-shown").hidden = false;
      event.target.reset();
      await tokens();
    } catch (problem) {
      error.textContent = problem.message;
    }
  });
  document.getElementById("new-secret").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("e-secret");
    error.textContent = "";
    const form = event.target;
    try {
      await api("PUT", `/v1/secrets/${encodeURIComponent(form.name.value)}`, { value: form.value.value });
      form.reset();
      await secrets();
    } catch (problem) {
      error.textContent = problem.message;
    }
  });
  const me = await api("GET", "/v1/me");
  const ids = document.getElementById("identity-rows");
  if (!me.identities.length) ids.append(el("li", { class: "muted" }, "None linked: you signed in by a link."));
  for (const identity of me.identities) {
    ids.append(el("li", {}, `${identity.provider === "github" ? "GitHub" : "Google"}, linked ${when(identity.linked_at)}`));
  }
  await Promise.all([tokens(), secrets()]);
}

// -- admin -------------------------------------------------------------------------------

async function adminPage() {
  const overview = await api("GET", "/v1/admin/overview");
  const d = overview.deployment;
  const facts = document.getElementById("deployment");
  const items = [["Name", d.name], ["Tasks run", d.provider === "local" ? "on this machine" : "on ECS"],
                 ["Region", d.region], ["Spent this month", d.spend_this_month_usd == null ? "unknown" : dollars(d.spend_this_month_usd)],
                 [d.provider === "local" ? "Deployed on ECS, a month" : "Estimate a month",
                  d.monthly_usd == null ? `none: ${d.error}` : dollars(d.monthly_usd)],
                 ["Idle a month", d.idle_monthly_usd == null ? "" : dollars(d.idle_monthly_usd)],
                 ["Capacity", `${d.plan.instance_types.join(", ")} (${d.plan.spot ? "spot" : "on-demand"}, `
                              + `${d.plan.min_instances}–${d.plan.max_instances} instances, NAT ${d.plan.nat})`],
                 ...liveStatus(d.provider, d.status)];
  for (const [name, value] of items) {
    if (value === "") continue;
    facts.append(el("dt", {}, name), el("dd", {}, String(value)));
  }
  const rows = document.getElementById("user-rows");
  for (const user of overview.users) {
    const used = user.allowance == null ? `${user.executions}` : `${user.executions} / ${user.allowance}`;
    rows.append(el("tr", {}, el("td", {}, user.email), el("td", {}, user.name || ""),
      el("td", {}, user.is_admin ? "yes" : ""), el("td", {}, user.plan),
      el("td", {}, used), el("td", {}, dollars(user.spent_usd)),
      el("td", {}, when(user.created_at))));
  }
}

function liveStatus(provider, status) {
  if (status.error) return [["Status", `unknown: ${status.error}`]];
  const items = [["Tasks not ended", String(status.tasks_not_ended)]];
  if (provider === "local") return items;
  const instances = status.instances.map((i) => `${i.type || "?"} ${i.lifecycle} ${i.status}`
    + `, ${i.running} running${i.agent_connected ? "" : ", agent disconnected"}`);
  return [["Cluster", status.cluster || "not deployed"],
          ["Instances", instances.length ? instances.join("; ") : "none running"], ...items];
}

const pages = { tasks: tasksPage, new: newPage, task: taskPage, usage: usagePage,
                settings: settingsPage, admin: adminPage };
pages[document.body.dataset.page]?.();
