/**
 * Preload (`--import`): allocates for a while the way a busy proxy does (many short-lived objects,
 * a window of them surviving), which grows V8's young generation as far as its limit allows, then
 * prints `young-generation-mib=N` (the new space's size) on stderr. The process then goes on.
 */
import v8 from 'node:v8'

let window: { n: number; s: string }[] = []
for (let i = 0; i < 3_000_000; i++) {
  window.push({ n: i, s: `x${i}` })
  if (window.length > 200_000) window = []
}
const newSpace = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')
process.stderr.write(`young-generation-mib=${((newSpace?.space_size ?? 0) / 1024 / 1024).toFixed(0)}\n`)
