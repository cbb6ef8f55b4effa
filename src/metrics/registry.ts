/**
 * A small metrics registry and its Prometheus text exposition (format 0.0.4): counters, gauges
 * and histograms in families with fixed label names.
 *
 * Cost contract: a series (one set of label values) is resolved once — at compile time, or the
 * first time a bounded label value is seen — and kept by the caller; the hot path then only does
 * `inc()` (an addition) or `observe()` (a search over the bucket bounds and two additions). Label
 * strings are built and escaped when a series is created, never per observation. Values that a
 * component already counts itself are read when scraped (`onCollect`), at no cost per request.
 */

export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

export class Counter {
  value = 0
  inc(by = 1): void {
    this.value += by
  }
}

export class Gauge {
  value = 0
  set(value: number): void {
    this.value = value
  }
  inc(by = 1): void {
    this.value += by
  }
  dec(by = 1): void {
    this.value -= by
  }
}

/** Buckets are upper bounds (inclusive, as Prometheus's `le`), ascending; +Inf is implied. */
export class Histogram {
  readonly bounds: Float64Array
  /** Per bucket, not cumulative; the last one is +Inf. */
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor(bounds: readonly number[]) {
    this.bounds = Float64Array.from(bounds)
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(value: number): void {
    const bounds = this.bounds
    // Binary search for the first bound >= value.
    let lo = 0
    let hi = bounds.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((bounds[mid] as number) < value) lo = mid + 1
      else hi = mid
    }
    this.counts[lo]! += 1
    this.sum += value
    this.count += 1
  }
}

type Metric = Counter | Gauge | Histogram
type Kind = 'counter' | 'gauge' | 'histogram'

interface Series<M extends Metric> {
  /** `{a="x",b="y"}` or '' without labels, escaped once. */
  readonly labels: string
  readonly metric: M
}

/** Metric and label names as Prometheus accepts them. */
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

/** A metric family: one name, help text, type and label names; its series by label values. */
export class Family<M extends Metric> {
  readonly name: string
  readonly help: string
  readonly kind: Kind
  readonly labelNames: readonly string[]
  readonly #create: () => M
  readonly #series = new Map<string, Series<M>>()

  constructor(name: string, help: string, kind: Kind, labelNames: readonly string[], create: () => M) {
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${name}`)
    for (const label of labelNames) if (!LABEL_NAME.test(label) || label.startsWith('__') || label === 'le') throw new Error(`invalid label name ${label}`)
    this.name = name
    this.help = help
    this.kind = kind
    this.labelNames = labelNames
    this.#create = create
  }

  /** The series for these label values (one per label name, in order), created on first use: keep it. */
  labels(...values: string[]): M {
    if (values.length !== this.labelNames.length) throw new Error(`${this.name} takes ${this.labelNames.length} label values`)
    const key = values.join('\u0000')
    let series = this.#series.get(key)
    if (series === undefined) {
      const labels = values.length === 0 ? '' : `{${values.map((v, i) => `${this.labelNames[i] as string}="${escapeLabelValue(v)}"`).join(',')}}`
      series = { labels, metric: this.#create() }
      this.#series.set(key, series)
    }
    return series.metric
  }

  /** Number of series created. */
  get size(): number {
    return this.#series.size
  }

  write(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.kind}`)
    for (const { labels, metric } of this.#series.values()) {
      if (metric instanceof Histogram) writeHistogram(out, this.name, labels, metric)
      else out.push(`${this.name}${labels} ${formatValue(metric.value)}`)
    }
  }
}

export class Registry {
  readonly #families: Family<Metric>[] = []
  readonly #names = new Set<string>()
  readonly #collectors: (() => void | Promise<void>)[] = []

  counter(name: string, help: string, labelNames: readonly string[] = []): Family<Counter> {
    if (!name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`)
    return this.#add(new Family(name, help, 'counter', labelNames, () => new Counter()))
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Family<Gauge> {
    return this.#add(new Family(name, help, 'gauge', labelNames, () => new Gauge()))
  }

  histogram(name: string, help: string, bounds: readonly number[], labelNames: readonly string[] = []): Family<Histogram> {
    for (let i = 1; i < bounds.length; i++) if (!((bounds[i] as number) > (bounds[i - 1] as number))) throw new Error(`${name}: bucket bounds must ascend`)
    return this.#add(new Family(name, help, 'histogram', labelNames, () => new Histogram(bounds)))
  }

  /** Runs before each exposition: sets gauges (and counters a component keeps itself) from their sources. */
  onCollect(collect: () => void | Promise<void>): void {
    this.#collectors.push(collect)
  }

  /** The text exposition of every family, after the collectors ran. A failing collector leaves its values as they were. */
  async expose(): Promise<string> {
    await Promise.all(this.#collectors.map(async (collect) => {
      try {
        await collect()
      } catch {
        // A source that cannot be read now (e.g. a store busy) keeps its last value.
      }
    }))
    const out: string[] = []
    for (const family of this.#families) family.write(out)
    return `${out.join('\n')}\n`
  }

  #add<M extends Metric>(family: Family<M>): Family<M> {
    if (this.#names.has(family.name)) throw new Error(`metric ${family.name} registered twice`)
    this.#names.add(family.name)
    this.#families.push(family as unknown as Family<Metric>)
    return family
  }
}

function writeHistogram(out: string[], name: string, labels: string, h: Histogram): void {
  // `le` goes last inside the braces of the series' own labels.
  const prefix = labels === '' ? '{' : `${labels.slice(0, -1)},`
  let cumulative = 0
  for (let i = 0; i < h.bounds.length; i++) {
    cumulative += h.counts[i] as number
    out.push(`${name}_bucket${prefix}le="${formatValue(h.bounds[i] as number)}"} ${formatValue(cumulative)}`)
  }
  out.push(`${name}_bucket${prefix}le="+Inf"} ${formatValue(h.count)}`, `${name}_sum${labels} ${formatValue(h.sum)}`, `${name}_count${labels} ${formatValue(h.count)}`)
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Number.POSITIVE_INFINITY) return '+Inf'
  if (v === Number.NEGATIVE_INFINITY) return '-Inf'
  return String(v)
}

/** Label values: backslash, double quote and line feed escaped (the exposition format's rule). */
export function escapeLabelValue(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))
}

function escapeHelp(v: string): string {
  return v.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'))
}
