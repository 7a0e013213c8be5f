// kvsd's web console: sign-in, the streams list and a stream's page, all through kvsd's public
// API signed in this tab. The secret stays in sessionStorage (this tab only).
import './style.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { client, explainSignIn } from './api.js';
import { html } from './ui.js';
import { StreamsPage } from './streams.js';
import { StreamPage } from './stream.js';

const storageKey = 'kvsd.console.credentials';

function loadCredentials() {
  try {
    const c = JSON.parse(sessionStorage.getItem(storageKey) || 'null');
    return c && c.accessKeyId && c.secretAccessKey ? c : null;
  } catch {
    return null;
  }
}

function useRoute() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  const m = /^#\/streams\/(.+)$/.exec(hash);
  return m ? { page: 'stream', name: decodeURIComponent(m[1]) } : { page: 'streams' };
}

function SignIn({ region, onSignedIn }) {
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState(null);
  const submit = async e => {
    e.preventDefault();
    const form = e.currentTarget;
    const accessKeyId = form.accessKeyId.value.trim();
    const secretAccessKey = form.secretAccessKey.value.trim();
    if (!accessKeyId || !secretAccessKey) {
      setProblem({ reason: 'other', text: 'Enter the access key ID and the secret access key.' });
      return;
    }
    setBusy(true);
    setProblem(null);
    const api = client({ accessKeyId, secretAccessKey, region });
    try {
      await api.send('listStreams', { MaxResults: 1 });
      sessionStorage.setItem(storageKey, JSON.stringify({ accessKeyId, secretAccessKey }));
      onSignedIn(api);
    } catch (err) {
      setProblem(explainSignIn(err, accessKeyId));
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>kvsd console</h1>
    <p>Sign in with kvsd's API credentials, the key pair kvsd printed when it first started
      (<code>AWS_ACCESS_KEY_ID</code> and <code>AWS_SECRET_ACCESS_KEY</code>). The secret stays in
      this tab and signs every request here; it is never sent.</p>
    <form id="signin" method="post" onSubmit=${submit} autocomplete="off">
      <label for="accessKeyId">Access key ID</label>
      <input id="accessKeyId" name="accessKeyId" autocomplete="username" spellcheck="false" autocapitalize="off" required />
      <label for="secretAccessKey">Secret access key</label>
      <input id="secretAccessKey" name="secretAccessKey" type="password" autocomplete="current-password" required />
      <p class="muted">Region ${region} (kvsd serve --region).</p>
      <button type="submit" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
      ${problem && html`<p id="signin-error" class="error" role="alert" data-reason=${problem.reason}>${problem.text}</p>`}
    </form>
  </main>`;
}

function App({ region }) {
  const [api, setAPI] = useState(() => {
    const c = loadCredentials();
    return c ? client({ ...c, region }) : null;
  });
  const route = useRoute();
  if (!api) return html`<${SignIn} region=${region} onSignedIn=${setAPI} />`;
  const signOut = () => {
    sessionStorage.removeItem(storageKey);
    setAPI(null);
  };
  return html`<div class="app">
    <header>
      <a href="#/" class="brand">kvsd</a>
      <span class="who" title="access key ID">${api.accessKeyId}</span>
      <button type="button" class="small" id="signout" onClick=${signOut}>Sign out</button>
    </header>
    ${route.page === 'stream'
      ? html`<${StreamPage} key=${route.name} api=${api} name=${route.name} />`
      : html`<${StreamsPage} api=${api} />`}
  </div>`;
}

async function start() {
  let region = 'us-east-1';
  try {
    const res = await fetch('config.json', { cache: 'no-store' });
    if (res.ok) region = (await res.json()).region || region;
  } catch { /* the default region */ }
  render(html`<${App} region=${region} />`, document.getElementById('app'));
}

start();
