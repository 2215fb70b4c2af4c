// The meshd dashboard: signs in with the one-time code of `meshd ui` (from the URL fragment),
// then follows the daemon's view over server-sent events and renders it. Owner actions go to
// the daemon after a confirmation. Everything is written with textContent: no HTML from data.
import { drawGraph, peerName } from './graph.js';

const $ = (sel) => document.querySelector(sel);

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
  return e;
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

function ago(iso) {
  if (!iso) return '—';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function shortDid(did) {
  return did.length > 28 ? `${did.slice(0, 16)}…${did.slice(-8)}` : did;
}

function notice(text, error = false) {
  const n = $('#notice');
  n.textContent = text;
  n.classList.toggle('error', error);
  n.hidden = text === '';
}

function setConn(state, text) {
  const c = $('#conn');
  c.dataset.state = state;
  c.textContent = text;
}

// ---- owner actions, behind a confirmation ----

let pendingAction = null;

function confirmAction(kind, id, text) {
  pendingAction = { kind, id };
  $('#confirm-text').textContent = text;
  $('#confirm').showModal();
}

async function runAction() {
  const a = pendingAction;
  pendingAction = null;
  $('#confirm').close();
  if (!a) return;
  notice(`Working: ${a.kind} ${shortDid(a.id)}…`);
  try {
    const r = await fetch('/api/action', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(a), credentials: 'same-origin' });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      const e = body.error ?? {};
      notice(`${a.kind} failed: ${e.message ?? r.status}${e.hint ? ` — ${e.hint}` : ''}`, true);
      return;
    }
    notice(`Done: ${a.kind} ${shortDid(a.id)}.`);
  } catch (e) {
    notice(`${a.kind} failed: ${e.message}`, true);
  }
}

function actionButton(kind, id, label, question) {
  const b = h('button', { type: 'button', class: kind === 'approve' ? 'primary' : 'danger', 'data-action': kind, 'data-id': id }, label);
  b.addEventListener('click', () => confirmAction(kind, id, question));
  return b;
}

// ---- rendering ----

function renderPeers(view, owner) {
  const rows = view.peers.map((p) => {
    const state = p.online ? 'online' : 'offline';
    return h(
      'tr',
      { 'data-did': p.did, 'data-online': String(p.online), 'data-path': p.path },
      h('td', { title: p.did }, peerName(p)),
      h('td', {}, p.meshIP),
      h('td', { class: `state ${state}` }, state),
      h('td', { class: `path path-${p.path}` }, p.path),
      h('td', {}, p.path === 'relay' ? p.relay ?? '' : p.endpoint ?? ''),
      h('td', { class: 'num' }, p.latencyMs === null ? '—' : `${p.latencyMs.toFixed(1)} ms`),
      h('td', { class: 'num' }, bytes(p.rxBytes)),
      h('td', { class: 'num' }, bytes(p.txBytes)),
      h('td', {}, ago(p.lastHandshake)),
      h('td', { class: 'owner-only' }, owner ? actionButton('remove', p.did, 'Remove', `Remove ${peerName(p)} (${p.meshIP}) from the network? Its access is revoked and the network key rotates.`) : ''),
    );
  });
  $('#peers tbody').replaceChildren(...rows);
  const online = view.peers.filter((p) => p.online).length;
  $('#peer-count').textContent = `${online} of ${view.peers.length} online`;
}

function renderOwner(o) {
  document.body.classList.toggle('is-owner', o !== null);
  if (!o) return;
  $('#pending tbody').replaceChildren(
    ...o.pending.map((p) =>
      h(
        'tr',
        { 'data-did': p.did },
        h('td', { title: p.did }, shortDid(p.did)),
        h('td', {}, p.hostname ?? '—'),
        h('td', { title: p.member }, shortDid(p.member)),
        h('td', {}, actionButton('approve', p.did, 'Approve', `Approve the device ${p.hostname ?? shortDid(p.did)} of ${shortDid(p.member)}? It joins the network and gets the network key.`)),
      ),
    ),
  );
  $('#invites tbody').replaceChildren(
    ...o.invites.map((i) =>
      h(
        'tr',
        { 'data-id': i.id },
        h('td', { title: i.id }, i.id.slice(-8)),
        h('td', {}, i.state),
        h('td', {}, i.role === 'member' ? 'a person' : 'a device'),
        h('td', {}, `${i.used.length}/${i.uses ?? '∞'}`),
        h('td', {}, new Date(i.expiresAt).toLocaleString()),
        h('td', {}, i.label ?? ''),
        h('td', {}, i.state === 'open' ? actionButton('revoke-invite', i.id, 'Revoke', `Revoke invite ${i.id.slice(-8)}${i.label ? ` (${i.label})` : ''}? Copies of it stop working at once.`) : ''),
      ),
    ),
  );
  $('#members').replaceChildren(...o.members.map((m) => h('li', { title: m.did }, `${shortDid(m.did)} — ${m.status}`)));
  $('#acl').textContent = o.acl ? JSON.stringify(o.acl, null, 2) : 'No ACL policy: every device may reach every other.';
}

function dl(target, pairs) {
  target.replaceChildren(...pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function renderSelf(view) {
  const dp = view.dataplane;
  dl($('#self'), [
    ['Name', view.self.hostname ?? '—'],
    ['Mesh IP', `${view.self.meshIP ?? '—'} ${view.self.meshIP6 ? `(${view.self.meshIP6})` : ''}`],
    ['Identity', view.self.did],
    ['Role', view.role ?? '—'],
    ['DWN', view.network ? `${view.network.endpoint} — ${view.control.connected ? 'connected' : 'disconnected, using the last map'}` : '—'],
    ['Key epoch', view.network ? String(view.network.epoch) : '—'],
    ['NAT', dp ? `${dp.natType}; public ${dp.publicEndpoints.join(', ') || 'none'}; port ${dp.listenPort}` : 'data plane not running'],
    ['Relays', dp ? dp.relays.map((r) => `${r.url}${r.home ? ' (home)' : ''}: ${r.state}`).join('; ') || 'none' : '—'],
    ['ACL', `policy ${view.filter.policyVersion ?? 'none'}; ${view.filter.aclDrop} packets dropped by it, ${view.filter.spoof} spoofed`],
  ]);
  if (view.control.lastError) notice(`DWN: ${view.control.lastError}`, true);
}

function renderSkips(view) {
  const counts = Object.entries(view.control.skipped ?? {}).filter(([, n]) => n > 0);
  dl($('#skip-counts'), counts.length > 0 ? counts.map(([k, n]) => [k, String(n)]) : [['none', '0']]);
  $('#skips').replaceChildren(...view.skips.slice().reverse().map((s) => h('li', { title: s.recordId }, `${ago(s.at)}: ${s.kind} ${s.reason} — ${s.message}`)));
}

function renderEvents(view) {
  const items = view.events
    .slice()
    .reverse()
    .map((e) => {
      const fields = Object.entries(e.fields)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      return h('li', { class: e.level }, `${e.ts.slice(11, 19)} ${e.level} ${e.component ? `${e.component} ` : ''}${e.event} ${fields}`);
    });
  $('#events').replaceChildren(...items);
}

function render(view) {
  $('#network-name').textContent = view.network ? `“${view.network.name}”` : 'no network';
  drawGraph($('#graph'), view);
  renderPeers(view, view.owner !== null);
  renderOwner(view.owner);
  renderSelf(view);
  renderSkips(view);
  renderEvents(view);
  document.body.dataset.updated = view.generatedAt;
}

// ---- session and live updates ----

async function signIn() {
  const m = /(?:^#|&)code=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (!m) return;
  history.replaceState(null, '', '/'); // the code is spent either way: keep it out of history
  const r = await fetch('/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: m[1] }), credentials: 'same-origin' });
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    notice(body.error?.message ?? 'sign-in failed: run `meshd ui` again for a new link', true);
  }
}

function follow() {
  const es = new EventSource('/api/events');
  es.addEventListener('state', (ev) => {
    setConn('live', 'live');
    render(JSON.parse(ev.data));
  });
  es.addEventListener('error', async () => {
    setConn('lost', 'reconnecting…');
    if (es.readyState === EventSource.CLOSED) {
      // refused (401) or the daemon went away: say which, and try again in a moment
      const r = await fetch('/api/state', { credentials: 'same-origin' }).catch(() => null);
      if (r && r.status === 401) {
        setConn('lost', 'signed out');
        notice('This dashboard session is not valid (the daemon restarted, or the link was used elsewhere): run `meshd ui` for a new link.', true);
        return;
      }
      setTimeout(follow, 2000);
    }
  });
}

$('#confirm-ok').addEventListener('click', () => void runAction());
$('#confirm-cancel').addEventListener('click', () => {
  pendingAction = null;
  $('#confirm').close();
});

await signIn();
const first = await fetch('/api/state', { credentials: 'same-origin' });
if (first.status === 401) {
  setConn('lost', 'signed out');
  if ($('#notice').hidden) notice('Not signed in: run `meshd ui` on this machine and open the link it prints.', true);
} else {
  if (first.ok) render(await first.json());
  follow();
}
