/**
 * The OpenAPI 3.1 document of the admin API, generated from the route declarations (the same
 * typebox schemas the server validates with), and the route that serves it. Each operation
 * carries its action (`x-keyvalet-action`, also its operationId in camel case) and its roles
 * (`x-keyvalet-roles`); the typed client (client.ts) finds method and path by action here.
 */
import { readFileSync } from 'node:fs'
import type { TSchema } from 'typebox'
import { ERROR_CATALOGUE } from '../errors.ts'
import { OPENAPI_PATH } from './client.ts'
import { ADMIN_ROLES, defineRoute, type AdminRoute } from './route.ts'

const ERROR_SCHEMA = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message', 'request_id'],
      properties: {
        code: { type: 'string', enum: Object.keys(ERROR_CATALOGUE), description: 'Stable error code (docs/security.md).' },
        message: { type: 'string' },
        request_id: { type: 'string' },
      },
    },
  },
}

/** The document for `routes` (each appears under its path and method). */
export function openApiDocument(routes: readonly AdminRoute[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of routes) {
    const parameters = [...parametersOf(route.params, 'path'), ...parametersOf(route.query, 'query')]
    const refusals = route.roles === 'public' ? [] : ['400', '401', '403', '404', '413', '415', '429']
    ;(paths[route.path] ??= {})[route.method.toLowerCase()] = {
      operationId: route.action.replace(/[._-]+([a-z0-9])/g, (_, c: string) => c.toUpperCase()),
      summary: route.summary,
      'x-keyvalet-action': route.action,
      'x-keyvalet-roles': route.roles === 'public' ? [] : [...route.roles],
      ...(route.roles === 'public' ? { security: [] } : {}),
      ...(parameters.length === 0 ? {} : { parameters }),
      ...(route.body === undefined ? {} : { requestBody: { required: true, content: { 'application/json': { schema: plain(route.body) } } } }),
      responses: {
        '2XX': { description: 'Done.', ...(route.response === undefined ? {} : { content: { 'application/json': { schema: plain(route.response) } } }) },
        ...Object.fromEntries([...refusals, '500', '503'].map((status) => [status, { $ref: '#/components/responses/Error' }])),
      },
    }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'keyvalet admin API', version: packageVersion(), description: 'The control plane of keyvalet (docs/admin-api.md). Every call, allowed or refused, is one record in the audit log.' },
    paths,
    components: {
      securitySchemes: { adminToken: { type: 'http', scheme: 'bearer', description: 'An admin token (kva_…) from keyvalet admin token create.' } },
      schemas: { Error: ERROR_SCHEMA },
      responses: { Error: { description: 'Refused or failed: the JSON error document, its code also in the x-keyvalet-error header.', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } } },
    },
    security: [{ adminToken: [] }],
  }
}

/** GET /v1/openapi.json, for every role: the document of `routes()` and itself. */
export function openApiRoute(routes: () => readonly AdminRoute[]) {
  return defineRoute({
    method: 'GET', path: OPENAPI_PATH, roles: ADMIN_ROLES, action: 'openapi.get',
    summary: 'This document: the OpenAPI 3.1 description of the admin API, generated from its route declarations.',
    async handle() {
      return { kind: 'json', body: openApiDocument(routes()) }
    },
  })
}

function parametersOf(schema: TSchema | undefined, where: 'path' | 'query'): Record<string, unknown>[] {
  const { properties = {}, required = [] } = (schema ?? {}) as { properties?: Record<string, TSchema>; required?: string[] }
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = plain(property) as { description?: string }
    return { name, in: where, required: where === 'path' || required.includes(name), ...(description === undefined ? {} : { description }), schema: rest }
  })
}

/** A typebox schema as plain JSON Schema (its own enumerable keys only). */
function plain(schema: TSchema): unknown {
  return JSON.parse(JSON.stringify(schema)) as unknown
}

let version: string | undefined
function packageVersion(): string {
  version ??= (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
  return version
}
