import type { RequestContext } from './context.ts'

/**
 * One step of the request pipeline. Contract: a stage either returns (the next stage runs) or
 * throws a KeyvaletError (the pipeline stops and the runner answers with it). Stages never write
 * the response for an error themselves, and never write the audit record: the runner does both,
 * exactly once, in every outcome.
 */
export interface Stage {
  readonly name: string
  run(ctx: RequestContext): void | Promise<void>
}

/** Runs stages in order; synchronous stages cost no promise. */
export async function runStages(stages: readonly Stage[], ctx: RequestContext): Promise<void> {
  for (const stage of stages) {
    const pending = stage.run(ctx)
    if (pending !== undefined) await pending
  }
}
