import { credentialKind } from '../../credentials/registry.ts'
import type { CredentialSource, SourceDeps } from '../../credentials/source.ts'
import { sourceDefinition } from '../../credentials/sources/registry.ts'
import type { Connector } from '../../model/policy.ts'
import { MaskPatterns } from '../../redact/patterns.ts'
import type { Stage } from '../pipeline.ts'

/**
 * credential: asks the connector's source for the value to attach (a static vault secret, read
 * fresh on every request so that a `secret set` takes effect at once; or a dynamic token, cached
 * and refreshed by its source). Failures are KeyvaletErrors from the source and fail closed: the
 * request is never sent without its credential. Left out of the stage list of a connector
 * without a credential.
 */
export function createCredential(sources: Sources, connector: Connector): Stage | undefined {
  const binding = connector.credential
  if (binding === undefined) return undefined
  // The compiled masks of the last value seen, reused while the value is unchanged.
  let last: { readonly value: string; readonly mask: MaskPatterns } | undefined
  return {
    name: 'credential',
    async run(ctx) {
      const source = sources.for(connector)
      const token = await source.get({ session: ctx.session, connector, signal: ctx.signal })
      if (last?.value !== token.value) {
        last = { value: token.value, mask: MaskPatterns.of(credentialKind(binding.kind).echoValues(binding, token.value)) }
      }
      ctx.credential = { label: token.label, value: token.value, mask: last.mask, token, source }
    },
  }
}

/**
 * The credential source of each connector, created on first use and kept while a configuration in
 * use names the connector (by Connector object: a reload that changes a connector gives it a new
 * object, and a new source).
 */
export class Sources {
  readonly #deps: SourceDeps
  readonly #created = new Map<Connector, CredentialSource>()

  constructor(deps: SourceDeps) {
    this.#deps = deps
  }

  for(connector: Connector): CredentialSource {
    let source = this.#created.get(connector)
    if (source === undefined) {
      const binding = connector.credential
      const definition = binding === undefined ? undefined : sourceDefinition(binding.source.type)
      if (binding === undefined || definition === undefined) throw new Error(`connector ${connector.name} has no known credential source`)
      source = definition.create(binding.source.options, this.#deps, connector)
      this.#created.set(connector, source)
    }
    return source
  }

  /** Token endpoint calls by source kind (TokenHttp counts them). */
  get tokenFetches(): ReadonlyMap<string, { readonly ok: number; readonly failed: number }> {
    return this.#deps.http.fetches
  }

  /** Closes the source of a connector no request can use any more. */
  release(connector: Connector): void {
    const source = this.#created.get(connector)
    this.#created.delete(connector)
    void Promise.resolve(source?.close?.()).catch(() => {})
  }

  async close(): Promise<void> {
    await Promise.all([...this.#created.values()].map((s) => s.close?.()))
    await this.#deps.http.close()
  }
}
