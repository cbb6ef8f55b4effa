/**
 * Fuzzing the parsers that read what the sandbox sends — the strict JSON reader, the attribution
 * rewrite, the path normaliser, header handling and the decision over all of them — with a seeded
 * corpus (FUZZ_SEED=<n> to reproduce or explore). Whatever comes in, each either answers or throws
 * a KeyvaletError with a stable code: never anything that would become a 500 internal_error.
 */

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { attributeBody } from '../../src/attribution/body.ts'
import { parseConfig } from '../../src/config/load.ts'
import { KeyvaletError } from '../../src/errors.ts'
import { argsFor, decide } from '../../src/policy/decide.ts'
import { parseGrant } from '../../src/policy/grant.ts'
import { normalisePath, splitTarget } from '../../src/policy/path.ts'
import { segmentProblem } from '../../src/policy/segment.ts'
import { parseStrictJson } from '../../src/policy/strict-json.ts'
import { carriesBody, jsonBodyProblem, outboundRequestHeaders } from '../../src/proxy/headers.ts'
import { asNodeHeaders, fuzzSeed, headerish, jsonishBody, pathish, random } from '../helpers/fuzz.ts'

const SEED = fuzzSeed(20_251_117)
const CASES = 2000

/** Runs `check` over CASES inputs; a failure names the seed, the case and the input. */
function fuzz<T>(name: string, make: (r: ReturnType<typeof random>) => T, check: (input: T) => void): void {
  it(`${name} (seed ${SEED}, ${CASES} cases)`, () => {
    const r = random(SEED ^ name.length)
    for (let i = 0; i < CASES; i++) {
      const input = make(r)
      try {
        check(input)
      } catch (err) {
        const shown = Buffer.isBuffer(input) ? `bytes ${input.subarray(0, 200).toString('hex')}${input.length > 200 ? '…' : ''}` : JSON.stringify(input)?.slice(0, 400)
        assert.fail(`${name}: seed ${SEED}, case ${i}, input ${shown}: ${err instanceof Error ? err.stack : String(err)}`)
      }
    }
  })
}

function onlyStable(fn: () => unknown, codes: readonly string[]): void {
  try {
    fn()
  } catch (err) {
    if (err instanceof KeyvaletError && codes.includes(err.code)) return
    throw err
  }
}

const config = parseConfig(`version: 1
connectors:
  api:
    upstream: https://api.example.com
    credential: { secret: api-token, inject: bearer }
    rules:
      - { id: read, methods: [GET, HEAD], path: [/repos/acme/app, /repos/acme/app/**], severity: read,
          query: { state: { pattern: "open|closed" } }, headers: { accept: { pattern: "application/json" } } }
      - { id: create, methods: [POST], path: /repos/acme/app/issues, severity: write,
          body: { type: object, required: [title], properties: { title: { type: string, maxLength: 100 }, labels: { type: array, items: { type: string } } } } }
      - id: tree
        methods: [PUT]
        path: /trees/*
        severity: write
        body: { $ref: "#/$defs/node", $defs: { node: { type: object, properties: { k: { $ref: "#/$defs/node" } } } } }
      - { id: search, methods: [GET], path: /search, severity: read, allow_body: true, allow_other_query: false, query: { q: { required: true } } }
`, 'fuzz.yaml')
const api = config.policy.connectors.get('api')
if (api === undefined) throw new Error('no connector')
const grants = [parseGrant('api:write')]
const rules = new Map(api.rules.map((r) => [r.id, r]))

describe('fuzz: the strict JSON reader and the attribution rewrite', () => {
  fuzz('parseStrictJson answers json or invalid, and never accepts a byte-order mark or a nesting it cannot walk', jsonishBody, (body) => {
    const facts = parseStrictJson(body)
    if ('invalid' in facts) {
      assert.equal(typeof facts.invalid, 'string')
      return
    }
    assert.ok(body[0] !== 0xef || body[1] !== 0xbb, 'a body starting with a byte-order mark is refused')
    JSON.stringify(facts.json) // walks the whole value: throws on a nesting too deep for recursion
    for (const id of ['create', 'tree']) rules.get(id)?.body?.check(facts.json)
  })

  fuzz('attributeBody answers body, conflict or invalid', jsonishBody, (body) => {
    const result = attributeBody(body, [['user'], ['metadata', 'user_id']], 'alice', new Set(['alice']))
    assert.ok('body' in result || 'conflict' in result || 'invalid' in result)
  })
})

describe('fuzz: paths and headers', () => {
  fuzz('normalisePath accepts only canonical segments, else refuses with path_ambiguous', (r) => pathish(r) + (r.chance(0.2) ? `?${pathish(r)}` : ''), (target) => {
    let parsed: ReturnType<typeof normalisePath> | undefined
    onlyStable(() => {
      parsed = normalisePath(splitTarget(target).rawPath)
    }, ['path_ambiguous'])
    if (parsed === undefined) return
    assert.equal(parsed.path, splitTarget(target).rawPath)
    parsed.segments.forEach((segment, i) => {
      assert.ok(!segment.includes('/') && !segment.includes('\\'), `segment ${i} has a separator`)
      assert.ok(segment !== '.' && segment !== '..')
      assert.ok(segment !== '' || i === parsed!.segments.length - 1, 'only the last segment may be empty')
      assert.equal(segmentProblem(segment), undefined)
    })
  })

  fuzz('header handling: body detection, JSON detection and the outbound copy never throw, and drop every credential slot', (r) => asNodeHeaders(headerish(r), { host: 'x', authorization: 'Bearer kvt_x' }), (headers) => {
    carriesBody(headers)
    jsonBodyProblem(headers, 'checked')
    const out = outboundRequestHeaders(headers, ['x-api-key'])
    for (const name of ['host', 'authorization', 'x-api-key', 'cookie', 'connection', 'upgrade', 'te', 'x-http-method-override', 'expect']) {
      assert.equal(out[name], undefined, name)
    }
  })
})

describe('fuzz: the decision over everything the sandbox chooses', () => {
  fuzz('decide allows, denies or asks for the body; only an ambiguous path throws', (r) => {
    const base = r.pick(['/repos/acme/app', '/repos/acme/app/issues', '/trees/t1', '/search', ''])
    const target = `${base}${r.chance(0.5) ? pathish(r) : ''}${r.chance(0.4) ? `?${r.pick(['state=open', 'state=x', 'q=1', 'q', '=', '&&', '%zz=1', 'a=%ff'])}` : ''}`
    return {
      method: r.pick(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'X-CUSTOM']),
      target: target.startsWith('/') ? target : `/${target}`,
      headers: asNodeHeaders(headerish(r)),
      body: r.chance(0.5) ? jsonishBody(r).toString('latin1') : undefined,
      carries: r.chance(0.5),
    }
  }, (c) => {
    onlyStable(() => {
      const body = c.body === undefined ? undefined : parseStrictJson(Buffer.from(c.body, 'latin1'))
      const decision = decide(argsFor({ connector: api, grants, method: c.method, target: c.target, headers: c.headers, carriesBody: c.carries, ...(body === undefined ? {} : { body }) }))
      assert.ok(['allow', 'deny', 'need_body'].includes(decision.effect))
      if (decision.effect === 'need_body') assert.equal(body, undefined, 'the body is asked for once')
    }, ['path_ambiguous'])
  })
})
