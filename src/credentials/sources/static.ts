import type { SourceDefinition } from '../source.ts'

/**
 * The vault secret named by `credential.secret`, read on every request so that a `secret set`
 * takes effect on the next one (the vault skips decryption while the record is unchanged).
 */
export const staticSecret: SourceDefinition<{ readonly secret: string }> = {
  type: 'static',
  summary: 'the vault secret named by `secret` (the default)',
  block: undefined,
  needsSecret: true,
  compile: (_raw, binding) => ({ secret: binding.secret ?? '' }),
  create({ secret }, { vault }) {
    return {
      async get() {
        return { value: (await vault.open(secret)).toString('utf8'), label: secret }
      },
    }
  },
}
