/**
 * Policies pushed to a fleet (`keyvalet config push`, src/config/push.ts): an append-only history,
 * numbered by the store. Each row carries a MAC under a key derived from the master key
 * (src/config/push-mac.ts): the store is only the carrier; an instance applies a row only if its
 * MAC verifies, so whoever can write the database (every instance's runtime role) cannot make an
 * instance take a policy no master-key holder pushed.
 */
export interface PushedConfig {
  /** Assigned by the store: 1, 2, … in push order (covered by the MAC). */
  readonly seq: number
  /** The policy file as pushed (YAML: connectors, tunnels and the reloadable limits only). */
  readonly text: string
  /** SHA-256 of `text` (UTF-8), hex. */
  readonly sha256: string
  /** Epoch ms, the pushing host's clock. */
  readonly pushedAt: number
  /** OS user@host of the push. */
  readonly pushedBy: string
  /** Id of the master key the MAC was made under (vault/master-key.ts keyId). */
  readonly keyId: string
  /** HMAC-SHA256 over (seq, sha256, pushedAt, pushedBy) (push-mac.ts). */
  readonly mac: Buffer
}

export interface PushedConfigRepo {
  /**
   * Appends the row `make` builds for the next sequence number (one more than the highest stored),
   * atomically: two pushes at once get two numbers. The row is stored as built (db copy keeps each
   * push's own number); one whose number is taken is refused. Returns the row stored.
   */
  push(make: (seq: number) => PushedConfig): Promise<PushedConfig>
  /** The newest rows first, at most `limit`. */
  list(limit: number): Promise<PushedConfig[]>
  /** The highest sequence number stored (0 when none): a cheap look for a follower. */
  latestSeq(): Promise<number>
  /**
   * Replaces the MAC of row `seq` if it is still `expected` (a master-key rotation re-MACs every
   * row under the new key). False when it changed meanwhile or is gone.
   */
  remac(seq: number, expected: Buffer, keyId: string, mac: Buffer): Promise<boolean>
}
