import type { SourceDefinition } from '../source.ts'
import { githubApp } from './github-app.ts'
import { oauthClient } from './oauth-client.ts'
import { oauthUser } from './oauth-user.ts'
import { staticSecret } from './static.ts'

/** Every credential source keyvalet knows: one line per source. */
export const SOURCES: readonly SourceDefinition<never>[] = [staticSecret, oauthUser, oauthClient, githubApp] as SourceDefinition<never>[]

export function sourceDefinition(type: string): SourceDefinition<unknown> | undefined {
  return SOURCES.find((s) => s.type === type) as SourceDefinition<unknown> | undefined
}
