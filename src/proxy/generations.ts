import type { AssertionKeys } from '../assertion/keys.ts'
import { canonicalJson } from '../audit/canonical-json.ts'
import type { Config } from '../config/load.ts'
import type { Connector } from '../model/policy.ts'
import type { Composition } from './compose.ts'

/** One configuration in force, compiled into what serves it. */
export interface Generation {
  readonly config: Config
  readonly version: string
  readonly composition: Composition
  /** The keys whose JWKS is published: only when some connector signs assertions. */
  readonly jwks: AssertionKeys | undefined
  /** host[:port] of the https connectors, whose CONNECT the forward proxy intercepts. */
  readonly intercepted: ReadonlySet<string>
}

export interface GenerationParts {
  readonly compose: (config: Config) => Composition
  readonly assertionKeys: AssertionKeys
  /** Lets go of what was built for a connector no configuration in use names any more (its keep-alive pool, its token cache). */
  readonly release: (connector: Connector) => void
}

interface Entry {
  readonly generation: Generation
  /** Requests under way that started under it. */
  active: number
}

/**
 * The configurations the proxy serves under: the current one, which every new request takes once,
 * when it starts (`enter`), and the earlier ones that requests still in flight started under. A
 * request finishes under the generation it entered, whatever reloads happen meanwhile.
 *
 * A connector whose configuration (its block and the CA file it reads) did not change keeps its
 * Connector object across a reload, so its keep-alive pool and cached tokens stay. What was built
 * for a connector that changed or went away is released once no request of an earlier generation
 * that names it is left.
 */
export class Generations {
  readonly #parts: GenerationParts
  #current: Entry
  readonly #draining = new Set<Entry>()

  constructor(config: Config, parts: GenerationParts) {
    this.#parts = parts
    this.#current = { generation: this.#build(config), active: 0 }
  }

  get current(): Generation {
    return this.#current.generation
  }

  /** A request starts: the generation it runs under, and `leave`, to call once (when it is over). */
  enter(): { readonly generation: Generation; leave(): void } {
    const entry = this.#current
    entry.active++
    let left = false
    return {
      generation: entry.generation,
      leave: () => {
        if (left) return
        left = true
        entry.active--
        if (entry !== this.#current && entry.active === 0) this.#retire(entry)
      },
    }
  }

  /** Puts `next` in force for every request that starts from now on; throws (changing nothing) if it cannot be compiled. */
  apply(next: Config): Generation {
    const previous = this.#current
    const connectors = new Map<string, Connector>()
    for (const [name, connector] of next.policy.connectors) {
      const before = previous.generation.config.policy.connectors.get(name)
      connectors.set(name, before !== undefined && sameConnector(previous.generation.config, before, next, connector) ? before : connector)
    }
    const generation = this.#build({ ...next, policy: { connectors } })
    this.#current = { generation, active: 0 }
    if (previous.active === 0) this.#retire(previous)
    else this.#draining.add(previous)
    return generation
  }

  #build(config: Config): Generation {
    const connectors = [...config.policy.connectors.values()]
    return {
      config,
      version: config.version,
      composition: this.#parts.compose(config),
      jwks: connectors.some((c) => c.assertion !== undefined) ? this.#parts.assertionKeys : undefined,
      intercepted: new Set(connectors.filter((c) => c.upstream.protocol === 'https:').map((c) => c.upstream.host)),
    }
  }

  #retire(entry: Entry): void {
    this.#draining.delete(entry)
    const inUse = new Set<Connector>()
    for (const live of [this.#current, ...this.#draining]) for (const c of live.generation.config.policy.connectors.values()) inUse.add(c)
    for (const connector of entry.generation.config.policy.connectors.values()) {
      if (!inUse.has(connector)) this.#parts.release(connector)
    }
  }
}

/** Whether a connector is configured exactly as before: its block (defaults filled in) and the CA it read. */
function sameConnector(before: Config, old: Connector, after: Config, next: Connector): boolean {
  const block = (config: Config, name: string): string => canonicalJson(config.effective.connectors[name] ?? null)
  return old.ca === next.ca && block(before, old.name) === block(after, next.name)
}
