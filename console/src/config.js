// A stream's configuration panels: image generation (every field, and kvsd's
// kvsd:ImageGeneration policy tag), notifications, and tags. kvsd validates as AWS does; its
// message is shown beside the field it names.
import { useEffect, useState, useCallback } from 'preact/hooks';
import { html, awsCommand, Command, ErrorBox } from './ui.js';

const policyTag = 'kvsd:ImageGeneration';

// fieldOf is the first of fields that an error message names, or ''.
function fieldOf(err, fields) {
  const m = (err && err.detail) || '';
  return fields.find(f => m.includes(f)) || '';
}

function Field({ id, label, error, children }) {
  return html`<div class=${'field' + (error ? ' invalid' : '')}>
    <label for=${id}>${label}</label>
    ${children}
    ${error && html`<p class="field-error" id=${id + '-error'} role="alert">${error}</p>`}
  </div>`;
}

const imageFields = ['SamplingInterval', 'DestinationConfig.Uri', 'Uri', 'DestinationRegion', 'JPEGQuality', 'WidthPixels',
  'HeightPixels', 'ImageSelectorType', 'Format', 'Status'];

export function ImagesConfig({ api, name, tags, onChanged }) {
  const [cfg, setCfg] = useState(null);
  const [form, setForm] = useState(null);
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState('');
  useEffect(() => {
    api.send('describeImageGenerationConfiguration', { StreamName: name }).then(o => {
      const c = o.ImageGenerationConfiguration || null;
      setCfg(c);
      setForm({
        Status: c ? c.Status : 'ENABLED', ImageSelectorType: c ? c.ImageSelectorType : 'PRODUCER_TIMESTAMP',
        Uri: c && c.DestinationConfig ? c.DestinationConfig.Uri : `s3://images/${name}`,
        DestinationRegion: c && c.DestinationConfig ? c.DestinationConfig.DestinationRegion : api.region,
        SamplingInterval: c && c.SamplingInterval != null ? String(c.SamplingInterval) : '3000',
        Format: c ? c.Format : 'JPEG', JPEGQuality: c && c.FormatConfig ? c.FormatConfig.JPEGQuality || '' : '',
        WidthPixels: c && c.WidthPixels != null ? String(c.WidthPixels) : '', HeightPixels: c && c.HeightPixels != null ? String(c.HeightPixels) : '',
      });
    }, setError);
  }, [api, name]);
  if (!form) return html`<section class="panel"><h2>Images</h2><${ErrorBox} error=${error} /></section>`;
  const set = k => e => setForm({ ...form, [k]: e.currentTarget.value });
  const num = v => (v === '' ? undefined : Number(v));
  const body = {
    Status: form.Status, ImageSelectorType: form.ImageSelectorType,
    DestinationConfig: { Uri: form.Uri, DestinationRegion: form.DestinationRegion },
    SamplingInterval: num(form.SamplingInterval), Format: form.Format,
    FormatConfig: form.Format === 'JPEG' && form.JPEGQuality !== '' ? { JPEGQuality: form.JPEGQuality } : undefined,
    WidthPixels: num(form.WidthPixels), HeightPixels: num(form.HeightPixels),
  };
  const save = async e => {
    e.preventDefault();
    setError(null);
    setSaved('');
    try {
      await api.send('updateImageGenerationConfiguration', { StreamName: name, ImageGenerationConfiguration: body });
      setCfg(body);
      setSaved('Saved.');
      onChanged();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async () => {
    setError(null);
    try {
      await api.send('updateImageGenerationConfiguration', { StreamName: name });
      setCfg(null);
      setSaved('Removed.');
      onChanged();
    } catch (err) {
      setError(err);
    }
  };
  const policy = tags ? tags[policyTag] || 'TAGGED_FRAGMENTS' : 'TAGGED_FRAGMENTS';
  const setPolicy = async e => {
    const v = e.currentTarget.value;
    setError(null);
    try {
      await api.send('tagStream', { StreamName: name, Tags: { [policyTag]: v } });
      onChanged();
    } catch (err) {
      setError(err);
    }
  };
  const bad = fieldOf(error, imageFields);
  const at = f => (bad === f || (f === 'Uri' && bad === 'DestinationConfig.Uri') ? error.detail : '');
  const json = JSON.stringify(JSON.parse(JSON.stringify(body)));
  return html`<section class="panel" aria-labelledby="images-h" id="images-config">
    <h2 id="images-h">Images</h2>
    <p class="muted">${cfg ? `Configured: ${cfg.Status}.` : 'Not configured: no images are delivered.'}</p>
    <form onSubmit=${save} method="post" class="grid">
      <${Field} id="img-status" label="Status"><select id="img-status" value=${form.Status} onChange=${set('Status')}>
        <option>ENABLED</option><option>DISABLED</option></select><//>
      <${Field} id="img-uri" label="Destination URI (s3://bucket/path)" error=${at('Uri')}>
        <input id="img-uri" value=${form.Uri} onInput=${set('Uri')} spellcheck="false" autocapitalize="off" /><//>
      <${Field} id="img-region" label="Destination region" error=${at('DestinationRegion')}>
        <input id="img-region" value=${form.DestinationRegion} onInput=${set('DestinationRegion')} /><//>
      <${Field} id="img-interval" label="Sampling interval (ms, ≥ 200)" error=${at('SamplingInterval')}>
        <input id="img-interval" type="number" value=${form.SamplingInterval} onInput=${set('SamplingInterval')} /><//>
      <${Field} id="img-selector" label="Timeline" error=${at('ImageSelectorType')}>
        <select id="img-selector" value=${form.ImageSelectorType} onChange=${set('ImageSelectorType')}>
          <option>PRODUCER_TIMESTAMP</option><option>SERVER_TIMESTAMP</option></select><//>
      <${Field} id="img-format" label="Format" error=${at('Format')}><select id="img-format" value=${form.Format} onChange=${set('Format')}>
        <option>JPEG</option><option>PNG</option></select><//>
      ${form.Format === 'JPEG' && html`<${Field} id="img-quality" label="JPEG quality (1–100, default 80)" error=${at('JPEGQuality')}>
        <input id="img-quality" type="number" value=${form.JPEGQuality} onInput=${set('JPEGQuality')} /><//>`}
      <${Field} id="img-width" label="Width (pixels, optional)" error=${at('WidthPixels')}>
        <input id="img-width" type="number" value=${form.WidthPixels} onInput=${set('WidthPixels')} /><//>
      <${Field} id="img-height" label="Height (pixels, optional)" error=${at('HeightPixels')}>
        <input id="img-height" type="number" value=${form.HeightPixels} onInput=${set('HeightPixels')} /><//>
      <div class="row"><button type="submit" id="img-save">Save</button>
        ${cfg && html`<button type="button" id="img-remove" onClick=${remove}>Remove</button>`}
        <span class="muted" role="status">${saved}</span></div>
    </form>
    ${error && !bad && html`<${ErrorBox} error=${error} />`}
    <${Command} cmd=${awsCommand('kinesisvideo', 'update-image-generation-configuration', [['stream-name', name], ['image-generation-configuration', json]])} />
    <div class="row">
      <label for="img-policy">Which fragments get images (stream tag ${policyTag})</label>
      <select id="img-policy" value=${policy} onChange=${setPolicy}>
        <option value="TAGGED_FRAGMENTS">only those the producer tags (AWS's rule)</option>
        <option value="ALL_FRAGMENTS">every fragment</option>
      </select>
    </div>
    <${Command} cmd=${awsCommand('kinesisvideo', 'tag-stream', [['stream-name', name], ['tags', `${policyTag}=${policy}`]])} />
  </section>`;
}

export function NotificationsConfig({ api, name, onChanged }) {
  const [form, setForm] = useState(null);
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState('');
  useEffect(() => {
    api.send('describeNotificationConfiguration', { StreamName: name }).then(o => {
      const c = o.NotificationConfiguration;
      setForm({ Status: c ? c.Status : 'ENABLED', Uri: c && c.DestinationConfig ? c.DestinationConfig.Uri : '', set: !!c });
    }, setError);
  }, [api, name]);
  if (!form) return html`<section class="panel"><h2>Notifications</h2><${ErrorBox} error=${error} /></section>`;
  const body = { Status: form.Status, DestinationConfig: { Uri: form.Uri } };
  const save = async e => {
    e.preventDefault();
    setError(null);
    setSaved('');
    try {
      await api.send('updateNotificationConfiguration', { StreamName: name, NotificationConfiguration: body });
      setForm({ ...form, set: true });
      setSaved('Saved.');
      onChanged();
    } catch (err) {
      setError(err);
    }
  };
  const bad = fieldOf(error, ['Uri', 'Status']);
  return html`<section class="panel" aria-labelledby="notify-h" id="notify-config">
    <h2 id="notify-h">Notifications</h2>
    <p class="muted">${form.set ? '' : 'Not configured. '}Destinations: an SNS topic ARN, https:// (webhook), nats:// or mqtt://.</p>
    <form onSubmit=${save} method="post" class="grid">
      <${Field} id="ntf-status" label="Status"><select id="ntf-status" value=${form.Status} onChange=${e => setForm({ ...form, Status: e.currentTarget.value })}>
        <option>ENABLED</option><option>DISABLED</option></select><//>
      <${Field} id="ntf-uri" label="Destination URI" error=${bad === 'Uri' ? error.detail : ''}>
        <input id="ntf-uri" value=${form.Uri} onInput=${e => setForm({ ...form, Uri: e.currentTarget.value })} spellcheck="false" autocapitalize="off" /><//>
      <div class="row"><button type="submit" id="ntf-save">Save</button><span class="muted" role="status">${saved}</span></div>
    </form>
    ${error && bad !== 'Uri' && html`<${ErrorBox} error=${error} />`}
    <${Command} cmd=${awsCommand('kinesisvideo', 'update-notification-configuration', [['stream-name', name], ['notification-configuration', JSON.stringify(body)]])} />
  </section>`;
}

export function Tags({ api, name, tags, onChanged }) {
  const [key, setKey] = useState('');
  const [value, setValue] = useState('');
  const [error, setError] = useState(null);
  const run = useCallback(async (op, input) => {
    setError(null);
    try {
      await api.send(op, { StreamName: name, ...input });
      onChanged();
      return true;
    } catch (err) {
      setError(err);
      return false;
    }
  }, [api, name, onChanged]);
  const add = async e => {
    e.preventDefault();
    if (await run('tagStream', { Tags: { [key]: value } })) { setKey(''); setValue(''); }
  };
  const entries = Object.entries(tags || {}).sort();
  return html`<section class="panel" aria-labelledby="tags-h" id="tags">
    <h2 id="tags-h">Tags</h2>
    ${entries.length === 0 && html`<p class="muted">No tags.</p>`}
    <ul class="tags">${entries.map(([k, v]) => html`<li key=${k} data-key=${k}><code>${k}</code> = <code>${v}</code>
      <button type="button" class="small" aria-label=${'Remove tag ' + k} onClick=${() => run('untagStream', { TagKeyList: [k] })}>Remove</button></li>`)}
    </ul>
    <form onSubmit=${add} method="post" class="row">
      <label for="tag-key">Key</label><input id="tag-key" value=${key} onInput=${e => setKey(e.currentTarget.value)} required />
      <label for="tag-value">Value</label><input id="tag-value" value=${value} onInput=${e => setValue(e.currentTarget.value)} />
      <button type="submit" id="tag-add">Add tag</button>
    </form>
    <${ErrorBox} error=${error} />
    <${Command} cmd=${awsCommand('kinesisvideo', 'tag-stream', [['stream-name', name], ['tags', `${key || 'KEY'}=${value || 'VALUE'}`]])} />
  </section>`;
}
