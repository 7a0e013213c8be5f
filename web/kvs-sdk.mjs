// What the AWS sample viewer does before it plays, with the AWS SDK for JavaScript v3:
// GetDataEndpoint, then GetHLSStreamingSessionURL or GetDASHStreamingSessionURL at that endpoint,
// signed with static credentials. internal/browsertest bundles this file with esbuild (into
// node_modules/.kvsd/, never committed) for web/player.js; the page is served from another
// origin than kvsd, so every call is a CORS request with the SDK's real headers.
import { KinesisVideoClient, GetDataEndpointCommand } from '@aws-sdk/client-kinesis-video';
import {
  KinesisVideoArchivedMediaClient, GetHLSStreamingSessionURLCommand, GetDASHStreamingSessionURLCommand,
} from '@aws-sdk/client-kinesis-video-archived-media';

// dates turns the numbers of fields named *Timestamp (epoch milliseconds) into the Dates the SDK takes.
function dates(v) {
  if (Array.isArray(v)) return v.map(dates);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, k.endsWith('Timestamp') && typeof x === 'number' ? new Date(x) : dates(x)]));
}

// kvsdSessionURL returns the session URL; input is the Get*StreamingSessionURL input, StreamName
// included, with timestamps in epoch milliseconds.
window.kvsdSessionURL = async function ({ endpoint, region, accessKeyId, secretAccessKey, protocol, input }) {
  input = dates(input);
  const credentials = { accessKeyId, secretAccessKey };
  const dash = protocol === 'DASH';
  const kv = new KinesisVideoClient({ region, endpoint, credentials, maxAttempts: 1 });
  const { DataEndpoint } = await kv.send(new GetDataEndpointCommand({
    StreamName: input.StreamName, APIName: dash ? 'GET_DASH_STREAMING_SESSION_URL' : 'GET_HLS_STREAMING_SESSION_URL',
  }));
  const media = new KinesisVideoArchivedMediaClient({ region, endpoint: DataEndpoint, credentials, maxAttempts: 1 });
  if (dash) {
    const out = await media.send(new GetDASHStreamingSessionURLCommand(input));
    return out.DASHStreamingSessionURL;
  }
  const out = await media.send(new GetHLSStreamingSessionURLCommand(input));
  return out.HLSStreamingSessionURL;
};
