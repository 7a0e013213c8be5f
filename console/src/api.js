// The console's only way to kvsd: its public API at this page's origin, every request signed
// with SigV4 in the browser (@smithy/signature-v4 over a pure-JS SHA-256, so plain http:// on a
// LAN works too, where WebCrypto is unavailable).
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@aws-crypto/sha256-js';

// APIError is a refused call: AWS's error type, its message, the HTTP status and kvsd's clock.
export class APIError extends Error {
  constructor(code, message, status, serverDate) {
    super(`${code}: ${message}`);
    this.code = code;
    this.detail = message;
    this.status = status;
    this.serverDate = serverDate ? new Date(serverDate) : null;
  }
}

// client signs for region with the key pair; every operation is POST /<op> at this origin.
export function client({ accessKeyId, secretAccessKey, region }) {
  const signer = new SignatureV4({
    service: 'kinesisvideo', region, sha256: Sha256, uriEscapePath: true,
    credentials: { accessKeyId, secretAccessKey },
  });
  async function send(op, input, { binary = false, signal } = {}) {
    const url = new URL('/' + op, location.origin);
    const body = JSON.stringify(input || {});
    const signed = await signer.sign({
      method: 'POST', protocol: url.protocol, hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined, path: url.pathname, query: {},
      headers: { host: url.host, 'content-type': 'application/json' }, body,
    });
    const headers = { ...signed.headers };
    delete headers.host; // the browser sends it, as signed
    const res = await fetch(url, { method: 'POST', headers, body, signal, credentials: 'omit', cache: 'no-store' });
    if (!res.ok) {
      let data = {};
      try { data = await res.json(); } catch { /* not JSON */ }
      throw new APIError(res.headers.get('x-amzn-ErrorType') || data.__type || `HTTP${res.status}`,
        data.message || res.statusText, res.status, res.headers.get('Date'));
    }
    return binary ? res.blob() : res.json();
  }
  // presign returns a URL at this origin for GET path?query, signed in its query string (as S3
  // presigned URLs are), for elements that load by themselves such as <img>.
  async function presign(path, query, expiresIn = 3600) {
    const url = new URL(path, location.origin);
    const req = await signer.presign({
      method: 'GET', protocol: url.protocol, hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined, path: url.pathname, query, headers: { host: url.host },
    }, { expiresIn });
    const qs = Object.entries(req.query).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
    return `${url.origin}${url.pathname}?${qs}`;
  }
  return { send, presign, accessKeyId, region };
}

// explainSignIn turns a refused sign-in into plain words, naming what is wrong: the reason is
// 'unknown-key', 'wrong-secret', 'clock-skew', 'region' or 'other'.
export function explainSignIn(err, accessKeyId) {
  if (!(err instanceof APIError)) {
    return { reason: 'other', text: `kvsd did not answer: ${err.message}. Is it still running?` };
  }
  const m = err.detail || '';
  if (err.code === 'UnrecognizedClientException') {
    return { reason: 'unknown-key', text: `kvsd does not know the access key ID "${accessKeyId}". Check it for typos: kvsd printed its key pair when it first started (it is in <data-dir>/credentials), and --credentials-file adds more.` };
  }
  if (err.code === 'InvalidSignatureException' && /Signature expired|not yet current|Request has expired/.test(m)) {
    let off = '';
    if (err.serverDate && !isNaN(err.serverDate)) {
      const skew = Date.now() - err.serverDate.getTime();
      off = ` This device's clock is ${duration(Math.abs(skew))} ${skew > 0 ? 'ahead of' : 'behind'} kvsd's.`;
    }
    return { reason: 'clock-skew', text: `The key and secret may be right, but the clocks disagree: signed requests must be within 5 minutes of kvsd's clock.${off} Set this device's clock (automatic time / NTP), or kvsd's, and sign in again.` };
  }
  if (err.code === 'InvalidSignatureException' && /region/.test(m)) {
    return { reason: 'region', text: m };
  }
  if (err.code === 'InvalidSignatureException' && /does not match/.test(m)) {
    return { reason: 'wrong-secret', text: `The secret access key is wrong: kvsd knows the access key ID "${accessKeyId}", but the request was not signed with its secret. Paste the secret again (it is the AWS_SECRET_ACCESS_KEY kvsd printed with this key).` };
  }
  return { reason: 'other', text: `${err.code}: ${m}` };
}

// duration writes milliseconds in words a person reads at a glance.
export function duration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 1) return `${Math.round(ms)} ms`;
  if (s < 90) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 90) return `${min} min`;
  const h = Math.round(min / 60);
  if (h < 48) return `${h} h`;
  return `${Math.round(h / 24)} days`;
}
