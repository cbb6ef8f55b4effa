/** Small numeric helpers shared by the bench workers and the report. */

export interface LatencySummary {
  readonly count: number
  readonly mean: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly p999: number
  readonly max: number
}

/** A growable Float64Array of samples (ms). */
export class Samples {
  #data = new Float64Array(1 << 16)
  #n = 0

  push(v: number): void {
    if (this.#n === this.#data.length) {
      const next = new Float64Array(this.#data.length * 2)
      next.set(this.#data)
      this.#data = next
    }
    this.#data[this.#n++] = v
  }

  get count(): number {
    return this.#n
  }

  summary(): LatencySummary {
    const n = this.#n
    const sorted = this.#data.slice(0, n).sort()
    let sum = 0
    for (let i = 0; i < n; i++) sum += sorted[i] as number
    const at = (q: number): number => (n === 0 ? 0 : (sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] as number))
    return { count: n, mean: n === 0 ? 0 : sum / n, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: n === 0 ? 0 : (sorted[n - 1] as number) }
  }
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const s = [...values].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}
