// The archive as ListFragments has it: each fragment a block on a canvas (any number of
// fragments draws in one pass), gaps in red and listed in words, overlaps in amber. A click,
// or Enter on the keyboard cursor, asks to play from that moment.
import { useEffect, useRef, useState, useMemo } from 'preact/hooks';
import { html, clock as clockText, date } from './ui.js';
import { duration } from './api.js';
import { selectorType } from './player.js';
import { Thumbs } from './thumbs.js';

export const windows = [['1 min', 60e3], ['10 min', 600e3], ['1 h', 3600e3], ['6 h', 6 * 3600e3], ['24 h', 24 * 3600e3]];
// gapMinMs: a pause shorter than this between two fragments is not called a gap.
const gapMinMs = 1000;
const autoRefreshMs = 5000;

// fragments lists [fromMs, toMs] on clock, oldest first, as blocks {start, end, ...}.
async function fragments(api, name, clock, fromMs, toMs) {
  const out = [];
  let token;
  do {
    const page = await api.send('listFragments', { StreamName: name, MaxResults: 1000, NextToken: token,
      FragmentSelector: { FragmentSelectorType: selectorType(clock),
        TimestampRange: { StartTimestamp: fromMs / 1000, EndTimestamp: toMs / 1000 } } });
    for (const f of page.Fragments || []) {
      const start = Math.round((clock === 'server' ? f.ServerTimestamp : f.ProducerTimestamp) * 1000);
      out.push({ start, end: start + f.FragmentLengthInMilliseconds, number: f.FragmentNumber,
        size: f.FragmentSizeInBytes, producer: f.ProducerTimestamp * 1000, server: f.ServerTimestamp * 1000 });
    }
    token = page.NextToken;
  } while (token);
  out.sort((a, b) => a.start - b.start);
  return out;
}

// analyse finds the gaps and overlaps between consecutive fragments.
export function analyse(frags) {
  const gaps = [];
  let overlaps = 0, end = -Infinity;
  for (const f of frags) {
    if (end > -Infinity && f.start - end >= gapMinMs) gaps.push({ start: end, end: f.start });
    if (f.start < end - 50) overlaps++;
    end = Math.max(end, f.end);
  }
  return { gaps, overlaps };
}

function draw(canvas, frags, gaps, view, cursor, playing) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.fillStyle = '#161b22';
  g.fillRect(0, 0, w, h);
  const span = view.end - view.start;
  const x = t => ((t - view.start) / span) * w;
  const barTop = 6, barH = h - 28;
  // Fragments, each at least a pixel wide; runs closer than a pixel merge.
  g.fillStyle = '#2ea043';
  let runStart = null, runEnd = null;
  const flush = () => { if (runStart !== null) g.fillRect(runStart, barTop, Math.max(1, runEnd - runStart), barH); };
  let prevEnd = -Infinity;
  for (const f of frags) {
    if (f.end < view.start || f.start > view.end) continue;
    const a = x(f.start), b = x(f.end);
    if (f.start < prevEnd - 50) { // overlap
      g.fillStyle = '#d29922';
      g.fillRect(a, barTop, Math.max(1, x(Math.min(prevEnd, f.end)) - a), barH);
      g.fillStyle = '#2ea043';
    }
    prevEnd = Math.max(prevEnd, f.end);
    if (runStart !== null && a - runEnd <= 1) runEnd = Math.max(runEnd, b);
    else { flush(); runStart = a; runEnd = b; }
  }
  flush();
  g.fillStyle = '#f85149';
  for (const gap of gaps) {
    if (gap.end < view.start || gap.start > view.end) continue;
    g.fillRect(x(gap.start), barTop + barH - 4, Math.max(2, x(gap.end) - x(gap.start)), 4);
  }
  // Ticks.
  g.fillStyle = '#8b949e';
  g.font = '11px system-ui, sans-serif';
  g.textBaseline = 'bottom';
  const ticks = Math.max(2, Math.floor(w / 110));
  for (let i = 0; i <= ticks; i++) {
    const t = view.start + (span * i) / ticks;
    const px = Math.min(w - 1, x(t));
    g.fillRect(px, h - 20, 1, 4);
    const label = clockText(t);
    const tw = g.measureText(label).width;
    g.fillText(label, Math.min(Math.max(0, px - tw / 2), w - tw), h - 2);
  }
  const line = (t, color) => {
    if (t == null || t < view.start || t > view.end) return;
    g.fillStyle = color;
    g.fillRect(Math.round(x(t)) - 1, 0, 2, barTop + barH + 2);
  };
  line(playing, '#e6edf3');
  line(cursor, '#58a6ff');
}

// Timeline lists and draws the fragments of the window before now and calls onPick(ms).
export function Timeline({ api, name, clock, playingMs, onPick }) {
  const canvas = useRef(null);
  const [win, setWin] = useState(600e3);
  const [frags, setFrags] = useState([]);
  const [view, setView] = useState(() => ({ start: Date.now() - 600e3, end: Date.now() }));
  const [error, setError] = useState(null);
  const [cursor, setCursor] = useState(null);
  const [hover, setHover] = useState(null);
  const [loaded, setLoaded] = useState(false);
  const { gaps, overlaps } = useMemo(() => analyse(frags), [frags]);

  useEffect(() => {
    let live = true;
    const load = () => {
      const end = Date.now() + 2000, start = end - win;
      fragments(api, name, clock, start, end).then(f => {
        if (!live) return;
        setFrags(f);
        setView({ start, end });
        setError(null);
        setLoaded(true);
      }, e => live && setError(e));
    };
    load();
    const timer = win <= 3600e3 ? setInterval(load, autoRefreshMs) : null;
    return () => { live = false; if (timer) clearInterval(timer); };
  }, [api, name, clock, win]);

  useEffect(() => {
    const c = canvas.current;
    const redraw = () => draw(c, frags, gaps, view, cursor, playingMs);
    redraw();
    const ro = new ResizeObserver(redraw);
    ro.observe(c);
    return () => ro.disconnect();
  }, [frags, gaps, view, cursor, playingMs]);

  const timeAt = e => {
    const r = canvas.current.getBoundingClientRect();
    return view.start + ((e.clientX - r.left) / r.width) * (view.end - view.start);
  };
  const fragAt = t => frags.find(f => f.start <= t && t < f.end);
  // pick plays from t: from the fragment that holds t, or the next one after a gap.
  const pick = t => {
    setCursor(t);
    const f = frags.find(f => f.end > t);
    onPick(f ? Math.max(t, f.start) : t, f ? f.start : null);
  };
  const onClick = e => pick(timeAt(e));
  const onMove = e => setHover(timeAt(e));
  const onKey = e => {
    const step = (view.end - view.start) / (e.shiftKey ? 10 : 100);
    const c = cursor ?? (frags.length ? frags[frags.length - 1].start : view.end);
    const moves = { ArrowLeft: c - step, ArrowRight: c + step, Home: frags.length ? frags[0].start : view.start, End: view.end };
    if (e.key in moves) {
      e.preventDefault();
      setCursor(Math.min(view.end, Math.max(view.start, moves[e.key])));
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      pick(c);
    }
  };
  const hovered = hover != null ? fragAt(hover) : null;
  const last = frags.length ? frags[frags.length - 1] : null;
  return html`<section class="panel" aria-labelledby="timeline-h">
    <div class="row">
      <h2 id="timeline-h">Archive</h2>
      <label for="window">Window</label>
      <select id="window" value=${win} onChange=${e => setWin(Number(e.currentTarget.value))}>
        ${windows.map(([label, ms]) => html`<option value=${ms}>${label}</option>`)}
      </select>
    </div>
    <canvas id="timeline" ref=${canvas} tabindex="0" role="slider"
      aria-label="Archive timeline: arrow keys move the cursor, Enter plays from it"
      aria-valuemin=${Math.round(view.start)} aria-valuemax=${Math.round(view.end)} aria-valuenow=${Math.round(cursor ?? view.end)}
      aria-valuetext=${cursor ? date(cursor) : 'now'}
      data-start-ms=${Math.round(view.start)} data-end-ms=${Math.round(view.end)} data-fragments=${frags.length}
      data-loaded=${loaded ? 'true' : 'false'}
      onClick=${onClick} onMouseMove=${onMove} onMouseLeave=${() => setHover(null)} onKeyDown=${onKey}></canvas>
    <${Thumbs} api=${api} name=${name} clock=${clock} view=${view} frags=${frags} onPick=${pick} />
    <p class="muted" id="timeline-info">${hovered
      ? `Fragment ${hovered.number}: ${date(hovered.start)}, ${(hovered.end - hovered.start) / 1000} s, ${(hovered.size / 1024).toFixed(0)} KiB; producer ${date(hovered.producer)}, server ${date(hovered.server)}`
      : cursor ? `Cursor ${date(cursor)}${fragAt(cursor) ? '' : ' (no video there)'}`
      : `${frags.length} fragments in the window (${clock} clock)${last ? `, the last one ${duration(Date.now() - last.end)} ago` : ''}${overlaps ? `, ${overlaps} overlapping` : ''}. Click to play from a moment.`}</p>
    ${error && html`<p class="error" role="alert">${error.message}</p>`}
    <ul id="gaps" class="gaps">${gaps.slice(-20).reverse().map(g => html`<li class="gap" data-start-ms=${Math.round(g.start)} data-end-ms=${Math.round(g.end)}>
      Gap ${clockText(g.start, true)} – ${clockText(g.end, true)}: ${duration(g.end - g.start)} without video</li>`)}
    </ul>
  </section>`;
}
