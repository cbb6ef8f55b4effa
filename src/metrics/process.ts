import { readdirSync, readFileSync } from 'node:fs'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { Registry } from './registry.ts'

/**
 * The process's own metrics, read when scraped (the names the usual Prometheus clients use): CPU,
 * resident memory, start time, open and maximum file descriptors (Linux /proc), the V8 heap, and
 * the event loop's delay since the previous scrape (sampled every 20 ms). Returns the stop for
 * the event-loop sampler.
 */
export function processMetrics(registry: Registry): () => void {
  const cpuUser = registry.counter('process_cpu_user_seconds_total', 'User CPU time spent, in seconds.').labels()
  const cpuSystem = registry.counter('process_cpu_system_seconds_total', 'System CPU time spent, in seconds.').labels()
  const cpu = registry.counter('process_cpu_seconds_total', 'User and system CPU time spent, in seconds.').labels()
  const rss = registry.gauge('process_resident_memory_bytes', 'Resident memory size, in bytes.').labels()
  const start = registry.gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch, in seconds.').labels()
  const openFds = registry.gauge('process_open_fds', 'Open file descriptors.').labels()
  const maxFds = registry.gauge('process_max_fds', 'The most file descriptors the process may open (soft limit).').labels()
  const heapUsed = registry.gauge('nodejs_heap_size_used_bytes', 'V8 heap in use, in bytes.').labels()
  const heapTotal = registry.gauge('nodejs_heap_size_total_bytes', 'V8 heap allocated, in bytes.').labels()
  const external = registry.gauge('nodejs_external_memory_bytes', 'Memory of C++ objects bound to JavaScript objects (buffers included), in bytes.').labels()
  const lag = registry.gauge('nodejs_eventloop_lag_seconds', 'Event loop delay since the previous scrape, by statistic (mean, p99, max).', ['stat'])
  const lagMean = lag.labels('mean')
  const lagP99 = lag.labels('p99')
  const lagMax = lag.labels('max')

  start.set(Math.round((Date.now() - performance.now()) / 1000))
  const delay = monitorEventLoopDelay({ resolution: 20 })
  delay.enable()

  registry.onCollect(() => {
    const usage = process.cpuUsage()
    cpuUser.value = usage.user / 1e6
    cpuSystem.value = usage.system / 1e6
    cpu.value = (usage.user + usage.system) / 1e6
    const memory = process.memoryUsage()
    rss.set(memory.rss)
    heapUsed.set(memory.heapUsed)
    heapTotal.set(memory.heapTotal)
    external.set(memory.external)
    const fds = openFileDescriptors()
    if (fds !== undefined) openFds.set(fds)
    const limit = maxFileDescriptors()
    if (limit !== undefined) maxFds.set(limit)
    if (delay.count > 0) {
      lagMean.set(delay.mean / 1e9)
      lagP99.set(delay.percentile(99) / 1e9)
      lagMax.set(delay.max / 1e9)
    }
    delay.reset()
  })
  return () => delay.disable()
}

function openFileDescriptors(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length
  } catch {
    return undefined
  }
}

function maxFileDescriptors(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    return m === null ? undefined : Number(m[1])
  } catch {
    return undefined
  }
}
