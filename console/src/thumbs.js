// The scrub strip: a picture every few seconds or minutes of the timeline's window, each from
// GetImages (one small JPEG per request, cached), shown through blob: URLs; a click plays
// from that moment.
import { useEffect, useRef, useState } from 'preact/hooks';
import { html, clock as clockText } from './ui.js';

const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600].map(s => s * 1000);

function niceStep(ms) {
  return steps.find(s => s >= ms) || steps[steps.length - 1];
}

function blobOf(base64) {
  const bin = atob(base64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type: 'image/jpeg' });
}

export function Thumbs({ api, name, clock, view, frags, onPick }) {
  const ref = useRef(null);
  const cache = useRef(new Map()); // `${clock}|${ms}` → {url} | {error} | {pending}
  const [count, setCount] = useState(8);
  const [, redraw] = useState(0);
  useEffect(() => {
    const ro = new ResizeObserver(() => ref.current && setCount(Math.max(3, Math.min(16, Math.floor(ref.current.clientWidth / 100)))));
    ro.observe(ref.current);
    return () => {
      ro.disconnect();
      for (const v of cache.current.values()) if (v.url) URL.revokeObjectURL(v.url);
    };
  }, []);
  const step = niceStep((view.end - view.start) / count);
  const times = [];
  for (let t = Math.ceil(view.start / step) * step; t < view.end && times.length < count; t += step) times.push(t);
  const key = t => `${clock}|${t}`;
  useEffect(() => {
    let live = true;
    (async () => {
      for (const t of times) {
        if (!live) return;
        if (cache.current.has(key(t)) || !frags.some(f => f.start <= t && t < f.end)) continue;
        cache.current.set(key(t), { pending: true });
        let entry;
        try {
          const out = await api.send('getImages', { StreamName: name, MaxResults: 1, Format: 'JPEG', FormatConfig: { JPEGQuality: '60' },
            WidthPixels: 160, SamplingInterval: 3000, StartTimestamp: t / 1000, EndTimestamp: (t + 1000) / 1000,
            ImageSelectorType: clock === 'server' ? 'SERVER_TIMESTAMP' : 'PRODUCER_TIMESTAMP' });
          const img = (out.Images || [])[0];
          entry = img && img.ImageContent ? { url: URL.createObjectURL(blobOf(img.ImageContent)) } : { error: (img && img.Error) || 'NO_MEDIA' };
        } catch (e) {
          entry = { error: e.code || 'error' };
        }
        cache.current.set(key(t), entry);
        if (live) redraw(n => n + 1);
      }
    })();
    return () => { live = false; };
  }, [times.join(','), frags, clock]);
  return html`<div class="thumbs" ref=${ref} id="thumbs">
    ${times.map(t => {
      const c = cache.current.get(key(t));
      return html`<button type="button" class="thumb" key=${t} data-ms=${t} onClick=${() => onPick(t)}
        aria-label=${'Play from ' + clockText(t)}>
        ${c && c.url ? html`<img src=${c.url} alt="" />` : html`<span class="noimg">${c && c.error ? '—' : ''}</span>`}
        <span class="t">${clockText(t)}</span></button>`;
    })}
  </div>`;
}
