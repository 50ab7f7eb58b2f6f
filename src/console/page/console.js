// The console's page: it renders what the console streams (/api/events, one snapshot a second) and sends its
// two controls. Everything that came from an agent is written with textContent, never as markup; the only
// markup taken from the server is a scenario run's view, which the console escapes as it writes it.
'use strict';

const $ = (id) => document.getElementById(id);
let latest = null;
let selectedRun = null;
let shownRunState = '';
let pending = null;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function bytes(n) {
  if (!n) return '0 B';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}

function duration(ms) {
  if (ms >= 3600000) return Math.floor(ms / 3600000) + ' h ' + String(Math.floor(ms % 3600000 / 60000)).padStart(2, '0') + ' min';
  if (ms >= 60000) return Math.floor(ms / 60000) + ' min ' + String(Math.floor(ms % 60000 / 1000)).padStart(2, '0') + ' s';
  if (ms < 1000) return Math.round(ms) + ' ms';
  return (ms / 1000).toFixed(1) + ' s';
}

function number(x, digits) {
  if (x === null || x === undefined) return '-';
  return Number(x).toFixed(digits);
}

function held(h) {
  const parts = [];
  if (h.ram_bytes) parts.push(bytes(h.ram_bytes) + ' RAM');
  if (h.disk_bytes || h.files) parts.push(bytes(h.disk_bytes) + ' disk in ' + h.files + ' files');
  if (h.connections) parts.push(h.connections + ' conns');
  if (h.busy_threads) parts.push(h.busy_threads + ' spinning');
  if (h.blocked_threads) parts.push(h.blocked_threads + ' blocked');
  return parts.length ? parts.join(', ') : '-';
}

function faults(h) {
  const parts = [];
  if (h.net_faults) parts.push(h.net_faults + ' net');
  if (h.proxies) parts.push(h.proxies + ' proxies');
  return parts.length ? parts.join(', ') : '-';
}

function say(text) {
  const box = $('message');
  box.textContent = text;
  box.hidden = !text;
}

async function post(path, body) {
  const response = await fetch(path, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || ('HTTP ' + response.status));
  return answer;
}

function confirmThen(text, action) {
  pending = action;
  $('confirm-text').textContent = text;
  $('confirm').hidden = false;
  $('confirm-yes').focus();
}

async function cancelJob(agent, job) {
  try {
    const answer = await post('/api/cancel', { agent: agent, job: job });
    say(answer.agent_status < 300 ? 'job ' + job + ' on ' + agent + ' cancelled'
      : 'job ' + job + ' not cancelled: ' + ((answer.answer || {}).error || answer.agent_status));
  } catch (err) { say('cancel: ' + err.message); }
}

async function abort(agent) {
  try {
    const answer = await post('/api/abort', agent ? { agent: agent } : {});
    const a = answer.answer || {};
    if (answer.agent_status >= 300) { say('abort refused: ' + (a.error || answer.agent_status)); return; }
    const reached = a.forward ? ', the flood passed to ' + a.forward.accepted + ' agents' : '';
    say('abort ' + (agent ? 'of ' + agent : 'of the swarm') + ': ' + (a.cancelled_jobs || 0)
      + ' jobs cancelled on ' + (a.agent || '?') + reached);
  } catch (err) { say('abort: ' + err.message); }
}

function renderAgents(s) {
  const body = $('agents').tBodies[0];
  body.replaceChildren();
  let up = 0, running = 0, restarts = 0;
  for (const a of s.swarm.agents) {
    const row = el('tr');
    row.dataset.address = a.address;
    if (a.state === 'up') {
      const st = a.status;
      up++; running += st.running.length; restarts += st.restarts;
      row.append(el('td', st.agent), el('td', a.address), el('td', 'up', 'state-up'),
        el('td', duration(st.uptime_seconds * 1000)), el('td', st.restarts), el('td', bytes(st.process.rss_bytes)),
        el('td', st.process.threads), el('td', held(st.held)), el('td', faults(st.held)));
      const jobs = el('td');
      for (const job of st.running) {
        const line = el('div', null, 'job');
        line.dataset.command = job.command;
        const p = job.progress;
        const asked = (p && p.asked) || {};
        const total = job.duration_ms || (asked.duration_s ? asked.duration_s * 1000 : 0);
        let text = '#' + job.id + ' ' + job.command + ' ' + duration(job.elapsed_ms);
        if (total) text += ' / ' + duration(total);
        if (p && p.req_per_s !== undefined) {
          text += ' · ' + number((p.recent || {}).req_per_s ?? p.req_per_s, 1)
            + (asked.rate ? ' of ' + asked.rate : '') + ' req/s · p99 '
            + number((p.recent || {}).p99_ms ?? p.p99_ms, 2) + ' ms · ' + (p.errors || 0) + ' errors';
        }
        if (p && p.stage && p.stage.stage) text += ' · stage ' + p.stage.stage + '/' + p.stage.stages;
        line.append(el('span', text + ' '));
        if (total) {
          const bar = el('progress');
          bar.max = total;
          bar.value = Math.min(job.elapsed_ms, bar.max);
          line.append(bar, el('span', ' '));
        }
        const cancel = el('button', 'Cancel', 'small');
        cancel.type = 'button';
        cancel.addEventListener('click', () => cancelJob(a.address, job.id));
        line.append(cancel);
        jobs.append(line);
      }
      if (!st.running.length) jobs.textContent = '-';
      const actions = el('td');
      const stop = el('button', 'Abort', 'small');
      stop.type = 'button';
      stop.addEventListener('click', () => confirmThen('Abort ' + st.agent + ' (' + a.address
        + ')? Its jobs are cancelled and everything it holds is released; the other agents keep running.',
        () => abort(a.address)));
      actions.append(stop);
      row.append(jobs, actions);
    } else {
      const cell = el('td', a.reason);
      cell.colSpan = 8;
      row.append(el('td', '?'), el('td', a.address), el('td', a.state, 'state-' + a.state), cell);
    }
    body.append(row);
  }
  let summary = up + ' of ' + s.swarm.agents.length + ' agents up, ' + running + ' jobs running, ' + restarts + ' restarts';
  if (s.swarm.left_out) summary += ' (' + s.swarm.left_out + ' more not asked)';
  $('swarm-summary').textContent = summary;
}

function renderLoads(s) {
  const box = $('loads');
  let shown = s.loads.filter((l) => l.running);
  shown.sort((x, y) => (y.key.startsWith('wave:') ? 1 : 0) - (x.key.startsWith('wave:') ? 1 : 0));
  shown = shown.slice(0, 6);
  if (!shown.length && s.loads.length) shown = [s.loads[0]];
  $('loads-empty').hidden = s.loads.length > 0;
  const keep = new Set(shown.map((l) => l.key));
  for (const figure of Array.from(box.children)) {
    if (!keep.has(figure.dataset.key)) figure.remove();
  }
  for (const load of shown) {
    let figure = Array.from(box.children).find((f) => f.dataset.key === load.key);
    if (!figure) {
      figure = el('figure');
      figure.dataset.key = load.key;
      const img = el('img');
      img.alt = 'throughput, latency and errors of ' + load.label;
      figure.append(img, el('figcaption'));
      box.append(figure);
    }
    const img = figure.querySelector('img');
    // Drawn at the width it is shown at, so its texts keep their size on a phone.
    const width = Math.max(300, Math.min(1200, Math.round(figure.clientWidth - 14)));
    const drawn = load.points + '/' + width + '/' + load.running;
    if (figure.dataset.drawn !== drawn) {
      figure.dataset.drawn = drawn;
      figure.dataset.points = String(load.points);
      img.src = '/charts/load.svg?series=' + encodeURIComponent(load.key) + '&n=' + load.points + '&w=' + width
        + (load.running ? '' : '&ended');
    }
    const last = load.last || {};
    let caption = load.label + (load.running ? '' : ' (ended)') + ': ' + number(last.req_per_s, 1) + ' req/s, p99 '
      + number(last.p99_ms, 2) + ' ms, errors ' + (last.error_rate == null ? '-' : number(last.error_rate * 100, 2) + ' %');
    if (load.agents > 1) caption += ', ' + load.agents + ' agents';
    if (load.stage) caption += ', ' + load.stage;
    figure.querySelector('figcaption').textContent = caption;
  }
}

function renderWaves(s) {
  const table = $('waves');
  table.hidden = !s.waves.length;
  $('waves-empty').hidden = s.waves.length > 0;
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const w of s.waves) {
    const hops = Object.entries(w.per_hop || {}).map(([hop, n]) => hop + ': ' + n).join(', ');
    const reached = w.agents_reached + (w.expected_agents !== undefined ? ' of ' + w.expected_agents : '');
    const arrivals = w.first_arrival_ms == null ? '-' : w.first_arrival_ms + ' to ' + w.last_arrival_ms + ' ms';
    const row = el('tr');
    body.append(row);
    row.append(el('td', String(w.wave_id).slice(0, 16)), el('td', w.command), el('td', w.origin),
      el('td', reached), el('td', w.executions), el('td', w.succeeded), el('td', w.failed, w.failed ? 'state-down' : ''),
      el('td', hops), el('td', arrivals));
  }
}

async function showRun(id, state) {
  const response = await fetch('/runs/' + encodeURIComponent(id));
  if (!response.ok) return;
  // The console wrote this view and escaped every text in it (src/scenario/html.rs).
  $('run-view').innerHTML = await response.text();
  shownRunState = state;
}

function renderRuns(s) {
  $('runs-empty').hidden = s.runs.length > 0;
  const list = $('runs');
  list.replaceChildren();
  if (!selectedRun && s.runs.length) selectedRun = s.runs[0].id;
  for (const run of s.runs) {
    const item = el('li');
    const link = el('a', run.name);
    link.addEventListener('click', () => { selectedRun = run.id; shownRunState = ''; renderRuns(latest); });
    const state = run.finished ? (run.failures ? 'failed' : 'passed') : 'running';
    item.append(link, el('span', ' · ' + state + ' · ' + run.ended + ' of ' + run.steps + ' steps ended'
      + (run.failures ? ', ' + run.failures + ' failed' : '')));
    if (run.id === selectedRun) {
      item.className = 'selected';
      const runState = run.ended + '/' + run.steps + '/' + run.finished;
      if (runState !== shownRunState) showRun(run.id, runState);
    }
    list.append(item);
  }
}

function render(s) {
  latest = s;
  $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  $('open-warning').hidden = !s.open;
  renderAgents(s);
  renderLoads(s);
  renderWaves(s);
  renderRuns(s);
}

function connect() {
  const events = new EventSource('/api/events');
  events.addEventListener('snapshot', (e) => render(JSON.parse(e.data)));
  events.onerror = async () => {
    $('updated').textContent = 'connection lost, trying again…';
    const check = await fetch('/api/snapshot').catch(() => null);
    if (check && check.status === 401) location.reload();
  };
}

document.addEventListener('DOMContentLoaded', () => {
  $('abort-swarm').addEventListener('click', () => confirmThen(
    'Abort the whole swarm? Every job on every agent is cancelled and everything held is released.',
    () => abort(null)));
  $('confirm-yes').addEventListener('click', () => { $('confirm').hidden = true; if (pending) pending(); pending = null; });
  $('confirm-no').addEventListener('click', () => { $('confirm').hidden = true; pending = null; });
  connect();
});
