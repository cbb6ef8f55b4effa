import type { AdmittedContext, OutboundContext, RequestContext } from './context.ts'

/**
 * One step of the request pipeline, on the form of the context it needs. Contract: a stage either
 * returns (the next stage runs) or throws a KeyvaletError (the pipeline stops and the runner
 * answers with it). Stages never write the response for an error themselves, and never write the
 * audit record: the runner does both, exactly once, in every outcome.
 */
export interface Stage<C extends RequestContext = AdmittedContext> {
  readonly name: string
  run(ctx: C): void | Promise<void>
}

/**
 * What runs after admission for one connector, in order: `prepare` on the admitted request (it
 * ends with inject, which builds the outbound request), then `send` on the outbound request.
 */
export interface StageList {
  readonly prepare: readonly Stage<AdmittedContext>[]
  readonly send: readonly Stage<OutboundContext>[]
}

/** Runs stages in order; synchronous stages cost no promise. */
export async function runStages<C extends RequestContext>(stages: readonly Stage<C>[], ctx: C): Promise<void> {
  for (const stage of stages) {
    const pending = stage.run(ctx)
    if (pending !== undefined) await pending
  }
}

/** After authenticate and route: the admitted form, or a bug (they set these fields or throw). */
export function admitted(ctx: RequestContext): AdmittedContext {
  if (!isAdmitted(ctx)) throw new Error('authenticate and route left the request without its session, connector or path')
  return ctx
}

/** Runs a connector's stage list on an admitted request; resolves with its outbound form. */
export async function runStageList(list: StageList, ctx: AdmittedContext): Promise<OutboundContext> {
  await runStages(list.prepare, ctx)
  if (!hasOutbound(ctx)) throw new Error('the prepare stages built no outbound request')
  await runStages(list.send, ctx)
  return ctx
}

function isAdmitted(ctx: RequestContext): ctx is AdmittedContext {
  return ctx.session !== undefined && ctx.connector !== undefined && ctx.segments !== undefined && ctx.path !== undefined && ctx.rawQuery !== undefined
}

function hasOutbound(ctx: AdmittedContext): ctx is OutboundContext {
  return ctx.outbound !== undefined
}
