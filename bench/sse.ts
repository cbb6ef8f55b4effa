/**
 * Many concurrent server-sent-event streams through keyvalet's gateway, from their own process.
 * Fork it, send one SseJob; it reports over IPC:
 *   { event: 'probe', result: SseOpenResult }    when `probe` is set: that many streams on one path
 *                                                 (one connector), first events counted after waitMs, then closed
 *   { event: 'probe-closed' }                     and it waits for `{ cmd: 'open' }`
 *   { event: 'open', result: SseOpenResult }      all streams asked for are open (or the open timed out)
 * then waits for `{ cmd: 'close' }` from the runner (which samples keyvalet meanwhile), closes every
 * stream and reports
 *   { event: 'result', result: SseCloseResult }
 * Streams are opened with at most `openConcurrency` still waiting for their first event, so the
 * listener's accept backlog never overflows (SYN retries would add whole seconds).
 */

import { Agent, type Dispatcher } from 'undici'
import { Samples, type LatencySummary } from './stats.ts'

export interface SseJob {
  /** Gateway origin. */
  readonly origin: string
  readonly headers: Record<string, string>
  /** Stream i uses paths[i % paths.length]. */
  readonly paths: readonly string[]
  readonly streams: number
  readonly openConcurrency: number
  readonly openTimeoutMs: number
  readonly probe?: { readonly path: string; readonly streams: number; readonly waitMs: number }
}

export interface SseOpenResult {
  readonly asked: number
  /** Response headers received (status 200). */
  readonly opened: number
  /** First event (the upstream's `hello`) received whole. */
  readonly firstEvents: number
  readonly non200: Record<string, number>
  readonly errors: number
  readonly firstError: string | undefined
  readonly seconds: number
  /** ms from sending the request to the first event, for streams that got one. */
  readonly timeToFirstEvent: LatencySummary
}

export interface SseCloseResult {
  /** Streams that also got at least one later `tick` event while held open. */
  readonly withTick: number
  readonly closeMs: number
}

interface Stream {
  body: Dispatcher.ResponseData['body'] | undefined
  controller: AbortController
  first: boolean
  tick: boolean
}

const hr = (): number => Number(process.hrtime.bigint()) / 1e6

async function openStreams(dispatcher: Dispatcher, job: SseJob, count: number, pathOf: (i: number) => string, concurrency: number, timeoutMs: number): Promise<{ result: SseOpenResult; streams: Stream[] }> {
  const streams: Stream[] = []
  const non200: Record<string, number> = {}
  const ttfe = new Samples()
  let opened = 0
  let firstEvents = 0
  let errors = 0
  let firstError: string | undefined
  let pending = 0
  let next = 0
  const t0 = hr()
  await new Promise<void>((resolve) => {
    const deadline = setTimeout(resolve, timeoutMs)
    const settleOne = (): void => {
      pending--
      if (next < count) launch()
      else if (pending === 0) {
        clearTimeout(deadline)
        resolve()
      }
    }
    const launch = (): void => {
      const i = next++
      pending++
      const stream: Stream = { body: undefined, controller: new AbortController(), first: false, tick: false }
      streams.push(stream)
      const start = hr()
      let settled = false
      const settle = (): void => {
        if (settled) return
        settled = true
        settleOne()
      }
      dispatcher.request({ origin: job.origin, path: pathOf(i), method: 'GET', headers: job.headers, signal: stream.controller.signal }).then(({ statusCode, body }) => {
        stream.body = body
        if (statusCode !== 200) {
          non200[String(statusCode)] = (non200[String(statusCode)] ?? 0) + 1
          body.resume()
          return settle()
        }
        opened++
        let seen = ''
        body.on('data', (chunk: Buffer) => {
          if (!stream.first) {
            seen += chunk.toString('utf8')
            if (seen.includes('event: hello') && seen.includes('\n\n')) {
              stream.first = true
              firstEvents++
              ttfe.push(hr() - start)
              if (seen.includes('event: tick')) stream.tick = true
              settle()
            }
          } else if (!stream.tick && chunk.includes('event: tick')) {
            stream.tick = true
          }
        })
        body.on('error', () => {})
        body.on('end', settle)
      }, (err: unknown) => {
        if (!stream.controller.signal.aborted) {
          errors++
          firstError ??= err instanceof Error ? `${(err as { code?: string }).code ?? ''} ${err.message}` : String(err)
        }
        settle()
      })
    }
    for (let k = 0; k < Math.min(concurrency, count); k++) launch()
    if (count === 0) resolve()
  })
  return { result: { asked: count, opened, firstEvents, non200, errors, firstError, seconds: (hr() - t0) / 1000, timeToFirstEvent: ttfe.summary() }, streams }
}

async function closeAll(streams: readonly Stream[]): Promise<number> {
  const t0 = hr()
  await Promise.all(streams.map((s) => new Promise<void>((resolve) => {
    const body = s.body
    if (body === undefined || body.destroyed) {
      s.controller.abort()
      return resolve()
    }
    body.once('close', () => resolve())
    body.destroy()
    setTimeout(resolve, 5000).unref()
  })))
  return hr() - t0
}

async function main(job: SseJob): Promise<void> {
  const dispatcher = new Agent({ connections: job.streams + (job.probe?.streams ?? 0) + 100, pipelining: 1, headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: 1000 })
  if (job.probe !== undefined) {
    const probe = job.probe
    const { result, streams } = await openStreams(dispatcher, job, probe.streams, () => probe.path, probe.streams, probe.waitMs)
    process.send?.({ event: 'probe', result })
    await closeAll(streams)
    // The runner checks what the upstream still holds, then lets the main part start.
    await new Promise<void>((resolve) => {
      const onMessage = (m: { cmd?: string }): void => {
        if (m.cmd !== 'open') return
        process.off('message', onMessage)
        resolve()
      }
      process.on('message', onMessage)
      process.send?.({ event: 'probe-closed' })
    })
  }
  const { result, streams } = await openStreams(dispatcher, job, job.streams, (i) => job.paths[i % job.paths.length] as string, job.openConcurrency, job.openTimeoutMs)
  process.send?.({ event: 'open', result })
  await new Promise<void>((resolve) => {
    process.on('message', (m: { cmd?: string }) => {
      if (m.cmd === 'close') resolve()
    })
  })
  const withTick = streams.filter((s) => s.tick).length
  const closeMs = await closeAll(streams)
  const done: SseCloseResult = { withTick, closeMs }
  process.send?.({ event: 'result', result: done }, () => {
    void dispatcher.destroy().finally(() => process.exit(0))
  })
}

if (import.meta.main) {
  process.once('message', (job: SseJob) => {
    main(job).catch((err: unknown) => {
      process.send?.({ event: 'error', error: err instanceof Error ? err.stack ?? err.message : String(err) }, () => process.exit(1))
    })
  })
  process.on('disconnect', () => process.exit(0))
}
