import { Readable, Writable } from 'node:stream'
import { main } from '../../src/cli/main.ts'

/** A stdout for the in-process CLI that tests can wait on. */
export class Capture extends Writable {
  text = ''
  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString()
    this.emit('text')
    done()
  }

  /** Resolves with the first match of `pattern`, or rejects when `exited` settles first. */
  waitFor(pattern: RegExp, exited: Promise<unknown>): Promise<string> {
    return new Promise((resolve, reject) => {
      const look = (): boolean => {
        const m = pattern.exec(this.text)
        if (m !== null) resolve(m[0])
        return m !== null
      }
      if (look()) return
      const onText = (): void => void (look() && this.off('text', onText))
      this.on('text', onText)
      void exited.then(() => reject(new Error(`the command ended before printing ${pattern}: ${this.text}`)))
    })
  }
}

/** The CLI run in this process against a test keyvalet's config, with its own stdout and stderr. */
export function inProcessCli(kv: { configFile: string; masterKey: string; dir: string }, args: string[]): { code: Promise<number>; stdout: Capture; stderr: Capture } {
  const stdout = new Capture()
  const stderr = new Capture()
  const code = main([...args, '--config', kv.configFile], { stdin: Readable.from([]), stdout, stderr, env: { KEYVALET_MASTER_KEY: kv.masterKey }, cwd: kv.dir })
  return { code, stdout, stderr }
}
