import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { parseArgs } from 'node:util'
import { loadConfig } from '../config/load.ts'
import { OperatorError } from '../errors.ts'
import { readSessionOptions, readSessionRequest, SESSION_FLAGS, SESSION_OPTIONS } from './options.ts'

const policy = loadConfig(join(import.meta.dirname, '../../test/fixtures/config/valid-minimal.yaml')).policy

function message(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof OperatorError, String(err))
    return err.message
  }
  assert.fail('expected an OperatorError')
}

describe('session options', () => {
  it('flags: every declared option is a flag; read into what Sessions.create takes, ttl defaulting to 1h', () => {
    assert.deepEqual(Object.keys(SESSION_FLAGS), Object.keys(SESSION_OPTIONS))
    const { values } = parseArgs({ args: ['--agent', 'bot', '--user', 'alice', '--workspace', 'w', '--grant', 'api:read', '--grant', 'api:read:status'], options: SESSION_FLAGS, strict: true })
    assert.deepEqual(readSessionOptions(values, policy), {
      agent: 'bot', user: 'alice', workspace: 'w', ttlMs: 3_600_000,
      grants: [{ connector: 'api', maxSeverity: 'read', rules: undefined }, { connector: 'api', maxSeverity: 'read', rules: ['status'] }],
    })
  })

  it('flags: messages name the flag', () => {
    assert.equal(message(() => readSessionOptions({ user: 'u', workspace: 'w', grant: ['api:read'] }, policy)), '--agent is required')
    assert.equal(message(() => readSessionOptions({ agent: 'a', user: 'u', workspace: 'w' }, policy)), 'a session needs at least one --grant')
    assert.match(message(() => readSessionOptions({ agent: 'a', user: 'u', workspace: 'w', grant: ['nope:read'] }, policy)), /^the grant does not fit the configuration:\n {2}grant nope:read: no connector named nope/)
    assert.equal(message(() => readSessionOptions({ agent: 'a', user: 'u', workspace: 'w', grant: ['api:read'], ttl: '1 hour' }, policy)), 'not a duration: "1 hour"')
  })

  it('a JSON body: the same options and rules, the messages naming the field', () => {
    const body = { agent: 'bot', user: 'alice', workspace: 'w', task: 't-1', grant: ['api:read'], ttl: '30m' }
    assert.deepEqual(readSessionRequest(body, policy), readSessionOptions(body, policy))
    assert.equal(message(() => readSessionRequest({ user: 'u', workspace: 'w', grant: ['api:read'] }, policy)), 'agent is required')
    assert.equal(message(() => readSessionRequest({ agent: 'a', user: 'u', workspace: 'w', grant: [] }, policy)), 'a session needs at least one grant')
    assert.match(message(() => readSessionRequest({ agent: 'a', user: 'u', workspace: 'w', grant: 'api:read' }, policy)), /^session request field grant: /)
    assert.match(message(() => readSessionRequest({ agent: 7, user: 'u', workspace: 'w', grant: ['api:read'] }, policy)), /^session request field agent: /)
    assert.match(message(() => readSessionRequest({ agent: 'a', user: 'u', workspace: 'w', grant: ['api:read'], admin: true }, policy)), /^the session request has an unknown field "admin"$/)
    assert.match(message(() => readSessionRequest([], policy)), /^the session request: /)
  })
})
