// A whole tool-calling loop through one installed @elastic/elasticsearch, printed as JSON.
//
// Usage: node chat.mjs <es9|es8> URL. Both majors have `inference.chatCompletionUnified`, which
// posts to `_inference/chat_completion/{id}/_stream` and hands back the server-sent events; the
// loop asks, reads the streamed tool call, sends the tool's result and reads the answer. It also
// asks once with `asStream`, to see the chunks arrive as a stream.
const [alias, url] = process.argv.slice(2)
if (!['es8', 'es9'].includes(alias) || !url) {
  console.error('usage: node chat.mjs <es9|es8> URL')
  process.exit(2)
}
const { Client } = await import(alias)

const ENDPOINT = {
  service: 'amazonbedrock',
  service_settings: {
    access_key: '<aws_access_key>',
    secret_key: '<aws_secret_key>',
    region: 'us-east-1',
    provider: 'anthropic',
    model: 'anthropic.claude-3-5-sonnet-20240620-v1:0'
  }
}
const TOOLS = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Get the current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }
  }
}]
const QUESTION = { role: 'user', content: 'What is the weather in Paris?' }
const TOOL_RESULT = '18 degrees and sunny'

// ES's server-sent events: each block is BOM, `event: <name>`, `data: <json or [DONE]>`.
function chunksOf (text) {
  const chunks = []
  for (const block of text.split('\n\n')) {
    if (!block) continue
    const [event, data] = block.replace(/^\uFEFF/, '').split('\n')
    if (event !== 'event: message') throw new Error(`unexpected event: ${block}`)
    const payload = data.replace(/^data: /, '')
    chunks.push(payload === '[DONE]' ? payload : JSON.parse(payload))
  }
  return chunks
}

// The streamed chunks folded back into one assistant message, as an agent loop would do.
function assemble (chunks) {
  let content = ''
  let finish = null
  let usage = null
  const calls = []
  for (const chunk of chunks) {
    if (chunk === '[DONE]') continue
    if (chunk.usage) usage = chunk.usage
    for (const choice of chunk.choices) {
      if (choice.finish_reason) finish = choice.finish_reason
      if (choice.delta.content) content += choice.delta.content
      for (const call of choice.delta.tool_calls ?? []) {
        calls[call.index] ??= { id: call.id, type: 'function', function: { name: '', arguments: '' } }
        if (call.id) calls[call.index].id = call.id
        if (call.function?.name) calls[call.index].function.name += call.function.name
        if (call.function?.arguments) calls[call.index].function.arguments += call.function.arguments
      }
    }
  }
  return { content, finish, usage, calls }
}

const client = new Client({ node: url, requestTimeout: 150_000 })
const out = {}
out.put = await client.inference.put({
  task_type: 'chat_completion',
  inference_id: 'assistant',
  inference_config: ENDPOINT
})

async function turn (messages) {
  const response = await client.inference.chatCompletionUnified(
    { inference_id: 'assistant', chat_completion_request: { messages, tools: TOOLS } },
    { meta: true }
  )
  const text = typeof response.body === 'string' ? response.body : Buffer.from(response.body).toString('utf8')
  const chunks = chunksOf(text)
  return {
    status: response.statusCode,
    product: response.headers['x-elastic-product'],
    content_type: response.headers['content-type'],
    done: chunks.at(-1) === '[DONE]',
    objects: [...new Set(chunks.filter(c => c !== '[DONE]').map(c => c.object))],
    ...assemble(chunks)
  }
}

out.ask = await turn([QUESTION])
const call = out.ask.calls[0]
out.answer = await turn([
  QUESTION,
  { role: 'assistant', content: out.ask.content, tool_calls: [call] },
  { role: 'tool', tool_call_id: call.id, content: TOOL_RESULT }
])

const streamed = await client.inference.chatCompletionUnified(
  { inference_id: 'assistant', chat_completion_request: { messages: [QUESTION] } },
  { asStream: true, meta: true }
)
let pieces = 0
const parts = []
for await (const piece of streamed.body) {
  pieces += 1
  parts.push(Buffer.from(piece))
}
out.as_stream = { pieces, ...assemble(chunksOf(Buffer.concat(parts).toString('utf8'))) }
console.log(JSON.stringify(out))
