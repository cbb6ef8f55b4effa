import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const MAPS_KEY = 'AIzaRealMapsKey-0123456789'
const PHP_KEY = 'php-real-key-9876543210'

/** Spellings of the parameter `key` that some server reads as `key`. */
const KEY_VARIANTS = [
  'KEY=evil', 'Key=evil', '%6Bey=evil', 'k%65y=evil', '%4B%45%59=evil', '%6b%65%79=evil', 'key%00=evil', 'key%00x=evil',
  'key[]=evil', 'key[0]=evil', 'key[a][b]=evil', '+key=evil', 'key+=evil', '%20key%20=evil', '%256Bey=evil',
  '%E2%84%AAey=evil', '%u006Bey=evil', 'key', 'key=', 'a=1;key=evil', 'a=1;KEY=evil;b=2',
]
/** And of `api_key`, for servers that read `.` and spaces in names as `_` (PHP). */
const API_KEY_VARIANTS = ['api.key=evil', 'api+key=evil', 'api%20key=evil', 'API_KEY=evil', 'api[key=evil', 'api_key[]=evil']

describe('inject: query — every spelling of the credential parameter the sandbox sends is removed', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  let key: string

  before(async () => {
    upstream = await startUpstream()
    const local = 'allow_insecure: true\n    allow_addresses: [127.0.0.1/32]'
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  maps:
    upstream: ${upstream.url}
    ${local}
    credential: { secret: maps-key, inject: query, param: key }
    rules: [{ id: geocode, methods: [GET], path: /geocode, severity: read }]
  php:
    upstream: ${upstream.url}/php
    ${local}
    credential: { secret: php-key, inject: query, param: api_key }
    rules: [{ id: search, methods: [GET], path: /search, severity: read }]
`)
    await kv.setSecret('maps-key', MAPS_KEY)
    await kv.setSecret('php-key', PHP_KEY)
    key = (await kv.mintKey(['maps:read', 'php:read'])).key
  })
  after(async () => {
    await kv.close()
    await upstream.close()
  })

  /** Sends `query` and returns the raw query string the upstream received. */
  async function sent(path: string, query: string): Promise<string> {
    const res = await request(`${kv.url}${path}?${query}`, { headers: { authorization: `Bearer ${key}` } })
    const text = await res.body.text()
    assert.equal(res.statusCode, 200, text)
    const url = upstream.received.at(-1)?.url ?? ''
    return url.slice(url.indexOf('?') + 1)
  }

  for (const variant of KEY_VARIANTS) {
    it(`key: ${variant}`, async () => {
      const raw = await sent('/maps/geocode', `address=Main%20St&${variant}&z=9`)
      assert.ok(!raw.includes('evil'), raw)
      assert.equal(raw, `address=Main%20St${variant.startsWith('a=1;') ? '&a=1' : ''}${variant.endsWith(';b=2') ? ';b=2' : ''}&z=9&key=${MAPS_KEY}`, 'only the credential parameter changed, the rest byte for byte')
      const record = (await kv.audit()).at(-1)
      assert.deepEqual([record?.decision, record?.rule, record?.credential], ['allow', 'geocode', 'maps-key'])
    })
  }

  for (const variant of API_KEY_VARIANTS) {
    it(`api_key: ${variant}`, async () => {
      const raw = await sent('/php/search', `q=x&${variant}`)
      assert.equal(raw, `q=x&api_key=${PHP_KEY}`)
    })
  }

  it('keeps parameters that only look alike', async () => {
    const raw = await sent('/maps/geocode', 'keys=1&monkey=2&key2=3&k=4&x=key')
    assert.equal(raw, `keys=1&monkey=2&key2=3&k=4&x=key&key=${MAPS_KEY}`)
  })

  it('adds the credential to a request without a query', async () => {
    assert.equal(await sent('/maps/geocode', ''), `key=${MAPS_KEY}`)
  })
})
