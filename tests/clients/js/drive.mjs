// Drive one installed @elastic/elasticsearch through every `inference` call and print what a
// user sees.
//
// Usage: node drive.mjs <es9|es8> URL. The alias picks the client major (see package.json). Each
// step prints either {"ok": body, ...} or {"error": {class, status, statusCode, message, body}, ...}
// with the status, X-Elastic-Product and Content-Type of the response it came from. Errors a user
// would not expect from a step (connection errors, timeouts, bad JSON) end the run non-zero.
import { readFileSync } from 'node:fs'

const [alias, url] = process.argv.slice(2)
if (!['es8', 'es9'].includes(alias) || !url) {
  console.error('usage: node drive.mjs <es9|es8> URL')
  process.exit(2)
}
const { Client, errors } = await import(alias)
const { version } = JSON.parse(
  readFileSync(new URL(`./node_modules/${alias}/package.json`, import.meta.url), 'utf8')
)

// Above esproxy's own 120 s completion timeout, so its error reaches the caller first.
const REQUEST_TIMEOUT_MS = 150_000
const BEDROCK = {
  access_key: '<aws_access_key>',
  secret_key: '<aws_secret_key>',
  region: 'us-east-1',
  provider: 'amazontitan'
}
const EMBEDDINGS = {
  service: 'amazonbedrock',
  service_settings: { ...BEDROCK, model: 'amazon.titan-embed-text-v2:0' }
}
const COMPLETION = {
  service: 'amazonbedrock',
  service_settings: { ...BEDROCK, model: 'amazon.titan-text-premier-v1:0' }
}
// The second key pair the test's emulator accepts.
const ROTATED_KEYS = { access_key: '<rotated_access_key>', secret_key: '<rotated_secret_key>' }
const COMPAT_7 = 'application/vnd.elasticsearch+json; compatible-with=7'
const META = { meta: true }

// Sniffing stays off (the default): the proxy must remain the only node the client uses.
const client = (options = {}) =>
  new Client({ node: url, requestTimeout: REQUEST_TIMEOUT_MS, ...options })

// Vectors become their lengths: the output stays readable and the shape stays checkable.
function shrink (body) {
  if (Array.isArray(body)) return body.map(shrink)
  if (body === null || typeof body !== 'object') return body
  return Object.fromEntries(
    Object.entries(body).map(([key, value]) =>
      [key, key === 'embedding' && Array.isArray(value) ? value.length : shrink(value)])
  )
}

function headersOf (statusCode, headers = {}) {
  return {
    status: statusCode,
    product: headers['x-elastic-product'] ?? null,
    content_type: headers['content-type'] ?? null,
    opaque_id: headers['x-opaque-id'] ?? null
  }
}

// An asStream body: chunks as undici hands them over, and their text.
async function drain (body) {
  const chunks = []
  for await (const chunk of body) chunks.push(Buffer.from(chunk))
  return { chunks: chunks.length, text: Buffer.concat(chunks).toString('utf8') }
}

const steps = {}
async function run (name, call) {
  let result
  try {
    result = await call()
  } catch (error) {
    if (!(error instanceof errors.ResponseError || error instanceof errors.ProductNotSupportedError)) {
      throw error
    }
    steps[name] = {
      error: {
        class: error.name,
        status: error.meta?.statusCode ?? null,
        statusCode: error.statusCode ?? null,
        message: error.message,
        body: error.body ?? null
      },
      ...headersOf(error.meta?.statusCode ?? null, error.meta?.headers)
    }
    return
  }
  const body = typeof result.body?.[Symbol.asyncIterator] === 'function'
    ? await drain(result.body)
    : shrink(result.body)
  steps[name] = { ok: body, ...headersOf(result.statusCode, result.headers) }
}

const es = client()
const inference = es.inference
// JS checks X-Elastic-Product on every 2xx, so any step that succeeds has passed the check.
await run('ping', () => es.ping({}, META))
await run('info', () => es.info({}, META))
await run('get_empty', () => inference.get({}, META))

await run('put', () => inference.put(
  { task_type: 'text_embedding', inference_id: 'embed', inference_config: EMBEDDINGS }, META))
await run('put_amazonbedrock', () => inference.putAmazonbedrock({
  task_type: 'completion',
  amazonbedrock_inference_id: 'chat',
  service: 'amazonbedrock',
  service_settings: COMPLETION.service_settings,
  task_settings: { max_new_tokens: 64 }
}, META))
await run('put_exists', () => inference.put(
  { task_type: 'text_embedding', inference_id: 'embed', inference_config: EMBEDDINGS }, META))
const bad = { ...COMPLETION, task_settings: { temperature: 1 } }
await run('put_bad_settings', () => inference.put(
  { task_type: 'completion', inference_id: 'bad', inference_config: bad }, META))
await run('put_unsupported_task', () => inference.put(
  { task_type: 'rerank', inference_id: 'bad', inference_config: COMPLETION }, META))

await run('get_all', () => inference.get({}, META))
await run('get_one', () => inference.get({ inference_id: 'embed' }, META))
await run('get_task', () => inference.get({ task_type: 'completion' }, META))
await run('head_endpoint', () =>
  es.transport.request({ method: 'HEAD', path: '/_inference/embed' }, META))
await run('head_missing', () =>
  es.transport.request({ method: 'HEAD', path: '/_inference/missing' }, META))

await run('text_embedding', () =>
  inference.textEmbedding({ inference_id: 'embed', input: ['a', 'b', 'c'] }, META))
await run('inference', () => inference.inference(
  { task_type: 'text_embedding', inference_id: 'embed', input: 'one' }, META))
await run('completion', () =>
  inference.completion({ inference_id: 'chat', input: 'What is Elastic?' }, META))
await run('infer_wrong_task_type', () =>
  inference.textEmbedding({ inference_id: 'chat', input: 'x' }, META))
// The client's own request-id option, on an answer and on an error.
await run('completion_opaque_id', () => inference.completion(
  { inference_id: 'chat', input: 'x' }, { ...META, opaqueId: 'trace-ok-1' }))
await run('error_opaque_id', () => inference.textEmbedding(
  { inference_id: 'chat', input: 'x' }, { ...META, opaqueId: 'trace-error-2' }))

// Buffered, streamCompletion resolves to the SSE text; with asStream, to the body as it arrives,
// and without any status check (an error comes back as a stream too).
const stream = (id, options = {}) =>
  inference.streamCompletion({ inference_id: id, input: 'tell me a story' }, { ...META, ...options })
await run('stream', () => stream('chat'))
await run('stream_missing', () => stream('missing'))
await run('stream_as_stream', () => stream('chat', { asStream: true }))
await run('stream_missing_as_stream', () => stream('missing', { asStream: true }))

const update = (id, taskType, config) =>
  inference.update({ inference_id: id, task_type: taskType, inference_config: config }, META)
const rate = { service_settings: { rate_limit: { requests_per_minute: 600 } } }
await run('update_rate_limit', () => update('embed', 'text_embedding', rate))
await run('update_keys', () =>
  update('embed', 'text_embedding', { service_settings: ROTATED_KEYS }))
await run('update_half_pair', () => update('embed', 'text_embedding',
  { service_settings: { access_key: ROTATED_KEYS.access_key } }))
await run('update_wrong_task_type', () => update('embed', 'completion', rate))
await run('text_embedding_after_update', () =>
  inference.textEmbedding({ inference_id: 'embed', input: 'rotated' }, META))
await run('get_after_update', () => inference.get({ inference_id: 'embed' }, META))

// Headers given on the request replace the client's compat-9/8 defaults.
await run('compat7', () => es.transport.request(
  { method: 'POST', path: '/_inference/embed', body: { input: 'seven' } },
  { ...META, headers: { accept: COMPAT_7, 'content-type': COMPAT_7 } }))

const zipped = client({ compression: true }).inference
await run('gzip_put', () => zipped.put(
  { task_type: 'text_embedding', inference_id: 'zipped', inference_config: EMBEDDINGS }, META))
await run('gzip_text_embedding', () =>
  zipped.textEmbedding({ inference_id: 'zipped', input: ['gzip', 'body'] }, META))

await run('delete', () => inference.delete({ inference_id: 'chat' }, META))
await run('get_deleted', () => inference.get({ inference_id: 'chat' }, META))
await run('delete_missing', () => inference.delete({ inference_id: 'chat' }, META))
await run('completion_missing', () =>
  inference.completion({ inference_id: 'chat', input: 'x' }, META))
// Sniffing replaces the client's node list with the cluster's publish addresses; esproxy
// rewrites them to its own, so a sniffing client must still have only the proxy.
await run('sniff_on_start', async () => {
  const sniffer = client({ sniffOnStart: true })
  const error = await new Promise(resolve => sniffer.diagnostic.once('sniff', resolve))
  const nodes = sniffer.connectionPool.connections.map(c => c.url.host).sort()
  return { body: { nodes, error: error?.name ?? null }, statusCode: null }
})
// Not an inference call: esproxy forwards it, and a HEAD 404 must stay a 404 (false).
await run('indices_exists', () => es.indices.exists({ index: 'no-such-index' }, META))
await run('forwarded_opaque_id', () => es.indices.exists(
  { index: 'no-such-index' }, { ...META, opaqueId: 'trace-forward-3' }))

console.log(JSON.stringify({ client: `@elastic/elasticsearch ${version}`, steps }, null, 1))
