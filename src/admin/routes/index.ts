import type { AdminDeps } from '../deps.ts'
import type { AdminRoute } from '../route.ts'
import { adminTokenRoutes } from './admin-tokens.ts'
import { approvalRoutes } from './approvals.ts'
import { auditRoutes } from './audit.ts'
import { caRoutes } from './ca.ts'
import { configRoutes } from './config.ts'
import { fleetRoutes } from './fleet.ts'
import { secretRoutes } from './secrets.ts'
import { healthRoutes } from './health.ts'
import { metricsRoutes } from './metrics.ts'
import { sessionRoutes } from './sessions.ts'

/**
 * Every admin route module, one line each; the server, the OpenAPI document and the typed client
 * (admin/client.ts, from this list's type) read it. A module returns its routes `as const`.
 */
export const ROUTE_MODULES = [
  sessionRoutes,
  secretRoutes,
  adminTokenRoutes,
  healthRoutes,
  metricsRoutes,
  configRoutes,
  fleetRoutes,
  auditRoutes,
  caRoutes,
  approvalRoutes,
] as const satisfies readonly ((deps: AdminDeps) => readonly AdminRoute[])[]
