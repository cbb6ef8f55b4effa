import { randomBytes, randomFillSync } from 'node:crypto'
import { closeSync, openSync, renameSync, statfsSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

const CHUNK = 1024 * 1024

/**
 * Disk space held for the audit log, so that the records of requests already admitted can be
 * written even when the file system fills up: a file of `bytes` (`<audit file>.reserve`) and at
 * least `bytes` free besides it. Below that, the audit is not `roomy` and keyvalet admits nothing
 * new; when a commit fails anyway, `release` gives the file's space back for the records still
 * owed. The file holds random bytes, so that a compressing or deduplicating file system cannot
 * make it smaller than it looks. Several processes may share it: whoever finds it missing or
 * short makes it again (a temporary file renamed into place).
 */
export class AuditReserve {
  readonly path: string
  readonly bytes: number

  constructor(auditPath: string, bytes: number) {
    this.path = `${auditPath}.reserve`
    this.bytes = bytes
  }

  /** The reserve file is whole and the file system has at least `bytes` free besides it. */
  roomy(): boolean {
    return this.#whole() && this.#free() >= this.bytes
  }

  /** Gives the reserve's space back to the file system. */
  release(): void {
    try {
      unlinkSync(this.path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }

  /** Makes the reserve whole again when there is room for it and for the free margin; returns `roomy()`. */
  restore(): boolean {
    if (this.#whole()) return this.roomy()
    if (this.#free() + this.#size() < 2 * this.bytes) return false
    const temporary = `${this.path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
    try {
      const fd = openSync(temporary, 'wx', 0o600)
      try {
        const chunk = randomFillSync(Buffer.allocUnsafe(CHUNK))
        // No fsync: the file system counts the space as taken when the write returns, which is all
        // the reserve is for; after a machine crash it is simply made again.
        for (let written = 0; written < this.bytes; ) written += writeSync(fd, chunk, 0, Math.min(CHUNK, this.bytes - written))
      } finally {
        closeSync(fd)
      }
      renameSync(temporary, this.path)
    } catch {
      try {
        unlinkSync(temporary)
      } catch {}
      return false
    }
    return this.roomy()
  }

  #whole(): boolean {
    return this.#size() === this.bytes
  }

  #size(): number {
    try {
      return statSync(this.path).size
    } catch {
      return 0
    }
  }

  #free(): number {
    const fs = statfsSync(dirname(this.path))
    return fs.bavail * fs.bsize
  }
}
