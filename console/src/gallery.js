// The images kvsd delivered for the stream (kvsdListImages), newest first, after and before a
// time when those are set (StartTimestamp, EndTimestamp), each loaded through
// a URL presigned in this tab (kvsdGetImage), with its key and metadata; a click plays the
// video at the image's moment.
import { useEffect, useState, useCallback } from 'preact/hooks';
import { html, date, ErrorBox, Command } from './ui.js';

const page = 24;

function Card({ api, name, img, onPick }) {
  const [src, setSrc] = useState('');
  useEffect(() => {
    let live = true;
    api.presign('/kvsdGetImage', { StreamName: name, Key: img.Key }).then(u => live && setSrc(u));
    return () => { live = false; };
  }, [img.Key]);
  const t = img.ImageTimestamp * 1000;
  return html`<li class="image-card" data-key=${img.Key} data-ms=${Math.round(t)}>
    <button type="button" onClick=${() => onPick(t)} aria-label=${'Play the video at ' + date(t)}>
      ${src && html`<img src=${src} alt=${'Image of ' + date(t)} loading="lazy" />`}</button>
    <p class="when">${date(t)}</p>
    <p class="key"><code>${img.Uri}</code></p>
    <p class="muted">${img.FragmentNumber ? `fragment ${img.FragmentNumber}` : ''}
      ${img.ProducerTimestamp ? ` · producer ${date(img.ProducerTimestamp * 1000)}` : ''}
      ${img.ServerTimestamp ? ` · server ${date(img.ServerTimestamp * 1000)}` : ''}
      ${` · ${(img.Size / 1024).toFixed(1)} KiB`}</p>
    ${img.Tags && html`<p class="muted">${Object.entries(img.Tags).map(([k, v]) => `${k}=${v}`).join(', ')}</p>`}
  </li>`;
}

// range says which times the filter keeps, for the empty gallery's line.
function range(after, before) {
  if (after && before) return ' between those times';
  if (after) return ' after that time';
  if (before) return ' before that time';
  return '';
}

export function Gallery({ api, name, rev, onPick }) {
  const [images, setImages] = useState([]);
  const [next, setNext] = useState(null);
  const [after, setAfter] = useState('');
  const [before, setBefore] = useState('');
  const [error, setError] = useState(null);
  const [loaded, setLoaded] = useState(false);
  const load = useCallback(async (token) => {
    setError(null);
    try {
      const input = { StreamName: name, MaxResults: page, NextToken: token || undefined };
      if (after) input.StartTimestamp = new Date(after).getTime() / 1000;
      if (before) input.EndTimestamp = new Date(before).getTime() / 1000;
      const out = await api.send('kvsdListImages', input);
      setImages(prev => (token ? [...prev, ...out.Images] : out.Images));
      setNext(out.NextToken || null);
    } catch (e) {
      setError(e);
      if (!token) setImages([]);
    } finally {
      setLoaded(true);
    }
  }, [api, name, after, before]);
  useEffect(() => { load(); }, [load, rev]);
  return html`<section class="panel" aria-labelledby="gallery-h" id="gallery">
    <div class="row"><h2 id="gallery-h">Delivered images</h2>
      <label for="gallery-after">After</label>
      <input id="gallery-after" type="datetime-local" step="1" value=${after} onChange=${e => setAfter(e.currentTarget.value)} />
      <label for="gallery-before">Before</label>
      <input id="gallery-before" type="datetime-local" step="1" value=${before} onChange=${e => setBefore(e.currentTarget.value)} />
      <button type="button" class="small" id="gallery-refresh" onClick=${() => load()}>Refresh</button></div>
    <${ErrorBox} error=${error} />
    ${loaded && !error && images.length === 0 && html`<p class="muted" id="gallery-empty">No images delivered${range(after, before)}.</p>`}
    <ul class="gallery">${images.map(img => html`<${Card} key=${img.Key} api=${api} name=${name} img=${img} onPick=${onPick} />`)}</ul>
    ${next && html`<button type="button" onClick=${() => load(next)}>Older images</button>`}
    <${Command} label="Where they are" cmd=${images.length ? `aws s3 ls ${images[0].Uri.replace(/[^/]*$/, '')}` : '(no images)'} />
  </section>`;
}
