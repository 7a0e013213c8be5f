// A stream's page: the video (live, or the archive from a moment picked on the timeline),
// clip export, the doctor's findings, and the stream's settings.
import { useEffect, useState, useCallback } from 'preact/hooks';
import { html, awsCommand, Command, ErrorBox, date } from './ui.js';
import { Player, selectorType } from './player.js';
import { Timeline } from './timeline.js';
import { ImagesConfig, NotificationsConfig, Tags } from './config.js';
import { Gallery } from './gallery.js';
import { duration } from './api.js';

const clipLengths = [['10 s', 10e3], ['30 s', 30e3], ['1 min', 60e3], ['5 min', 300e3]];

function iso(ms) {
  return new Date(ms).toISOString();
}

// Clip exports an MP4 with GetClip: the range selected on the timeline, or else from the
// moment being played (or the last seconds when live).
function Clip({ api, name, clock, playingMs, live, selection, onClear }) {
  const [len, setLen] = useState(30e3);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [file, setFile] = useState(null);
  const from = selection ? selection.start : live || playingMs == null ? Date.now() - len : playingMs;
  const to = selection ? selection.end : from + len;
  const what = selection ? `: the range selected on the timeline (${duration(to - from)})`
    : live || playingMs == null ? ': the last seconds' : ': from the moment playing';
  const range = `FragmentSelectorType=${selectorType(clock)},TimestampRange={StartTimestamp=${iso(from)},EndTimestamp=${iso(to)}}`;
  const exportClip = async () => {
    setBusy(true);
    setError(null);
    try {
      const blob = await api.send('getClip', { StreamName: name, ClipFragmentSelector: { FragmentSelectorType: selectorType(clock),
        TimestampRange: { StartTimestamp: from / 1000, EndTimestamp: to / 1000 } } }, { binary: true });
      if (file) URL.revokeObjectURL(file.url);
      const f = { url: URL.createObjectURL(blob), name: `${name}-${iso(from).replace(/[:.]/g, '-')}.mp4`, size: blob.size };
      setFile(f);
      const a = document.createElement('a');
      a.href = f.url;
      a.download = f.name;
      document.body.appendChild(a);
      a.click();
      a.remove();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return html`<section class="panel" aria-labelledby="clip-h">
    <div class="row"><h2 id="clip-h">Clip</h2>
      ${selection
        ? html`<button type="button" class="small" id="clip-clear" onClick=${onClear}>Clear selection</button>`
        : html`<label for="clip-len">Length</label>
          <select id="clip-len" value=${len} onChange=${e => setLen(Number(e.currentTarget.value))}>
            ${clipLengths.map(([l, ms]) => html`<option value=${ms}>${l}</option>`)}
          </select>`}
      <button type="button" id="clip-export" onClick=${exportClip} disabled=${busy}>${busy ? 'Exporting…' : 'Export MP4'}</button>
    </div>
    <p class="muted" id="clip-range" data-from-ms=${Math.round(from)} data-to-ms=${Math.round(to)}>${date(from)} to ${date(to)} (${clock} clock)${what}.
      ${!selection && ' Drag across the timeline to export a range of your own.'}
      GetClip takes the range's first 200 fragments or 100 MB.</p>
    ${file && html`<p><a id="clip-file" href=${file.url} download=${file.name}>${file.name}</a> (${(file.size / 1e6).toFixed(2)} MB)</p>`}
    <${ErrorBox} error=${error} />
    <${Command} cmd=${awsCommand('kinesis-video-archived-media', 'get-clip', [['stream-name', name], ['clip-fragment-selector', range]]) + ' clip.mp4'} />
  </section>`;
}

const levelOrder = { ERROR: 0, WARN: 1, INFO: 2, OK: 3 };

// Doctor shows kvsdStreamStatus: what `kvsd doctor` prints, with the fixes.
function Doctor({ api, name, rev }) {
  const [status, setStatus] = useState(null);
  const [error, setError] = useState(null);
  const load = useCallback(() => {
    api.send('kvsdStreamStatus', { StreamName: name }).then(s => { setStatus(s); setError(null); }, setError);
  }, [api, name]);
  useEffect(load, [load, rev]);
  const findings = status ? status.Reports.flatMap(r => (r.Findings || []).map(f => ({ ...f, component: r.Component }))) : [];
  findings.sort((a, b) => (levelOrder[a.Level] ?? 9) - (levelOrder[b.Level] ?? 9));
  const problems = findings.filter(f => f.Level === 'ERROR' || f.Level === 'WARN').length;
  return html`<section class="panel" aria-labelledby="doctor-h">
    <div class="row"><h2 id="doctor-h">Doctor</h2>
      <button type="button" class="small" onClick=${load}>Check again</button></div>
    <${ErrorBox} error=${error} />
    ${status && html`<p id="doctor-summary">${problems ? `${problems} problem${problems > 1 ? 's' : ''} found.` : 'No problems found.'}</p>`}
    <ul class="findings" id="findings">${findings.map(f => html`<li class=${'finding lvl-' + f.Level.toLowerCase()} data-code=${f.Code}>
      <span class="level">${f.Level}</span> <span class="component">${f.component}</span>
      <p>${f.Message} <code>[${f.Code}]</code></p>
      ${f.Fix && html`<p class="fix">Fix: ${f.Fix}</p>`}
    </li>`)}</ul>
    <${Command} label="The same in a shell" cmd=${`kvsd doctor ${name} --endpoint-url ${location.origin}`} />
  </section>`;
}

// Settings changes the retention and deletes the stream.
function Settings({ api, info, onChanged }) {
  const [hours, setHours] = useState(String(info.DataRetentionInHours));
  const [error, setError] = useState(null);
  const [confirm, setConfirm] = useState(false);
  const change = Number(hours) - info.DataRetentionInHours;
  const op = change >= 0 ? 'INCREASE_DATA_RETENTION' : 'DECREASE_DATA_RETENTION';
  const retain = async e => {
    e.preventDefault();
    setError(null);
    try {
      await api.send('updateDataRetention', { StreamName: info.StreamName, CurrentVersion: info.Version,
        Operation: op, DataRetentionChangeInHours: Math.abs(change) });
      onChanged();
    } catch (err) {
      setError(err);
    }
  };
  const del = async () => {
    setError(null);
    try {
      await api.send('deleteStream', { StreamARN: info.StreamARN, CurrentVersion: info.Version });
      location.hash = '#/';
    } catch (err) {
      setError(err);
    }
  };
  return html`<section class="panel" aria-labelledby="settings-h">
    <h2 id="settings-h">Settings</h2>
    <form onSubmit=${retain} method="post" class="row">
      <label for="retention">Retention (hours)</label>
      <input id="retention" type="number" min="0" max="87600" value=${hours} onInput=${e => setHours(e.currentTarget.value)} />
      <button type="submit" disabled=${change === 0 || hours === ''}>Change retention</button>
    </form>
    <${Command} cmd=${awsCommand('kinesisvideo', 'update-data-retention', [['stream-name', info.StreamName],
      ['current-version', info.Version], ['operation', op], ['data-retention-change-in-hours', String(Math.abs(change))]])} />
    <div class="row danger">
      ${confirm
        ? html`<span>Delete ${info.StreamName} and all its video?</span>
            <button type="button" id="delete-confirm" class="danger" onClick=${del}>Delete for good</button>
            <button type="button" onClick=${() => setConfirm(false)}>Cancel</button>`
        : html`<button type="button" id="delete" class="danger" onClick=${() => setConfirm(true)}>Delete stream…</button>`}
    </div>
    <${Command} cmd=${awsCommand('kinesisvideo', 'delete-stream', [['stream-arn', info.StreamARN]])} />
    <${ErrorBox} error=${error} />
  </section>`;
}

export function StreamPage({ api, name }) {
  const [info, setInfo] = useState(null);
  const [error, setError] = useState(null);
  const [clock, setClock] = useState('producer');
  const [what, setWhat] = useState(null);
  const [playingMs, setPlayingMs] = useState(null);
  const [notice, setNotice] = useState(null);
  const [tags, setTags] = useState(null);
  const [selection, setSelection] = useState(null);
  const [rev, setRev] = useState(0); // bumped by every change, so the doctor looks again
  const load = useCallback(() => {
    api.send('describeStream', { StreamName: name }).then(o => { setInfo(o.StreamInfo); setError(null); }, setError);
    api.send('listTagsForStream', { StreamName: name }).then(o => setTags(o.Tags || {}), () => {});
  }, [api, name]);
  useEffect(load, [load]);
  const changed = useCallback(() => { load(); setRev(r => r + 1); }, [load]);
  useEffect(() => {
    if (info && info.DataRetentionInHours > 0 && !what) setWhat({ mode: 'live' });
  }, [info]);
  const pick = (atMs, fromMs) => {
    if (fromMs == null) {
      setNotice(`No video after ${date(atMs)} in this window: playing live.`);
      setWhat({ mode: 'live' });
      return;
    }
    setNotice(null);
    setPlayingMs(null);
    setWhat({ mode: 'archive', atMs, fromMs });
  };
  // playAt plays the archive from t, found in the fragments of the half minute before it.
  const playAt = async t => {
    try {
      const out = await api.send('listFragments', { StreamName: name, MaxResults: 1000, FragmentSelector: {
        FragmentSelectorType: selectorType(clock), TimestampRange: { StartTimestamp: (t - 30000) / 1000, EndTimestamp: t / 1000 } } });
      const starts = (out.Fragments || []).map(f => Math.round((clock === 'server' ? f.ServerTimestamp : f.ProducerTimestamp) * 1000));
      const from = starts.filter(s => s <= t).reduce((a, b) => Math.max(a, b), -Infinity);
      pick(t, from > -Infinity ? from : null);
      document.getElementById('player').scrollIntoView({ block: 'nearest' });
    } catch (e) {
      setNotice(e.message);
    }
  };
  if (error) return html`<main><h1>${name}</h1><${ErrorBox} error=${error} /><p><a href="#/">All streams</a></p></main>`;
  if (!info) return html`<main><h1>${name}</h1><p class="muted">Loading…</p></main>`;
  return html`<main class="stream" data-stream=${name}>
    <p><a href="#/">All streams</a></p>
    <h1>${name}</h1>
    <dl class="facts">
      <dt>Status</dt><dd>${info.Status}</dd>
      <dt>Retention</dt><dd id="retention-now">${info.DataRetentionInHours} h</dd>
      <dt>Media type</dt><dd>${info.MediaType || '–'}</dd>
      <dt>Created</dt><dd>${date(info.CreationTime * 1000)}</dd>
      <dt>ARN</dt><dd class="arn">${info.StreamARN}</dd>
    </dl>
    ${info.DataRetentionInHours === 0
      ? html`<p class="notice">This stream keeps no data (retention 0): there is nothing to play or export. Raise the retention below.</p>`
      : html`
        <div class="row">
          <button type="button" id="go-live" onClick=${() => { setNotice(null); setPlayingMs(null); setWhat({ mode: 'live' }); }}>Live</button>
          <label for="clock">Clock</label>
          <select id="clock" value=${clock} onChange=${e => { setSelection(null); setClock(e.currentTarget.value); }}>
            <option value="producer">producer</option><option value="server">server</option>
          </select>
        </div>
        ${notice && html`<p class="notice">${notice}</p>`}
        <${Player} api=${api} name=${name} clock=${clock} what=${what} onTime=${setPlayingMs} />
        <${Timeline} api=${api} name=${name} clock=${clock} playingMs=${playingMs} onPick=${pick}
          selection=${selection} onSelect=${setSelection} />
        <${Clip} api=${api} name=${name} clock=${clock} playingMs=${playingMs} live=${!what || what.mode === 'live'}
          selection=${selection} onClear=${() => setSelection(null)} />`}
    <${Doctor} api=${api} name=${name} rev=${rev} />
    <${Gallery} api=${api} name=${name} rev=${rev} onPick=${playAt} />
    <${ImagesConfig} api=${api} name=${name} tags=${tags} onChanged=${changed} />
    <${NotificationsConfig} api=${api} name=${name} onChanged=${changed} />
    <${Tags} api=${api} name=${name} tags=${tags} onChanged=${changed} />
    <${Settings} key=${info.Version} api=${api} info=${info} onChanged=${changed} />
  </main>`;
}
