// The network as an SVG graph: this device in the middle, its peers on a circle around it,
// one edge each coloured by the path traffic takes (direct, relayed, none) and labelled with
// its latency. Drawn afresh from each view; no layout library needed for a star.

const NS = 'http://www.w3.org/2000/svg';
const W = 640;
const H = 440;

function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

export function peerName(p) {
  return p.hostname || p.meshIP;
}

function short(s, n) {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/** Draw `view` (the daemon's UiView) into `svg`. */
export function drawGraph(svg, view) {
  svg.replaceChildren();
  const cx = W / 2;
  const cy = H / 2;
  const peers = view.peers;
  const r = 165;
  const nodeR = peers.length > 40 ? 7 : peers.length > 16 ? 10 : 16;
  const edges = el('g', { class: 'edges' });
  const nodes = el('g', { class: 'nodes' });
  peers.forEach((p, i) => {
    // evenly around, leaving the bottom (where this device's label is) between two peers
    const a = Math.PI / 2 + Math.PI / peers.length + (2 * Math.PI * i) / peers.length;
    const x = cx + r * Math.cos(a);
    const y = cy + r * Math.sin(a);
    const state = p.online ? 'online' : 'offline';
    const line = el('line', { x1: cx, y1: cy, x2: x, y2: y, class: `edge path-${p.path} ${state}`, 'data-did': p.did, 'data-path': p.path });
    line.append(el('title', {}, `${peerName(p)}: ${p.online ? p.path : 'offline'}`));
    edges.append(line);
    if (p.online && p.latencyMs !== null) {
      edges.append(el('text', { x: (cx + x) / 2, y: (cy + y) / 2 - 4, class: 'small' }, `${p.latencyMs.toFixed(1)} ms`));
    }
    const g = el('g', { class: `node ${state}`, 'data-did': p.did, 'data-online': String(p.online), 'data-path': p.path });
    g.append(el('circle', { cx: x, cy: y, r: nodeR }));
    g.append(el('title', {}, `${peerName(p)} ${p.meshIP} — ${p.online ? `online, ${p.path}` : 'offline'}`));
    if (peers.length <= 40) {
      const below = y >= cy - 1;
      g.append(el('text', { x, y: below ? y + nodeR + 14 : y - nodeR - 6 }, short(peerName(p), 22)));
      g.append(el('text', { x, y: below ? y + nodeR + 26 : y - nodeR - 18, class: 'small' }, p.meshIP));
    }
    nodes.append(g);
  });
  const self = el('g', { class: 'node self online', 'data-did': view.self.did });
  self.append(el('circle', { cx, cy, r: nodeR + 6 }));
  self.append(el('text', { x: cx, y: cy + nodeR + 22 }, short(view.self.hostname || 'this device', 22)));
  self.append(el('text', { x: cx, y: cy + nodeR + 34, class: 'small' }, view.self.meshIP || ''));
  nodes.append(self);
  svg.append(edges, nodes);
}
