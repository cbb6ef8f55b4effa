import * as S from 'typebox/schema'
import { parseDuration } from '../duration.ts'
import { OperatorError } from '../errors.ts'
import { checkGrantsAgainstPolicy, parseGrant } from '../policy/grant.ts'
import type { Policy } from '../model/policy.ts'
import type { CreateSessionOptions } from './sessions.ts'

/**
 * The options a session is created with, declared once: `keyvalet session create` and `keyvalet
 * run` take them as flags (SESSION_FLAGS), an API as a JSON body (SESSION_REQUEST_SCHEMA), and
 * both read them with `readSessionOptions`, so the rules and the messages are the same. A new
 * option is one entry here and its line in `readSessionOptions`.
 */
export const SESSION_OPTIONS = {
  agent: { description: 'The agent acting in the session.', required: true },
  user: { description: 'The user the agent acts for.', required: true },
  workspace: { description: 'The workspace (team, project) the session belongs to.', required: true },
  task: { description: 'The task id; default: a random tsk_… id.' },
  grant: { description: "What the session may do: connector:severity or connector:severity:rule1,rule2 (e.g. github:read); +approval (or +approval=5m, the longest wait) after it: every request it allows waits for a person's yes (docs/approvals.md). At least one.", required: true, multiple: true },
  ttl: { description: 'How long the task key lives: a whole number and a unit (90s, 30m, 1h, 2d).', default: '1h' },
  budget: { description: 'The most requests the session may have forwarded (a whole number); the next is refused 429 budget_exhausted. Default: none beyond the configured budgets.' },
} as const satisfies Record<string, { readonly description: string; readonly required?: true; readonly multiple?: true; readonly default?: string }>

type Option = keyof typeof SESSION_OPTIONS
type IsList<K extends Option> = (typeof SESSION_OPTIONS)[K] extends { multiple: true } ? true : false

/** The options as given, before they are read: text, and a list for those that repeat. */
export type SessionOptionValues = { readonly [K in Option]?: IsList<K> extends true ? readonly string[] : string }

/** For node:util parseArgs (cli/args.ts `parse`). */
export const SESSION_FLAGS = Object.fromEntries(
  Object.entries(SESSION_OPTIONS).map(([name, o]) => [name, 'multiple' in o ? { type: 'string', multiple: true } : { type: 'string' }]),
) as { readonly [K in Option]: IsList<K> extends true ? { type: 'string'; multiple: true } : { type: 'string' } }

/**
 * The same options as a JSON body: only the shape (field names and types) is checked here, so
 * that every value then gets the messages of `readSessionOptions`.
 */
export const SESSION_REQUEST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(Object.entries(SESSION_OPTIONS).map(([name, o]) => [
    name,
    'multiple' in o ? { type: 'array', items: { type: 'string' }, description: o.description } : { type: 'string', description: o.description },
  ])),
} as const

/** How a message names an option: `--agent` on the command line, `agent` in a JSON body. */
export type Spelling = (option: Option) => string
export const FLAG_SPELLING: Spelling = (option) => `--${option}`
export const FIELD_SPELLING: Spelling = (option) => option

/**
 * Session options as given → what Sessions.create takes, or an OperatorError that names the
 * option as the caller wrote it. Grants must fit `policy`; identifiers and the ttl's bounds are
 * checked by Sessions.create, for every caller.
 */
export function readSessionOptions(values: SessionOptionValues, policy: Policy, spell: Spelling = FLAG_SPELLING): CreateSessionOptions {
  const grants = (values.grant ?? []).map(parseGrant)
  if (grants.length === 0) throw new OperatorError(`a session needs at least one ${spell('grant')}`, `e.g. ${spell('grant')} github:read`)
  const problems = checkGrantsAgainstPolicy(grants, policy)
  if (problems.length > 0) throw new OperatorError(`the grant does not fit the configuration:\n  ${problems.join('\n  ')}`)
  const required = (option: Option, value: string | undefined): string => {
    if (value === undefined || value === '') throw new OperatorError(`${spell(option)} is required`)
    return value
  }
  return {
    agent: required('agent', values.agent), user: required('user', values.user), workspace: required('workspace', values.workspace),
    ...(values.task === undefined ? {} : { task: values.task }), grants, ttlMs: parseDuration(values.ttl ?? SESSION_OPTIONS.ttl.default),
    ...(values.budget === undefined ? {} : { budget: readBudget(values.budget, spell) }),
  }
}

function readBudget(text: string, spell: Spelling): number {
  const budget = /^[0-9]{1,15}$/.test(text) ? Number(text) : Number.NaN
  if (!(budget >= 1)) throw new OperatorError(`${spell('budget')} must be a whole number of requests, at least 1`, `e.g. ${spell('budget')} 100`)
  return budget
}

let requestValidator: S.Validator | undefined

/** A JSON body (an API's session request) → what Sessions.create takes, with the same rules and messages as the flags. */
export function readSessionRequest(body: unknown, policy: Policy): CreateSessionOptions {
  requestValidator ??= S.Compile(SESSION_REQUEST_SCHEMA as unknown as S.XSchema)
  const [, errors] = requestValidator.Errors(body)
  const first = errors[0]
  if (first !== undefined) {
    const expected = `a JSON object with the fields ${Object.keys(SESSION_OPTIONS).join(', ')}`
    const field = first.instancePath.slice(1)
    // An unknown field fails `additionalProperties: false` as "schema is false" at the field.
    if (first.keyword === 'boolean' || first.keyword === 'additionalProperties') throw new OperatorError(`the session request has an unknown field ${JSON.stringify(field)}`, expected)
    throw new OperatorError(`${field === '' ? 'the session request' : `session request field ${field}`}: ${first.message}`, expected)
  }
  return readSessionOptions(body as SessionOptionValues, policy, FIELD_SPELLING)
}
