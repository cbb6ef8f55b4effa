import { createHmac, hkdfSync, randomBytes } from 'node:crypto'
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { OperatorError } from '../errors.ts'

/** The root key of the vault and the audit chain. Never logged, never put in an error. */
export interface MasterKey {
  /** 32 bytes. */
  readonly key: Buffer
  /** Short public fingerprint: first 16 hex chars of HMAC-SHA256(key, 'keyvalet key id v1'). */
  readonly keyId: string
  /** Where it came from: 'env KEYVALET_MASTER_KEY' or 'file <path>'. */
  readonly source: string
  /** True when this call generated the key (and wrote the default key file). */
  readonly created: boolean
  /**
   * Keys a key file still lists after the current one (a master-key rotation in progress):
   * accepted for opening records sealed under them, never used to seal.
   */
  readonly previous: readonly MasterKey[]
  /** The key file, when the key came from one (rotation rewrites it); undefined for the environment. */
  readonly file: string | undefined
}

export const MASTER_KEY_ENV = 'KEYVALET_MASTER_KEY'
export const MASTER_KEY_FILE_ENV = 'KEYVALET_MASTER_KEY_FILE'
const KEY_BYTES = 32

/**
 * Loads the master key from, in order: env KEYVALET_MASTER_KEY (base64, base64url or 64 hex
 * chars), the file named by env KEYVALET_MASTER_KEY_FILE, or `<dataDir>/master.key`. Only the
 * default file is ever created (when `create` is true), never overwritten. An empty variable
 * counts as unset. Throws OperatorError; messages never contain key material.
 */
export function loadMasterKey(opts: { env: NodeJS.ProcessEnv; dataDir: string; create: boolean }): MasterKey {
  const fromEnv = opts.env[MASTER_KEY_ENV]
  if (fromEnv !== undefined && fromEnv !== '') {
    const key = decodeKey(fromEnv)
    if (key === undefined) {
      throw new OperatorError(
        `${MASTER_KEY_ENV} is not a valid master key: it must decode to exactly ${KEY_BYTES} bytes`,
        `set it to 64 hex characters or base64 of ${KEY_BYTES} bytes, e.g. the output of: openssl rand -base64 32`,
      )
    }
    return masterKey(key, `env ${MASTER_KEY_ENV}`, false)
  }
  return loadFromFile(opts)
}

/** The key file that holds (or would hold) the master key, or undefined when it comes from the environment. */
export function masterKeyFile(opts: { env: NodeJS.ProcessEnv; dataDir: string }): string | undefined {
  const fromEnv = opts.env[MASTER_KEY_ENV]
  if (fromEnv !== undefined && fromEnv !== '') return undefined
  const explicit = opts.env[MASTER_KEY_FILE_ENV]
  return explicit !== undefined && explicit !== '' ? explicit : join(opts.dataDir, 'master.key')
}

function loadFromFile(opts: { env: NodeJS.ProcessEnv; dataDir: string; create: boolean }): MasterKey {
  const explicitFile = opts.env[MASTER_KEY_FILE_ENV]
  if (explicitFile !== undefined && explicitFile !== '') {
    const ring = readKeyFile(explicitFile)
    if (ring === undefined) {
      throw new OperatorError(
        `the master key file ${explicitFile} (from ${MASTER_KEY_FILE_ENV}) does not exist`,
        `create it, or unset ${MASTER_KEY_FILE_ENV} to use the default key file`,
      )
    }
    return fromRing(ring, explicitFile)
  }
  const path = join(opts.dataDir, 'master.key')
  const existing = readKeyFile(path)
  if (existing !== undefined) return fromRing(existing, path)
  if (!opts.create) {
    throw new OperatorError(
      `no master key: ${path} does not exist and ${MASTER_KEY_ENV} is not set`,
      `run \`keyvalet start\` first (it creates the key), or set ${MASTER_KEY_ENV}`,
    )
  }
  return createKeyFile(opts.dataDir, path)
}

/** HKDF-SHA256(master, empty salt, info = label) → 32 bytes. One label per purpose. */
export function deriveKey(master: MasterKey, label: string): Buffer {
  return Buffer.from(hkdfSync('sha256', master.key, Buffer.alloc(0), label, KEY_BYTES))
}

/**
 * Replaces a key file atomically (a temporary file in the same folder, fsynced, then renamed):
 * `keys[0]` becomes the current key, the others stay accepted for opening. Mode 0600.
 */
export function writeKeyFile(path: string, keys: readonly Buffer[]): void {
  const temporary = `${path}.${process.pid}.tmp`
  const fd = openSync(temporary, 'wx', 0o600)
  try {
    writeFileSync(fd, keys.map((k) => `${k.toString('base64')}\n`).join(''))
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(temporary, path)
}

/**
 * Follows a key file for a running vault: `changed()` is one stat (inode, size, mtime), `load()`
 * reads it again. Undefined when the key does not come from a file.
 */
export function keyFileSource(master: MasterKey, opts: { env: NodeJS.ProcessEnv; dataDir: string }): { changed(): boolean; load(): MasterKey } | undefined {
  const path = master.file
  if (path === undefined) return undefined
  const stamp = (): string => {
    try {
      const st = statSync(path)
      return `${st.ino}:${st.size}:${st.mtimeMs}`
    } catch {
      return 'missing'
    }
  }
  let seen = stamp()
  return {
    changed: () => stamp() !== seen,
    load() {
      const now = stamp()
      const loaded = loadMasterKey({ ...opts, create: false })
      seen = now
      return loaded
    },
  }
}

/** A fresh random master key (not written anywhere). */
export function generateMasterKey(): Buffer {
  return randomBytes(KEY_BYTES)
}

export function masterKey(key: Buffer, source: string, created: boolean, previous: readonly MasterKey[] = [], file?: string): MasterKey {
  const keyId = createHmac('sha256', key).update('keyvalet key id v1').digest('hex').slice(0, 16)
  return Object.freeze({ key, keyId, source, created, previous, file })
}

function fromRing(ring: readonly Buffer[], path: string): MasterKey {
  const [current, ...rest] = ring as [Buffer, ...Buffer[]]
  return masterKey(current, `file ${path}`, false, rest.map((k) => masterKey(k, `file ${path} (previous)`, false, [], path)), path)
}

/** 64 hex chars, or base64/base64url (padding optional) of exactly 32 bytes; else undefined. */
function decodeKey(text: string): Buffer | undefined {
  const s = text.trim()
  let key: Buffer
  if (/^[0-9a-fA-F]{64}$/.test(s)) key = Buffer.from(s, 'hex')
  else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(s)) key = Buffer.from(s, 'base64') // also decodes base64url
  else return undefined
  if (key.length !== KEY_BYTES) {
    key.fill(0)
    return undefined
  }
  return key
}

/**
 * The keys of a key file, current first (one base64 key per line; a rotation leaves the previous
 * key on the second line until every record is re-wrapped). Returns undefined when the file does
 * not exist; refuses one that group or other can access.
 */
function readKeyFile(path: string): Buffer[] | undefined {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new OperatorError(`cannot read the master key file ${path}`, 'check its owner and permissions', {
      cause: err,
    })
  }
  try {
    // fstat on the open descriptor: the mode checked is that of the file actually read.
    const mode = fstatSync(fd).mode
    if ((mode & 0o077) !== 0) {
      throw new OperatorError(
        `the master key file ${path} is accessible by group or others (mode ${(mode & 0o777).toString(8)})`,
        `chmod 600 ${path}`,
      )
    }
    const lines = readFileSync(fd, 'utf8').split('\n').filter((line) => line.trim() !== '')
    const keys = lines.map(decodeKey)
    if (keys.length === 0 || keys.length > 2 || keys.some((k) => k === undefined)) {
      for (const k of keys) k?.fill(0)
      throw new OperatorError(
        `the master key file ${path} does not hold a valid key (one line of base64 of ${KEY_BYTES} bytes, or two during a rotation: the new key, then the previous one)`,
        'restore the file from backup; a new key cannot open secrets sealed by the old one',
      )
    }
    return keys as Buffer[]
  } finally {
    closeSync(fd)
  }
}

function createKeyFile(dataDir: string, path: string): MasterKey {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const key = randomBytes(KEY_BYTES)
  try {
    writeFileSync(path, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' })
  } catch (err) {
    key.fill(0)
    // Another process created it between our read and our write: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      const theirs = readKeyFile(path)
      if (theirs !== undefined) return fromRing(theirs, path)
    }
    throw new OperatorError(`cannot create the master key file ${path}`, 'check that the data directory is writable', {
      cause: err,
    })
  }
  return masterKey(key, `file ${path}`, true, [], path)
}
