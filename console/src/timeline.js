// The archive as ListFragments has it: each fragment a block on a canvas (any number of
// fragments draws in one pass), gaps in red and listed in words, overlaps in amber. A click,
// or Enter on the keyboard cursor, asks to play from that moment; a drag across the blocks (or
// Shift and the arrow keys) selects a range to export; the wheel, + and - zoom, and a drag on
// the time axis (or the arrow buttons) pans.
import { useEffect, useRef, useState, useMemo } from 'preact/hooks';
import { html, clock as clockText, date } from './ui.js';
import { duration } from './api.js';
import { selectorType } from './player.js';
import { Thumbs } from './thumbs.js';

export const windows = [['1 min', 60e3], ['10 min', 600e3], ['1 h', 3600e3], ['6 h', 6 * 3600e3], ['24 h', 24 * 3600e3]];
// gapMinMs: a pause shorter than this between two fragments is not called a gap.
const gapMinMs = 1000;
const autoRefreshMs = 5000;

// chunkMs is how much of a long window one series of ListFragments pages covers; parallel is
// how many such series run at once (a day: 24 of them, 2 pages of 1000 each).
const chunkMs = 3600e3;
const parallel = 4;

// fragmentsIn lists the fragments that start in [fromMs, toMs) on clock (before it too when
// first), as blocks {start, end, ...} in the order listed.
async function fragmentsIn(api, name, clock, fromMs, toMs, first) {
  const out = [];
  let token;
  do {
    const page = await api.send('listFragments', { StreamName: name, MaxResults: 1000, NextToken: token,
      FragmentSelector: { FragmentSelectorType: selectorType(clock),
        TimestampRange: { StartTimestamp: fromMs / 1000, EndTimestamp: toMs / 1000 } } });
    for (const f of page.Fragments || []) {
      const start = Math.round((clock === 'server' ? f.ServerTimestamp : f.ProducerTimestamp) * 1000);
      if ((start < fromMs && !first) || start >= toMs) continue; // another chunk's
      out.push({ start, end: start + f.FragmentLengthInMilliseconds, number: f.FragmentNumber,
        size: f.FragmentSizeInBytes, producer: f.ProducerTimestamp * 1000, server: f.ServerTimestamp * 1000 });
    }
    token = page.NextToken;
  } while (token);
  return out;
}

// fragments lists [fromMs, toMs] on clock, oldest first: a long window in chunks of chunkMs,
// `parallel` of them at once, calling progress(fragments so far, sorted) as chunks arrive.
async function fragments(api, name, clock, fromMs, toMs, progress = () => {}) {
  const chunks = [];
  for (let a = fromMs; a <= toMs; a += chunkMs) chunks.push({ from: a, to: Math.min(a + chunkMs, toMs + 1), frags: null });
  const sorted = () => chunks.flatMap(c => c.frags || []);
  // Chunks arriving in the same frame are drawn once.
  let frame = 0;
  const report = () => {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; progress(sorted()); });
  };
  let nextChunk = 0;
  const worker = async () => {
    while (nextChunk < chunks.length) {
      const c = chunks[nextChunk++];
      const frags = await fragmentsIn(api, name, clock, c.from, c.to, c === chunks[0]);
      c.frags = frags.sort((a, b) => a.start - b.start);
      if (chunks.length > 1) report();
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, chunks.length) }, worker));
  cancelAnimationFrame(frame);
  return sorted();
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

// axisH is the height of the time axis at the canvas's foot: a drag there pans.
const axisH = 22;
// minSpanMs is the narrowest view zooming in reaches.
const minSpanMs = 5000;
// dragPx is how far the pointer moves before a press is a drag rather than a click.
const dragPx = 4;

// zoomed scales view by factor around the moment at, kept inside range.
export function zoomed(view, range, factor, at) {
  const full = range.end - range.start;
  const span = Math.min(full, Math.max(minSpanMs, (view.end - view.start) * factor));
  const start = at - ((at - view.start) / (view.end - view.start)) * span;
  return clamped({ start, end: start + span }, range);
}

// clamped shifts view (never wider than range) back inside range.
export function clamped(view, range) {
  const span = Math.min(view.end - view.start, range.end - range.start);
  const start = Math.min(Math.max(view.start, range.start), range.end - span);
  return { start, end: start + span };
}

// firstEndingAfter is the index of the first fragment (sorted by start) that ends after t; with
// fragments of similar lengths that is found by a binary search on the starts.
function firstEndingAfter(frags, t) {
  let lo = 0, hi = frags.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (frags[mid].start <= t) lo = mid + 1; else hi = mid;
  }
  let i = Math.max(0, lo - 1);
  while (i > 0 && frags[i - 1].end > t) i--;
  while (i < frags.length && frags[i].end <= t) i++;
  return i;
}

function draw(canvas, frags, gaps, view, cursor, playing, sel) {
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
  g.fillStyle = '#0d1117';
  g.fillRect(0, h - axisH, w, axisH);
  const span = view.end - view.start;
  const x = t => ((t - view.start) / span) * w;
  const barTop = 6, barH = h - axisH - 6;
  // Fragments, each at least a pixel wide; runs closer than a pixel merge.
  g.fillStyle = '#2ea043';
  let runStart = null, runEnd = null;
  const flush = () => { if (runStart !== null) g.fillRect(runStart, barTop, Math.max(1, runEnd - runStart), barH); };
  let prevEnd = -Infinity;
  for (let i = firstEndingAfter(frags, view.start); i < frags.length; i++) {
    const f = frags[i];
    if (f.start > view.end) break;
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
  if (sel) {
    const a = Math.max(0, x(sel.start)), b = Math.min(w, x(sel.end));
    if (b > a) {
      g.fillStyle = 'rgba(88, 166, 255, 0.35)';
      g.fillRect(a, 0, Math.max(1, b - a), barTop + barH + 2);
      g.fillStyle = '#58a6ff';
      g.fillRect(a, 0, 1, barTop + barH + 2);
      g.fillRect(b - 1, 0, 1, barTop + barH + 2);
    }
  }
  // Ticks.
  g.fillStyle = '#8b949e';
  g.font = '11px system-ui, sans-serif';
  g.textBaseline = 'bottom';
  const ticks = Math.max(2, Math.floor(w / 110));
  const withMs = span < 20e3;
  for (let i = 0; i <= ticks; i++) {
    const t = view.start + (span * i) / ticks;
    const px = Math.min(w - 1, x(t));
    g.fillRect(px, h - axisH, 1, 4);
    const label = clockText(t, withMs);
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

// useDebounced is value once it has not changed for ms.
function useDebounced(value, ms) {
  const [v, setV] = useState(value);
  useEffect(() => {
    const id = setTimeout(() => setV(value), ms);
    return () => clearTimeout(id);
  }, [value, ms]);
  return v;
}

// useTags answers the producer's tags of the fragment numbered `number` (kvsdDescribeFragments,
// as ListFragments has none): undefined while unknown, then [{Name, Value}]. Hovering across
// blocks asks only for the one the pointer rests on, and asks for each fragment once.
function useTags(api, name, number) {
  const cache = useRef(new Map());
  const rested = useDebounced(number, 150);
  const [tries, redraw] = useState(0);
  useEffect(() => { cache.current = new Map(); }, [name]);
  useEffect(() => {
    if (!rested || cache.current.has(rested)) return;
    let live = true, retry;
    cache.current.set(rested, undefined);
    api.send('kvsdDescribeFragments', { StreamName: name, FragmentNumbers: [rested] }).then(out => {
      cache.current.set(rested, out.Fragments[0].Tags || []);
      if (live) redraw(n => n + 1);
    }, () => {
      // A failed answer is asked again a second later while the pointer still rests there.
      cache.current.delete(rested);
      if (live) retry = setTimeout(() => redraw(n => n + 1), 1000);
    });
    return () => { live = false; clearTimeout(retry); };
  }, [api, name, rested, tries]);
  return number ? cache.current.get(number) : undefined;
}

function tagsText(tags) {
  if (tags === undefined) return '';
  if (tags.length === 0) return '; no tags';
  return '; tags: ' + tags.map(t => t.Value ? `${t.Name}=${t.Value}` : t.Name).join(', ');
}

// Timeline lists and draws the fragments of the window before now, calls onPick(ms) to play
// from a moment and onSelect({start, end} or null) when the selected range changes.
export function Timeline({ api, name, clock, playingMs, onPick, selection, onSelect }) {
  const canvas = useRef(null);
  const [win, setWin] = useState(600e3);
  const [frags, setFrags] = useState([]);
  const [range, setRange] = useState(() => ({ start: Date.now() - 600e3, end: Date.now() }));
  const [view, setView] = useState(range);
  const rangeRef = useRef(range);
  const [error, setError] = useState(null);
  const [cursor, setCursor] = useState(null);
  const [hover, setHover] = useState(null);
  const [loaded, setLoaded] = useState(false);
  const press = useRef(null); // the pointer's press: {x, t, axis, view, moved}
  const anchor = useRef(null); // where a keyboard selection started
  const { gaps, overlaps } = useMemo(() => analyse(frags), [frags]);
  const thumbView = useDebounced(view, 300);

  useEffect(() => {
    let live = true;
    const load = () => {
      const end = Date.now() + 2000, start = end - win;
      // A long window draws as its chunks arrive; the refresh of a short one replaces it whole.
      const progress = f => { if (live && f.length > 0) setFrags(f); };
      fragments(api, name, clock, start, end, progress).then(f => {
        if (!live) return;
        const next = { start, end }, prev = rangeRef.current;
        rangeRef.current = next;
        setFrags(f);
        setRange(next);
        // The whole window follows the clock; a view zoomed or panned stays where it is.
        setView(v => v.end - v.start >= prev.end - prev.start - 1 ? next : clamped(v, next));
        setError(null);
        setLoaded(true);
      }, e => live && setError(e));
    };
    // A new window shows whole.
    const next = { start: Date.now() + 2000 - win, end: Date.now() + 2000 };
    rangeRef.current = next;
    setRange(next);
    setView(next);
    setLoaded(false);
    load();
    const timer = win <= 3600e3 ? setInterval(load, autoRefreshMs) : null;
    return () => { live = false; if (timer) clearInterval(timer); };
  }, [api, name, clock, win]);

  useEffect(() => {
    const c = canvas.current;
    const redraw = () => draw(c, frags, gaps, view, cursor, playingMs, selection);
    redraw();
    const ro = new ResizeObserver(redraw);
    ro.observe(c);
    return () => ro.disconnect();
  }, [frags, gaps, view, cursor, playingMs, selection]);

  const timeAt = clientX => {
    const r = canvas.current.getBoundingClientRect();
    return view.start + ((clientX - r.left) / r.width) * (view.end - view.start);
  };
  const fragAt = t => {
    const i = firstEndingAfter(frags, t);
    return i < frags.length && frags[i].start <= t ? frags[i] : null;
  };
  // pick plays from t: from the fragment that holds t, or the next one after a gap.
  const pick = t => {
    setCursor(t);
    const i = firstEndingAfter(frags, t);
    const f = i < frags.length ? frags[i] : null;
    onPick(f ? Math.max(t, f.start) : t, f ? f.start : null);
  };
  const select = (a, b) => onSelect(Math.abs(b - a) >= 1 ? { start: Math.min(a, b), end: Math.max(a, b) } : null);
  const zoom = (factor, at) => setView(v => zoomed(v, range, factor, at ?? cursor ?? (v.start + v.end) / 2));
  const pan = frac => setView(v => clamped({ start: v.start + frac * (v.end - v.start), end: v.end + frac * (v.end - v.start) }, range));

  const onDown = e => {
    if (e.button !== 0) return;
    const r = canvas.current.getBoundingClientRect();
    press.current = { x: e.clientX, t: timeAt(e.clientX), axis: e.clientY - r.top > r.height - axisH, view, moved: false };
    canvas.current.setPointerCapture?.(e.pointerId);
  };
  const onMove = e => {
    const p = press.current;
    setHover(timeAt(e.clientX));
    if (!p) return;
    if (!p.moved && Math.abs(e.clientX - p.x) < dragPx) return;
    p.moved = true;
    if (p.axis) {
      const r = canvas.current.getBoundingClientRect();
      const shift = ((p.x - e.clientX) / r.width) * (p.view.end - p.view.start);
      setView(clamped({ start: p.view.start + shift, end: p.view.end + shift }, range));
    } else {
      select(p.t, Math.min(range.end, Math.max(range.start, timeAt(e.clientX))));
    }
  };
  const onUp = e => {
    const p = press.current;
    press.current = null;
    if (p && !p.moved && !p.axis) pick(timeAt(e.clientX));
  };
  const onWheel = e => {
    e.preventDefault();
    const d = e.deltaY || e.deltaX;
    if (d) zoom(Math.exp(Math.max(-1, Math.min(1, d * 0.002))), timeAt(e.clientX));
  };
  const onKey = e => {
    const span = view.end - view.start;
    const c = cursor ?? (frags.length ? frags[frags.length - 1].start : view.end);
    const moves = { ArrowLeft: c - span / 100, ArrowRight: c + span / 100, PageUp: c - span / 10, PageDown: c + span / 10,
      Home: frags.length ? frags[0].start : range.start, End: range.end };
    if (e.key in moves) {
      e.preventDefault();
      const to = Math.min(range.end, Math.max(range.start, moves[e.key]));
      if (e.shiftKey) {
        if (anchor.current == null) anchor.current = c;
        select(anchor.current, to);
      } else {
        anchor.current = null;
      }
      setCursor(to);
      // The view follows the cursor.
      if (to < view.start || to > view.end) setView(clamped({ start: to - span / 2, end: to + span / 2 }, range));
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      pick(c);
    } else if (e.key === '+' || e.key === '=') {
      e.preventDefault();
      zoom(0.5, c);
    } else if (e.key === '-' || e.key === '_') {
      e.preventDefault();
      zoom(2, c);
    } else if (e.key === 'Escape' && selection) {
      e.preventDefault();
      anchor.current = null;
      onSelect(null);
    }
  };
  const hovered = hover != null ? fragAt(hover) : null;
  const hoveredTags = useTags(api, name, hovered?.number);
  const last = frags.length ? frags[frags.length - 1] : null;
  const full = view.end - view.start >= range.end - range.start - 1;
  return html`<section class="panel" aria-labelledby="timeline-h">
    <div class="row">
      <h2 id="timeline-h">Archive</h2>
      <label for="window">Window</label>
      <select id="window" value=${win} onChange=${e => setWin(Number(e.currentTarget.value))}>
        ${windows.map(([label, ms]) => html`<option value=${ms}>${label}</option>`)}
      </select>
    </div>
    <div class="row zoom" role="group" aria-label="Zoom and pan the timeline">
      <button type="button" class="small" id="pan-left" aria-label="Earlier" onClick=${() => pan(-0.5)} disabled=${view.start <= range.start}>◀</button>
      <button type="button" class="small" id="zoom-out" aria-label="Zoom out" onClick=${() => zoom(2)} disabled=${full}>−</button>
      <button type="button" class="small" id="zoom-in" aria-label="Zoom in" onClick=${() => zoom(0.5)} disabled=${view.end - view.start <= minSpanMs}>+</button>
      <button type="button" class="small" id="pan-right" aria-label="Later" onClick=${() => pan(0.5)} disabled=${view.end >= range.end}>▶</button>
      <button type="button" class="small" id="zoom-all" onClick=${() => setView(range)} disabled=${full}>Whole window</button>
      <span class="muted">${duration(view.end - view.start)} shown</span>
    </div>
    <canvas id="timeline" ref=${canvas} tabindex="0" role="slider"
      aria-label="Archive timeline: arrow keys move the cursor, Shift and the arrows select a range, + and - zoom, Enter plays from the cursor"
      aria-valuemin=${Math.round(view.start)} aria-valuemax=${Math.round(view.end)} aria-valuenow=${Math.round(cursor ?? view.end)}
      aria-valuetext=${cursor ? date(cursor) : 'now'}
      data-start-ms=${Math.round(view.start)} data-end-ms=${Math.round(view.end)} data-fragments=${frags.length}
      data-range-start-ms=${Math.round(range.start)} data-range-end-ms=${Math.round(range.end)}
      data-sel-start-ms=${selection ? Math.round(selection.start) : ''} data-sel-end-ms=${selection ? Math.round(selection.end) : ''}
      data-loaded=${loaded ? 'true' : 'false'}
      onPointerDown=${onDown} onPointerMove=${onMove} onPointerUp=${onUp} onPointerCancel=${() => { press.current = null; }}
      onMouseLeave=${() => setHover(null)} onWheel=${onWheel} onKeyDown=${onKey}></canvas>
    <${Thumbs} api=${api} name=${name} clock=${clock} view=${thumbView} frags=${frags} onPick=${pick} />
    <p class="muted" id="timeline-info">${hovered
      ? `Fragment ${hovered.number}: ${date(hovered.start)}, ${(hovered.end - hovered.start) / 1000} s, ${(hovered.size / 1024).toFixed(0)} KiB; producer ${date(hovered.producer)}, server ${date(hovered.server)}${tagsText(hoveredTags)}`
      : selection ? `Selected ${date(selection.start)} to ${date(selection.end)} (${duration(selection.end - selection.start)}): Export MP4 below exports it; Escape clears it.`
      : cursor ? `Cursor ${date(cursor)}${fragAt(cursor) ? '' : ' (no video there)'}`
      : `${frags.length} fragments in the window (${clock} clock)${last ? `, the last one ${duration(Date.now() - last.end)} ago` : ''}${overlaps ? `, ${overlaps} overlapping` : ''}. Click to play from a moment, drag to select a range.`}</p>
    ${error && html`<p class="error" role="alert">${error.message}</p>`}
    <ul id="gaps" class="gaps">${gaps.slice(-20).reverse().map(g => html`<li class="gap" data-start-ms=${Math.round(g.start)} data-end-ms=${Math.round(g.end)}>
      Gap ${clockText(g.start, true)} – ${clockText(g.end, true)}: ${duration(g.end - g.start)} without video</li>`)}
    </ul>
  </section>`;
}
