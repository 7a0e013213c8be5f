// The video: a LIVE HLS session, or an ON_DEMAND one from a moment of the archive, played
// with hls.js (loaded on first use, a chunk of its own). Session URLs are rewritten to this
// page's origin, so playback works whatever --public-url names and the CSP allows it.
import { useEffect, useRef, useState } from 'preact/hooks';
import { html, date } from './ui.js';

// The README's low-latency settings (Playback section); no worker, so the CSP needs no blob: workers.
const liveConfig = { liveSyncDurationCount: 1, liveMaxLatencyDurationCount: 3, maxLiveSyncPlaybackRate: 1.5,
  lowLatencyMode: true, backBufferLength: 30, enableWorker: false };

export function selectorType(clock) {
  return clock === 'server' ? 'SERVER_TIMESTAMP' : 'PRODUCER_TIMESTAMP';
}

async function sessionURL(api, input) {
  const out = await api.send('getHLSStreamingSessionURL', input);
  const u = new URL(out.HLSStreamingSessionURL, location.origin);
  return location.origin + u.pathname + u.search;
}

// sessionInput is GetHLSStreamingSessionURL's input for what: {mode: 'live'} or
// {mode: 'archive', fromMs} (the first fragment to list starts at fromMs).
function sessionInput(name, clock, what) {
  const input = { StreamName: name, DisplayFragmentTimestamp: 'ALWAYS', Expires: 3600 };
  if (what.mode === 'live') {
    return { ...input, PlaybackMode: 'LIVE', HLSFragmentSelector: { FragmentSelectorType: selectorType(clock) } };
  }
  const end = Math.min(what.fromMs + 3 * 3600 * 1000, Date.now() + 60 * 1000);
  return { ...input, PlaybackMode: 'ON_DEMAND', HLSFragmentSelector: { FragmentSelectorType: selectorType(clock),
    TimestampRange: { StartTimestamp: what.fromMs / 1000, EndTimestamp: Math.max(end, what.fromMs + 1000) / 1000 } } };
}

// Player plays what ({mode: 'live'} or {mode: 'archive', fromMs, atMs}) and reports the
// wall-clock time at the playhead (the fragments' program dates) through onTime.
export function Player({ api, name, clock, what, onTime }) {
  const video = useRef(null);
  const [error, setError] = useState(null);
  const [at, setAt] = useState(null);
  const [first, setFirst] = useState(null);
  useEffect(() => {
    if (!what) return;
    let hls = null, gone = false;
    setError(null);
    setAt(null);
    setFirst(null);
    (async () => {
      const [{ default: Hls }, url] = await Promise.all([import('hls.js'), sessionURL(api, sessionInput(name, clock, what))]);
      if (gone) return;
      const config = what.mode === 'live' ? liveConfig
        : { enableWorker: false, startPosition: Math.max(0, (what.atMs - what.fromMs) / 1000) };
      hls = new Hls(config);
      hls.on(Hls.Events.ERROR, (_, d) => {
        if (d.fatal) setError(`The player stopped: ${d.type} ${d.details}${d.response ? ` (HTTP ${d.response.code})` : ''}`);
      });
      hls.on(Hls.Events.MANIFEST_PARSED, () => video.current.play().catch(() => {}));
      const el = video.current;
      let seen = false;
      el.ontimeupdate = () => {
        const d = hls && hls.playingDate;
        if (!d) return;
        const ms = d.getTime();
        setAt(ms);
        if (!seen && !el.paused && el.currentTime > 0) {
          seen = true;
          setFirst(ms);
        }
        onTime && onTime(ms);
      };
      hls.loadSource(url);
      hls.attachMedia(el);
    })().catch(e => !gone && setError(e.message || String(e)));
    return () => {
      gone = true;
      if (video.current) video.current.ontimeupdate = null;
      if (hls) hls.destroy();
    };
  }, [what, clock]);
  const mode = what ? what.mode : 'none';
  return html`<div class="player" id="player" data-mode=${mode}>
    <video ref=${video} muted playsinline controls></video>
    <p class="readout">
      <span class=${'badge ' + mode}>${mode === 'live' ? 'LIVE' : mode === 'archive' ? 'ARCHIVE' : ''}</span>
      <span id="playing-at" data-playing-ms=${at ?? ''} data-first-ms=${first ?? ''}>
        ${at ? `${date(at)} (${clock} clock)` : what ? 'loading…' : ''}</span>
    </p>
    ${error && html`<p class="error" role="alert" id="player-error">${error}</p>`}
  </div>`;
}
