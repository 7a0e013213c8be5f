// The streams list: ListStreams, shown a page of rows at a time, and for the rows shown the age
// of the last fragment and the ingest rate (ListFragments over the last few minutes), the
// images delivered and the doctor's worst finding (kvsdStreamStatus), a few calls at a time so
// that a thousand streams never block the page; creating a stream.
import { useEffect, useState, useCallback } from 'preact/hooks';
import { duration } from './api.js';
import { html, awsCommand, Command, ErrorBox } from './ui.js';

// recentMs is how far back the list looks for a stream's last fragment.
const recentMs = 5 * 60 * 1000;
// pageRows is how many rows a page of the list shows; each gets its status (two calls).
const pageRows = 50;
// statusCalls is how many status calls are in flight at once.
const statusCalls = 4;

// limiter runs the calls given to it, at most n at a time, in order. A call whose row is gone
// by its turn (alive() is false) is skipped.
function limiter(n) {
  let active = 0;
  const waiting = [];
  const next = () => {
    while (active < n && waiting.length) {
      const { fn, alive, resolve, reject } = waiting.shift();
      if (!alive()) continue;
      active++;
      fn().then(resolve, reject).finally(() => { active--; next(); });
    }
  };
  return (fn, alive) => new Promise((resolve, reject) => { waiting.push({ fn, alive, resolve, reject }); next(); });
}

const queued = limiter(statusCalls);

async function listAll(api) {
  const out = [];
  let token;
  do {
    const page = await api.send('listStreams', { MaxResults: 1000, NextToken: token });
    out.push(...(page.StreamInfoList || []));
    token = page.NextToken;
  } while (token);
  return out;
}

// recentFragments lists the fragments of the last recentMs (server clock), oldest first.
async function recentFragments(api, name) {
  const now = Date.now();
  const out = [];
  let token;
  do {
    const page = await api.send('listFragments', {
      StreamName: name, MaxResults: 1000, NextToken: token,
      FragmentSelector: { FragmentSelectorType: 'SERVER_TIMESTAMP',
        TimestampRange: { StartTimestamp: (now - recentMs) / 1000, EndTimestamp: (now + 60000) / 1000 } },
    });
    out.push(...(page.Fragments || []));
    token = page.NextToken;
  } while (token);
  return out.sort((a, b) => a.ServerTimestamp - b.ServerTimestamp);
}

// rateFragments is how many of the newest fragments the ingest rate is measured over; a stream
// whose newest fragment is older than idleMs is idle.
const rateFragments = 10;
const idleMs = 60e3;

// ingestRate is the bit rate of the newest fragments: their bytes over their duration.
export function ingestRate(frags) {
  const last = frags.slice(-rateFragments);
  const ms = last.reduce((n, f) => n + f.FragmentLengthInMilliseconds, 0);
  return ms > 0 ? last.reduce((n, f) => n + f.FragmentSizeInBytes, 0) * 8000 / ms : 0;
}

function bitRate(bps) {
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(bps >= 1e7 ? 0 : 1)} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}

// Ingest is the age of the stream's last fragment and the rate of its newest fragments, from
// one listing of the last few minutes.
function Ingest({ api, info }) {
  const [state, setState] = useState({ age: '…', rate: '…' });
  useEffect(() => {
    if (info.DataRetentionInHours === 0) {
      setState({ age: 'not archived (retention 0)', rate: '–' });
      return;
    }
    let live = true;
    queued(() => recentFragments(api, info.StreamName), () => live).then(frags => {
      const last = frags[frags.length - 1];
      if (!live) return;
      if (!last) return setState({ age: 'none in 5 min', rate: 'idle' });
      const age = Date.now() - last.ServerTimestamp * 1000;
      setState({ age: `${duration(age)} ago`, rate: age > idleMs ? 'idle' : bitRate(ingestRate(frags)) });
    }, e => live && setState({ age: e.code || 'error', rate: '–' }));
    return () => { live = false; };
  }, [info.StreamName]);
  return html`<span>last fragment: <span class="age">${state.age}</span></span>
    <span>ingest: <span class="rate" title=${`over the newest ${rateFragments} fragments`}>${state.rate}</span></span>`;
}

const worst = ['ERROR', 'WARN'];

// images says how many images kvsd delivered for the stream since it started (the status
// answer's Images counts, from the image generator), or why it makes none.
function images(st, findings) {
  const has = code => findings.some(f => f.Code === code);
  if (has('IMAGE_CONFIG_MISSING')) return 'not configured';
  if (has('IMAGE_CONFIG_DISABLED')) return 'disabled';
  const n = st.Images;
  if (!n) return '–';
  return n.Pending ? `${n.Delivered} delivered, ${n.Pending} waiting` : `${n.Delivered} delivered`;
}

// Status is the doctor's worst finding for the stream (kvsdStreamStatus), or OK, and the images
// delivered since kvsd started, from one call.
function Status({ api, name }) {
  const [state, setState] = useState(null);
  useEffect(() => {
    let live = true;
    queued(() => api.send('kvsdStreamStatus', { StreamName: name }), () => live).then(st => {
      const all = (st.Reports || []).flatMap(r => r.Findings || []);
      const bad = worst.map(l => all.find(f => f.Level === l)).find(Boolean);
      live && setState({ images: images(st, all), ...(bad ? { level: bad.Level, text: bad.Code, title: bad.Message } : { level: 'OK', text: 'OK', title: 'No problems found' }) });
    }, e => live && setState({ level: 'ERROR', text: e.code || 'error', title: e.message, images: '–' }));
    return () => { live = false; };
  }, [name]);
  if (!state) return html`<span>images: <span class="images">…</span></span><span>doctor: <span class="health">…</span></span>`;
  return html`<span>images: <span class="images">${state.images}</span></span>
    <span>doctor: <span class=${'health lvl-' + state.level.toLowerCase()} title=${state.title}>${state.text}</span></span>`;
}

function CreateStream({ api, onCreated }) {
  const [name, setName] = useState('');
  const [retention, setRetention] = useState('24');
  const [mediaType, setMediaType] = useState('video/h264');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async e => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.send('createStream', { StreamName: name, DataRetentionInHours: Number(retention), MediaType: mediaType || undefined });
      setName('');
      onCreated(name);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const cmd = awsCommand('kinesisvideo', 'create-stream', [['stream-name', name || 'NAME'],
    ['data-retention-in-hours', retention], ['media-type', mediaType]]);
  return html`<details class="panel" id="create">
    <summary>Create a stream</summary>
    <form onSubmit=${submit} method="post">
      <label for="new-name">Name</label>
      <input id="new-name" name="streamName" value=${name} onInput=${e => setName(e.currentTarget.value)}
        required maxlength="256" pattern="[a-zA-Z0-9_.\\-]+" spellcheck="false" autocapitalize="off" />
      <label for="new-retention">Retention (hours; 0 keeps nothing)</label>
      <input id="new-retention" name="retention" type="number" min="0" max="87600" value=${retention}
        onInput=${e => setRetention(e.currentTarget.value)} />
      <label for="new-media">Media type</label>
      <input id="new-media" name="mediaType" value=${mediaType} onInput=${e => setMediaType(e.currentTarget.value)} />
      <button type="submit" disabled=${busy}>Create</button>
      <${ErrorBox} error=${error} />
    </form>
    <${Command} cmd=${cmd} />
  </details>`;
}

export function StreamsPage({ api }) {
  const [streams, setStreams] = useState(null);
  const [error, setError] = useState(null);
  const [filter, setFilter] = useState('');
  const load = useCallback(() => {
    listAll(api).then(s => { setStreams(s); setError(null); }, setError);
  }, [api]);
  useEffect(load, [load]);
  const [page, setPage] = useState(0);
  const matching = (streams || []).filter(s => s.StreamName.includes(filter));
  const pages = Math.max(1, Math.ceil(matching.length / pageRows));
  const at = Math.min(page, pages - 1);
  const shown = matching.slice(at * pageRows, (at + 1) * pageRows);
  return html`<main>
    <h1>Streams</h1>
    <${CreateStream} api=${api} onCreated=${load} />
    <${ErrorBox} error=${error} />
    ${streams === null && !error && html`<p class="muted">Loading…</p>`}
    ${streams && streams.length === 0 && html`<p class="muted" id="no-streams">No streams yet. Create one above, or let a producer create it (kvsd put --create).</p>`}
    ${streams && streams.length > 10 && html`<p><label for="filter">Filter </label>
      <input id="filter" type="search" value=${filter} onInput=${e => { setFilter(e.currentTarget.value); setPage(0); }} /></p>`}
    ${matching.length > pageRows && html`<nav class="row pager" aria-label="Pages of streams">
      <button type="button" class="small" id="page-prev" onClick=${() => setPage(at - 1)} disabled=${at === 0}>Previous</button>
      <span id="page-info">${at * pageRows + 1}–${at * pageRows + shown.length} of ${matching.length}</span>
      <button type="button" class="small" id="page-next" onClick=${() => setPage(at + 1)} disabled=${at >= pages - 1}>Next</button>
    </nav>`}
    ${streams && streams.length > 0 && html`<ul class="streams" id="streams" data-count=${matching.length}>
      ${shown.map(s => html`<li key=${s.StreamName} class="stream-row" data-stream=${s.StreamName}>
        <a class="name" href=${'#/streams/' + encodeURIComponent(s.StreamName)}>${s.StreamName}</a>
        <span class=${'status ' + s.Status.toLowerCase()}>${s.Status}</span>
        <span>${s.MediaType || 'no media type'}</span>
        <span>${s.DataRetentionInHours} h retention</span>
        <${Ingest} api=${api} info=${s} />
        <${Status} api=${api} name=${s.StreamName} />
      </li>`)}
    </ul>`}
    <${Command} cmd=${awsCommand('kinesisvideo', 'list-streams', [])} />
  </main>`;
}
