import { randomBytes } from 'node:crypto'

/**
 * A new instance id: `ins_` and 16 random hex digits, drawn once per audit writer, so once per
 * keyvalet process (a `keyvalet start`, each of its workers, a CLI command that writes records).
 * It names that process's audit chain in every record it writes. Random rather than host and pid:
 * those repeat (a restarted container keeps its hostname and often its pid 1), and two processes
 * on one chain would fork it. The operator log names the host and pid beside it at start.
 */
export function newInstanceId(): string {
  return `ins_${randomBytes(8).toString('hex')}`
}

/** What newInstanceId makes (the admin API and the CLI check ids given to them against it). */
export const INSTANCE_ID = /^ins_[0-9a-f]{16}$/
