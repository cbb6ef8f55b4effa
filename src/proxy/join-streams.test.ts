import { strict as assert } from 'node:assert'
import { once } from 'node:events'
import { PassThrough, Transform } from 'node:stream'
import { test } from 'node:test'
import { joinStreams } from './join-streams.ts'

/** Resolves on 'close' (events.once would reject on the 'error' that comes first). */
const closed = (stream: PassThrough): Promise<void> => new Promise((resolve) => stream.once('close', resolve))
const upper = (): Transform => new Transform({ transform: (chunk: Buffer, _e, done) => done(null, Buffer.from(chunk.toString().toUpperCase())) })

test('what the source sends reaches the destination in order, and its end ends it', async () => {
  const source = new PassThrough()
  const destination = joinStreams(source, upper())
  const read: string[] = []
  destination.on('data', (c: Buffer) => read.push(c.toString()))
  source.write('ab')
  source.end('cd')
  await once(destination, 'end')
  assert.equal(read.join(''), 'ABCD')
})

test('a source that closes before its end (a client gone mid-upload) destroys the destination with an error', async () => {
  const source = new PassThrough()
  const destination = joinStreams(source, upper())
  destination.resume()
  source.write('ab')
  source.destroy()
  const [err] = await once(destination, 'error') as [NodeJS.ErrnoException]
  assert.equal(err.code, 'ERR_STREAM_PREMATURE_CLOSE')
  assert.equal(destination.destroyed, true)
})

test('a destination that fails (a refused body) destroys the source with its error', async () => {
  const source = new PassThrough()
  const refusing = new Transform({ transform: (_c, _e, done) => done(new Error('refused')) })
  joinStreams(source, refusing)
  refusing.on('error', () => {})
  source.write('ab')
  await closed(source)
  assert.equal(source.destroyed, true)
  assert.equal((source as unknown as { errored: Error | null }).errored?.message, 'refused')
})

test('a destination its reader destroys (the upstream request aborted) destroys the source', async () => {
  const source = new PassThrough()
  const destination = joinStreams(source, upper())
  source.write('ab')
  destination.destroy()
  await closed(source)
  assert.equal(source.destroyed, true)
})
