import type { AdminDeps } from '../deps.ts'
import type { AdminRoute } from '../route.ts'
import { healthRoutes } from './health.ts'
import { metricsRoutes } from './metrics.ts'

/** Every admin route module, one line each; the server and the OpenAPI document read this list. */
export const ROUTE_MODULES: readonly ((deps: AdminDeps) => readonly AdminRoute[])[] = [
  healthRoutes,
  metricsRoutes,
]
