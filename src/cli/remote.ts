import { AdminApiError, adminClient, type AdminClient } from '../admin/client.ts'
import { OperatorError } from '../errors.ts'
import type { Io } from './command.ts'

/** `--server URL`: for the commands that can work against a remote keyvalet's admin API. */
export const SERVER_OPTION = { server: { type: 'string' } } as const

/**
 * The typed admin client for `--server URL`, with the token from KEYVALET_ADMIN_TOKEN (never a
 * flag: other processes can read a command line). Its calls' refusals become OperatorErrors.
 */
export function remoteClient(server: string, io: Io): AdminClient {
  const { url, token } = serverOf(server, io)
  const client = adminClient({ url: url.href, token })
  return {
    call: (async (action: Parameters<AdminClient['call']>[0], ...input: unknown[]) => {
      try {
        return await (client.call as (a: unknown, ...i: unknown[]) => Promise<unknown>)(action, ...input)
      } catch (err) {
        if (err instanceof AdminApiError) throw new OperatorError(`${err.message} (${err.code}, HTTP ${err.status})`, err.requestId === undefined ? undefined : `request id ${err.requestId}`)
        throw new OperatorError(`cannot reach the admin API at ${url.origin}: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`, 'check --server and that keyvalet runs with listen.admin')
      }
    }) as AdminClient['call'],
  }
}

/** The admin token and the URL of `--server`, checked. */
function serverOf(server: string, io: Io): { url: URL; token: string } {
  const token = io.env.KEYVALET_ADMIN_TOKEN
  if (token === undefined || token === '') throw new OperatorError('--server needs an admin token in KEYVALET_ADMIN_TOKEN', 'keyvalet admin token create --name NAME --role operator (on the keyvalet host) prints one')
  let url: URL
  try {
    url = new URL(server)
  } catch {
    throw new OperatorError(`--server ${server} is not a URL`, 'e.g. --server http://127.0.0.1:8790 (listen.admin)')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OperatorError(`--server ${server} is not an http:// or https:// URL`)
  return { url, token }
}

/** A long-lived GET of the admin API (a server-sent event stream), which the typed client's JSON calls do not cover. */
export async function remoteStream(server: string, path: string, query: URLSearchParams, io: Io): Promise<Response> {
  const { url, token } = serverOf(server, io)
  try {
    return await fetch(new URL(`${path}?${query}`, url), { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } })
  } catch (err) {
    throw new OperatorError(`cannot reach the admin API at ${url.origin}: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`, 'check --server and that keyvalet runs with listen.admin')
  }
}
