// The page side of internal/browsertest: plays one URL in a muted <video> with hls.js, dash.js or
// Shaka Player and keeps what a test asserts on. play.mjs calls kvsdPlay, then kvsdReport.
'use strict';

const libs = {
  hlsjs: '/node_modules/hls.js/dist/hls.js', // the full build: the light one has no alternate audio
  dashjs: '/node_modules/dashjs/dist/modern/umd/dash.all.min.js',
  shaka: '/node_modules/shaka-player/dist/shaka-player.compiled.js',
};

const state = {
  player: '',
  live: false,
  ended: false,
  samples: [],
  errors: [],
  audioTracks: [],
  frags: new Map(), // hls.js: "type/sn" -> its Fragment object, read again at report time
  sessionURL: '', // the URL the AWS SDK returned (job.sdk)
};
let playheadDate = () => null; // the wall-clock date (ms) of the playhead, where the player has one

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error('loading ' + src + ' failed'));
    document.head.appendChild(s);
  });
}

function addError(e) {
  state.errors.push({ at: Date.now(), ...e });
}

function text(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (v instanceof Error) return v.message;
  try { return JSON.stringify(v); } catch { return String(v); }
}

function startHLSJS(video, url, config) {
  if (!Hls.isSupported()) throw new Error('hls.js: MSE is not supported');
  const hls = new Hls(config || {});
  window.kvsdHls = hls;
  hls.on(Hls.Events.ERROR, (_, d) => addError({
    fatal: !!d.fatal,
    type: d.type || '',
    details: d.details || '',
    message: text(d.error || d.reason || d.err),
    url: d.url || (d.frag && d.frag.url) || (d.context && d.context.url) || '',
    code: (d.response && d.response.code) || 0,
  }));
  const tracks = () => {
    state.audioTracks = hls.audioTracks.map(t => ({
      id: String(t.id), name: t.name || '', lang: t.lang || '', groupId: t.groupId || '',
      default: !!t.default, url: t.url || '', codec: t.audioCodec || '',
    }));
  };
  hls.on(Hls.Events.MANIFEST_PARSED, tracks);
  hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, tracks);
  hls.on(Hls.Events.LEVEL_LOADED, (_, d) => { state.live = !!(d.details && d.details.live); });
  const keep = (_, d) => { if (d.frag && typeof d.frag.sn === 'number') state.frags.set(d.frag.type + '/' + d.frag.sn, d.frag); };
  hls.on(Hls.Events.FRAG_LOADED, keep);
  hls.on(Hls.Events.FRAG_BUFFERED, keep);
  hls.on(Hls.Events.FRAG_CHANGED, keep);
  playheadDate = () => (hls.playingDate ? hls.playingDate.getTime() : null);
  hls.loadSource(url);
  hls.attachMedia(video);
}

function startDashJS(video, url, config) {
  const player = dashjs.MediaPlayer().create();
  window.kvsdDash = player;
  if (config) player.updateSettings(config);
  const ev = dashjs.MediaPlayer.events;
  player.on(ev.ERROR, e => {
    const err = e.error || {};
    // dash.js reports an error only once it gave up (retries spent): all of them are fatal.
    addError({ fatal: true, type: 'error', details: String(err.code || ''), message: text(err.message || err), url: text(err.data && err.data.url), code: 0 });
  });
  player.on(ev.PLAYBACK_ERROR, e => addError({ fatal: true, type: 'playbackError', details: '', message: text(e.error), url: '', code: 0 }));
  player.on(ev.STREAM_INITIALIZED, () => {
    state.live = player.isDynamic();
    state.audioTracks = player.getTracksFor('audio').map(t => ({
      id: String(t.id === undefined ? t.index : t.id), name: (t.labels && t.labels[0] && t.labels[0].text) || '',
      lang: t.lang || '', groupId: '', default: false, url: '', codec: t.codec || '',
    }));
  });
  playheadDate = () => (player.isDynamic() ? Math.round(player.timeAsUTC() * 1000) : null);
  player.initialize(video, url, true);
}

async function startShaka(video, url, config) {
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) throw new Error('shaka: browser not supported');
  const player = new shaka.Player();
  window.kvsdShaka = player;
  if (config) player.configure(config);
  player.addEventListener('error', ev => {
    const d = ev.detail || {};
    addError({
      fatal: d.severity === 2, // shaka.util.Error.Severity.CRITICAL
      type: 'category ' + d.category, details: String(d.code), message: text(d.message || d.data),
      url: (d.data && typeof d.data[0] === 'string') ? d.data[0] : '', code: (d.data && typeof d.data[1] === 'number') ? d.data[1] : 0,
    });
  });
  await player.attach(video);
  playheadDate = () => {
    const d = player.isLive() ? player.getPlayheadTimeAsDate() : null;
    return d ? d.getTime() : null;
  };
  try {
    await player.load(url);
  } catch (e) {
    // load() rejects with the same shaka.util.Error the error event carried, if it had one.
    if (!state.errors.some(x => x.fatal)) addError({ fatal: true, type: 'category ' + e.category, details: String(e.code), message: text(e.message || e.data), url: '', code: 0 });
    return;
  }
  state.live = player.isLive();
  const audio = typeof player.getAudioTracks === 'function'
    ? player.getAudioTracks()
    : player.getVariantTracks().filter(t => t.audioCodec).map(t => ({ id: t.audioId, language: t.language, label: t.label, active: t.active, codecs: t.audioCodec }));
  const seen = new Set();
  const key = t => (t.id !== undefined ? t.id : (t.language || '') + '/' + (t.label || ''));
  state.audioTracks = audio.filter(t => !seen.has(key(t)) && seen.add(key(t))).map(t => ({
    id: String(key(t)), name: t.label || '', lang: t.language || '', groupId: '', default: !!t.active, url: '', codec: t.codecs || '',
  }));
}

function sample(video) {
  state.samples.push({ wall: Date.now(), time: video.currentTime, date: playheadDate(), readyState: video.readyState });
}

// kvsdPlay plays url, or with sdk the session URL that the AWS SDK for JavaScript gets from kvsd
// as the AWS sample viewer does (web/kvs-sdk.mjs, bundled to sdkBundle).
const sdkBundle = '/node_modules/.kvsd/kvs-sdk.js';

window.kvsdPlay = async function ({ player, url, config, sampleMs, sdk }) {
  state.player = player;
  const video = document.getElementById('video');
  video.muted = true;
  video.addEventListener('error', () => {
    const e = video.error;
    addError({ fatal: true, type: 'mediaError', details: 'video element error ' + (e ? e.code : ''), message: e ? e.message : '', url: '', code: 0 });
  });
  video.autoplay = true;
  video.addEventListener('canplay', () => { if (video.paused) video.play().catch(e => console.log('video.play(): ' + e.message)); });
  video.addEventListener('ended', () => { state.ended = true; });
  setInterval(() => sample(video), sampleMs || 250);
  try {
    if (sdk) {
      await loadScript(sdkBundle);
      try {
        url = await window.kvsdSessionURL(sdk);
      } catch (e) {
        addError({ fatal: true, type: 'sdk', details: e.name || '', message: text(e.message || e), url: '', code: (e.$metadata && e.$metadata.httpStatusCode) || 0 });
        return;
      }
      state.sessionURL = url;
    }
    await loadScript(libs[player]);
    if (player === 'hlsjs') startHLSJS(video, url, config);
    else if (player === 'dashjs') startDashJS(video, url, config);
    else if (player === 'shaka') await startShaka(video, url, config);
    else throw new Error('unknown player ' + player);
  } catch (e) {
    addError({ fatal: true, type: 'harness', details: '', message: text(e), url: '', code: 0 });
  }
};

// kvsdDone says whether watching longer can change the outcome: a fatal error or the end.
window.kvsdDone = () => state.ended || state.errors.some(e => e.fatal);

window.kvsdReport = function () {
  const video = document.getElementById('video');
  sample(video);
  const buffered = [];
  for (let i = 0; i < video.buffered.length; i++) buffered.push([video.buffered.start(i), video.buffered.end(i)]);
  const q = video.getVideoPlaybackQuality();
  const frags = [...state.frags.values()].map(f => ({
    type: f.type, sn: f.sn, start: f.start, duration: f.duration,
    programDateTime: typeof f.programDateTime === 'number' ? f.programDateTime : null, url: f.url || '',
  })).sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : a.sn - b.sn));
  return {
    player: state.player,
    live: state.live,
    ended: state.ended,
    samples: state.samples,
    buffered,
    videoWidth: video.videoWidth,
    videoHeight: video.videoHeight,
    decodedFrames: q.totalVideoFrames,
    droppedFrames: q.droppedVideoFrames,
    videoDecodedBytes: video.webkitVideoDecodedByteCount || 0,
    audioDecodedBytes: video.webkitAudioDecodedByteCount || 0,
    errors: state.errors,
    audioTracks: state.audioTracks,
    fragments: frags,
    sessionURL: state.sessionURL,
  };
};
