/** A field path: map keys and sequence indexes, from the top of the configuration document. */
export type FieldPath = readonly (string | number)[]

/** A JSON pointer (from a schema validator) as a FieldPath, using the value to tell indexes from keys. */
export function pointerToPath(pointer: string, value: unknown): FieldPath {
  if (pointer === '') return []
  const out: (string | number)[] = []
  let current = value
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~')
    if (Array.isArray(current)) {
      out.push(Number(key))
      current = current[Number(key)]
    } else {
      out.push(key)
      current = typeof current === 'object' && current !== null ? (current as Record<string, unknown>)[key] : undefined
    }
  }
  return out
}
