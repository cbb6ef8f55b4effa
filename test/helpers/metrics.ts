import { spawnSync } from 'node:child_process'

/** The samples of a Prometheus text exposition: `name{labels}` (as written) → value. */
export function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    samples.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return samples
}

/** `name{a="x",b="y"}` as the registry writes it (labels in the family's order). */
export function series(name: string, labels: Record<string, string> = {}): string {
  const entries = Object.entries(labels)
  return entries.length === 0 ? name : `${name}{${entries.map(([k, v]) => `${k}="${v}"`).join(',')}}`
}

/**
 * `promtool check metrics` on the text: undefined when it passes (exit 0, nothing reported), else
 * what it said. Skips (returns 'skip') only outside CI when promtool is not installed; .ci/run
 * installs it (Debian package prometheus).
 */
export function promtoolCheck(text: string): string | undefined | 'skip' {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 })
  if (run.error !== undefined && (run.error as NodeJS.ErrnoException).code === 'ENOENT') {
    if (process.env.CI === undefined || process.env.CI === '') return 'skip'
    return 'promtool is not installed (apt-get install prometheus)'
  }
  const said = `${run.stdout ?? ''}${run.stderr ?? ''}`.trim()
  return run.status === 0 && said === '' ? undefined : `exit ${run.status}: ${said}`
}
