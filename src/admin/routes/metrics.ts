import { EXPOSITION_CONTENT_TYPE } from '../../metrics/registry.ts'
import type { AdminDeps } from '../deps.ts'
import { defineRoute, type AdminRoute } from '../route.ts'

/** `GET /metrics`: the Prometheus text exposition (roles admin and auditor); absent when metrics are disabled. */
export function metricsRoutes(deps: AdminDeps): readonly AdminRoute[] {
  const metrics = deps.metrics
  if (metrics === undefined) return []
  return [
    defineRoute({
      method: 'GET', path: '/metrics', roles: ['admin', 'auditor'], action: 'metrics.read', summary: 'Prometheus metrics (text exposition format 0.0.4).',
      handle: async () => ({ kind: 'text', contentType: EXPOSITION_CONTENT_TYPE, body: await metrics.expose() }),
    }),
  ]
}
