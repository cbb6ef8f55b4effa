/**
 * Repeated measurements: a single closed-loop run on this machine varies by ±25 % from one run to
 * the next (the machine's other work, CPU frequency), so a phase measures every target in each of
 * several rounds, interleaved (a drift hits every target alike), and reports the run of median
 * `key` per target, with every round's figure beside it.
 */

export interface Rounds<Name, Run> {
  /** Per target, the run whose `key` is the median of its rounds (the lower middle for an even count). */
  readonly median: Map<Name, Run>
  /** Per target, every round's run, in order. */
  readonly all: Map<Name, Run[]>
}

export async function inRounds<Name, T extends { readonly name: Name }, Run>(
  rounds: number, targets: readonly T[], measure: (target: T, round: number) => Promise<Run>, key: (run: Run) => number,
): Promise<Rounds<Name, Run>> {
  const all = new Map<Name, Run[]>()
  for (let round = 0; round < rounds; round++) {
    for (const t of targets) {
      const run = await measure(t, round)
      all.set(t.name, [...(all.get(t.name) ?? []), run])
    }
  }
  const median = new Map<Name, Run>()
  for (const [name, runs] of all) {
    const sorted = [...runs].sort((a, b) => key(a) - key(b))
    const mid = sorted[(sorted.length - 1) >> 1]
    if (mid !== undefined) median.set(name, mid)
  }
  return { median, all }
}
