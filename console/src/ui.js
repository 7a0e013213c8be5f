// Small shared pieces: htm bound to Preact, the aws CLI command box, time formatting.
import { h } from 'preact';
import { useState } from 'preact/hooks';
import htm from 'htm';

export const html = htm.bind(h);

// shellQuote quotes one argument for a POSIX shell when it needs it.
export function shellQuote(s) {
  s = String(s);
  return /^[A-Za-z0-9_./:=,@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

// awsCommand is the aws CLI command doing what the console does, pointed at this kvsd.
export function awsCommand(service, op, args) {
  const parts = ['aws', service, op];
  for (const [k, v] of args) {
    if (v === undefined || v === null || v === '') continue;
    parts.push(`--${k}`);
    if (v !== true) parts.push(shellQuote(v));
  }
  parts.push('--endpoint-url', location.origin);
  return parts.join(' ');
}

// Command shows a command ready to copy.
export function Command({ cmd, label = 'The same with the aws CLI' }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(cmd);
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    } catch {
      // Clipboard needs a secure context (https or localhost): select the text instead.
      const sel = window.getSelection();
      const code = document.getElementById('cmd-' + hash(cmd));
      if (sel && code) sel.selectAllChildren(code);
    }
  };
  return html`<div class="cmd">
    <div class="cmd-head"><span>${label}</span>
      <button type="button" class="small" onClick=${copy}>${copied ? 'Copied' : 'Copy'}</button></div>
    <pre><code id=${'cmd-' + hash(cmd)}>${cmd}</code></pre>
  </div>`;
}

function hash(s) {
  let x = 0;
  for (let i = 0; i < s.length; i++) x = (x * 31 + s.charCodeAt(i)) | 0;
  return (x >>> 0).toString(36);
}

// clock writes a time of day with milliseconds, local time; date adds the day.
export function clock(ms, withMs = false) {
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  const t = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  return withMs ? `${t}.${p(d.getMilliseconds(), 3)}` : t;
}

export function date(ms) {
  const d = new Date(ms);
  const p = n => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${clock(ms, true)}`;
}

// ErrorBox shows an error of a call, or nothing.
export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.message || String(error)}</p>`;
}
