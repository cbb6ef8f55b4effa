import { readFileSync } from 'node:fs'
import { loadConfig } from '../../config/load.ts'
import { KeyvaletError, OperatorError } from '../../errors.ts'
import { explain as explainRequest } from '../../explain/explain.ts'
import { explanationText } from '../../explain/text.ts'
import { parseGrant } from '../../policy/grant.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command } from '../command.ts'

const help = `usage: keyvalet explain --grant CONNECTOR:SEVERITY[:RULE,...] [--grant ...] METHOD URL
                        [--header 'Name: value' ...] [--body FILE] [--json] [--config FILE]

  What the configuration decides for one request under a grant, step by step: the connector the
  URL maps to (a gateway path /connector/..., or the absolute URL a forward-proxy request names),
  each rule of it in order (it fits, or the check it fails: path, method, query, header, body,
  grant, severity), the severity needed and granted, report mode, and the decision with the error
  code the sandbox would get; at an MCP endpoint, each JSON-RPC message of the body. Decided by
  the data plane's own decision functions; nothing is sent, no vault or store is opened. It also
  names the checks it does not evaluate (egress addresses, budgets, an MCP server's trusted
  annotations). The admin API's POST /v1/explain gives the same answer.

  --grant G      the task's grant (repeatable), as session create takes it
  --header H     a request header 'Name: value' (repeatable)
  --body FILE    the request body, read from FILE (- for standard input)
  --json         the explanation as JSON (the admin API's answer)`

export const explain: Command = {
  name: 'explain',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, {
      ...CONFIG_OPTION, grant: { type: 'string', multiple: true }, header: { type: 'string', multiple: true }, body: { type: 'string' }, json: { type: 'boolean' },
    }, help)
    const [methodArg, url, ...extra] = positionals
    if (methodArg === undefined || url === undefined || extra.length > 0) throw new OperatorError('expected METHOD and URL', help.split('\n')[0])
    const method = methodArg.toUpperCase()
    if (!/^[A-Z]{1,16}$/.test(method)) throw new OperatorError(`not an HTTP method: ${JSON.stringify(methodArg)}`, 'e.g. GET, POST, DELETE')
    if (values.grant === undefined) throw new OperatorError('--grant is required', 'e.g. --grant github:read')
    const grants = values.grant.map(parseGrant)
    const headers: Record<string, string> = {}
    for (const h of values.header ?? []) {
      const at = h.indexOf(':')
      if (at <= 0) throw new OperatorError(`--header: expected 'Name: value', got ${JSON.stringify(h)}`)
      headers[h.slice(0, at).trim().toLowerCase()] = h.slice(at + 1).trim()
    }
    const body = values.body === undefined ? undefined : readBody(values.body)
    const config = loadConfig(configPath(values.config, io))
    let explanation
    try {
      explanation = explainRequest(config.policy, { grants, method, url, headers, body }, config.budgets)
    } catch (err) {
      if (err instanceof KeyvaletError) throw new OperatorError(err.message)
      throw err
    }
    write(io.stdout, values.json === true ? JSON.stringify({ ...explanation, config_version: config.version }) : explanationText(explanation, method, url))
    return 0
  },
}

function readBody(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8')
  } catch (err) {
    throw new OperatorError(`--body: cannot read ${JSON.stringify(file)}: ${err instanceof Error ? err.message : String(err)}`)
  }
}
