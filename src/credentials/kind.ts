import type { Static, TObject, TProperties } from 'typebox'
import type { CredentialBinding, HeaderGuard } from '../model/policy.ts'
import type { FieldPath } from '../schema-kit/field-path.ts'

/** The outbound request as the inject stage sees it: already stripped of the sandbox's credential slots. */
export interface OutboundRequest {
  readonly method: string
  /** Upstream origin (scheme://host[:port]) and the exact path that will be sent, without the query. */
  readonly origin: string
  readonly path: string
  /** The body when keyvalet holds it whole (a rule read it); undefined when it streams or there is none. */
  readonly body: Buffer | undefined
  /** True when a body follows that keyvalet does not hold: it streams from the sandbox as it comes. */
  readonly bodyStreams?: boolean
  /** Lower-case header names. */
  headers: Record<string, string | string[]>
  /** Raw query string without '?'; kinds that touch the query rewrite it. */
  query: string
  /** True when the policy decided the S3 copy source (x-amz-copy-source) readable: aws_sigv4 signs a copy only then. */
  readonly copySourceDecided?: boolean
  /** Set by a kind whose signature reaches into the body (aws_sigv4's signed chunks): the body goes through it. */
  bodyRewriter?: BodyRewriter
}

/** Rewrites a body as it streams, keeping its length. Throws a KeyvaletError on a body it cannot take. */
export interface BodyRewriter {
  /** The rewritten bytes complete so far. */
  push(chunk: Buffer): Buffer[]
  /** Called at the end of the body: throws when it ended early. */
  end(): void
}

/**
 * A way of putting a secret on an outbound request, as one module under kinds/ defines it and
 * registry.ts lists it. The kind owns its fields of the `credential` block (`fields`, merged into
 * the config schema; `required` ones are reported missing by config/compile.ts, and each is
 * refused with another `inject`), the checks JSON Schema cannot express (`compile`, whose result is
 * the binding's `options`), and everything it does with those options at run time.
 *
 * Contract: `inject` is synchronous and cheap, touches nothing but `req`, and never logs.
 * `slot` names where the credential goes, so the pipeline can remove whatever the sandbox put
 * there first. `headerGuard`, when set, makes the policy refuse the upstream's consequential
 * headers unless a rule names them (policy/decide.ts, header_not_named). `echoValues` lists the
 * values that stand for the secret on the wire (the secret, and what the kind builds from it:
 * `user:secret`, a rendered header): every encoding of each (percent, JSON, base64...;
 * src/redact/patterns.ts) is masked in responses and audit records. `basic` says whether the
 * credential goes as HTTP Basic, so that a gateway refusal asks for the task key the same way.
 */
export interface KindDefinition<Fields extends TProperties, Options> {
  readonly kind: string
  /** What it does, in one sentence of the `inject` reference. */
  readonly summary: string
  /**
   * Its fields of `credential`, each optional in the schema (see `required`) and without a
   * `default`: the block holds every kind's fields, so a filled-in default would read as given with
   * another `inject`; `compile` applies it.
   */
  readonly fields: Fields
  readonly required: readonly (keyof Fields & string)[]
  compile(raw: Static<TObject<Fields>>, problem: (field: FieldPath, message: string) => void): Options
  slot(options: Options): CredentialSlot
  inject(req: OutboundRequest, options: Options, secret: string): void
  echoValues(options: Options, secret: string): string[]
  basic?(options: Options): boolean
  readonly headerGuard?: HeaderGuard
}

export interface CredentialSlot {
  readonly header?: string
  readonly param?: string
}

/** A kind as the registry holds it: its options read from the binding its own compile step produced. */
export interface CredentialKind {
  readonly kind: string
  readonly summary: string
  readonly fields: TProperties
  readonly required: readonly string[]
  /** `raw`: the schema-checked `credential` block. */
  compile(raw: Readonly<Record<string, unknown>>, problem: (field: FieldPath, message: string) => void): unknown
  slot(binding: CredentialBinding): CredentialSlot
  inject(req: OutboundRequest, binding: CredentialBinding, secret: string): void
  echoValues(binding: CredentialBinding, secret: string): string[]
  basic(binding: CredentialBinding): boolean
  readonly headerGuard?: HeaderGuard | undefined
}

export function defineKind<Fields extends TProperties, Options>(definition: KindDefinition<Fields, Options>): CredentialKind {
  // A binding's options are what this kind's compile returned (config/compile.ts tags the binding with the kind that made them).
  const options = (binding: CredentialBinding): Options => binding.options as Options
  return {
    kind: definition.kind,
    summary: definition.summary,
    fields: definition.fields,
    required: definition.required,
    // The config schema checked `raw` against `fields` before any compile step runs.
    compile: (raw, problem) => definition.compile(raw as Static<TObject<Fields>>, problem),
    slot: (binding) => definition.slot(options(binding)),
    inject: (req, binding, secret) => definition.inject(req, options(binding), secret),
    echoValues: (binding, secret) => definition.echoValues(options(binding), secret),
    basic: (binding) => definition.basic?.(options(binding)) ?? false,
    headerGuard: definition.headerGuard,
  }
}
