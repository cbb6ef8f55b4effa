/**
 * Every child process of the benchmark goes through here, so that all of them are stopped on
 * exit, on error and on SIGINT, and so that a child dying on its own is noticed (a crash).
 */

import { fork, spawn, type ChildProcess } from 'node:child_process'

const TAIL = 64 * 1024

export class Managed {
  readonly name: string
  readonly child: ChildProcess
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stdout = ''
  stderr = ''
  /** Lines of keyvalet's JSON log at level error seen on stdout or stderr, and the first of them. */
  errorLogLines = 0
  firstErrorLog: string | undefined
  /** Set when the child exited without being asked to. */
  crashed: string | undefined
  #stopping = false
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
  readonly #lineWaiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = []
  readonly #onCrash: (m: Managed) => void

  constructor(name: string, child: ChildProcess, onCrash: (m: Managed) => void) {
    this.name = name
    this.child = child
    this.#onCrash = onCrash
    // keyvalet's operator log goes to stdout (`keyvalet start`); other children log to stderr.
    const countErrors = (s: string): void => {
      for (const line of s.split('\n')) {
        if (!line.includes('"level":"error"')) continue
        this.errorLogLines++
        this.firstErrorLog ??= line.slice(0, 500)
      }
    }
    child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      countErrors(s)
      this.stdout = (this.stdout + s).slice(-TAIL)
      for (const w of [...this.#lineWaiters]) {
        const m = w.re.exec(this.stdout)
        if (m !== null) {
          this.#lineWaiters.splice(this.#lineWaiters.indexOf(w), 1)
          w.resolve(m)
        }
      }
    })
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      countErrors(s)
      this.stderr = (this.stderr + s).slice(-TAIL)
    })
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal }
        if (!this.#stopping) {
          this.crashed = `${name} exited unexpectedly (code ${code}, signal ${signal})${this.stderr === '' ? '' : `; stderr tail:\n${this.stderr.slice(-2000)}`}`
          this.#onCrash(this)
        }
        resolve({ code, signal })
      })
    })
    child.once('error', (err) => {
      this.crashed ??= `${name} failed: ${err.message}`
    })
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} has no pid`)
    return this.child.pid
  }

  get running(): boolean {
    return this.#exit === undefined
  }

  /** Resolves with the first match of `re` in stdout; rejects on exit or timeout. */
  waitForStdout(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const now = re.exec(this.stdout)
    if (now !== null) return Promise.resolve(now)
    return this.#bounded(new Promise((resolve) => this.#lineWaiters.push({ re, resolve })), timeoutMs, `output matching ${re}`)
  }

  /** The first IPC message satisfying `accept`; rejects on exit or timeout. */
  waitForMessage<T>(accept: (m: unknown) => boolean, timeoutMs: number): Promise<T> {
    return this.#bounded(new Promise<T>((resolve) => {
      const onMessage = (m: unknown): void => {
        if (!accept(m)) return
        this.child.off('message', onMessage)
        resolve(m as T)
      }
      this.child.on('message', onMessage)
    }), timeoutMs, 'a message')
  }

  #bounded<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms${this.stderr === '' ? '' : `; stderr tail:\n${this.stderr.slice(-2000)}`}`)), timeoutMs)
      void this.exited.then(({ code, signal }) => {
        clearTimeout(timer)
        reject(new Error(`${this.name} exited (code ${code}, signal ${signal}) before ${what}${this.stderr === '' ? '' : `; stderr tail:\n${this.stderr.slice(-2000)}`}`))
      })
      p.then((v) => {
        clearTimeout(timer)
        resolve(v)
      }, reject)
    })
  }

  /** Marks the coming exit as expected (a worker that finishes by itself). */
  expectExit(): void {
    this.#stopping = true
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Resolves with the exit. */
  async stop(graceMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null; killed: boolean }> {
    this.#stopping = true
    if (this.#exit !== undefined) return { ...this.#exit, killed: false }
    this.child.kill('SIGTERM')
    let killed = false
    const timer = setTimeout(() => {
      killed = true
      this.child.kill('SIGKILL')
    }, graceMs)
    const exit = await this.exited
    clearTimeout(timer)
    return { ...exit, killed }
  }
}

export class Children {
  readonly #all: Managed[] = []
  /** Unexpected exits, in order; the runner turns them into a non-zero exit. */
  readonly crashes: string[] = []

  #add(name: string, child: ChildProcess): Managed {
    const m = new Managed(name, child, (c) => this.crashes.push(c.crashed ?? `${c.name} crashed`))
    this.#all.push(m)
    return m
  }

  /** A .ts worker with an IPC channel, on this same Node. */
  fork(name: string, file: string, args: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): Managed {
    return this.#add(name, fork(file, [...args], { execPath: process.execPath, execArgv: [], env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }))
  }

  /** A plain process (stdin piped when `input` is given, then closed). */
  spawn(name: string, args: readonly string[], opts: { cwd: string; env: NodeJS.ProcessEnv; input?: string }): Managed {
    const child = spawn(process.execPath, [...args], { cwd: opts.cwd, env: opts.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    if (opts.input !== undefined) child.stdin?.end(opts.input)
    return this.#add(name, child)
  }

  /** Another program (not Node), e.g. mitmdump; stdin ignored. */
  spawnCommand(name: string, command: string, args: readonly string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Managed {
    return this.#add(name, spawn(command, [...args], { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] }))
  }

  /** Runs a short-lived command to completion (bounded); throws with its output on failure. */
  async run(name: string, args: readonly string[], opts: { cwd: string; env: NodeJS.ProcessEnv; input?: string; timeoutMs: number }): Promise<string> {
    const m = this.spawn(name, args, opts)
    m.expectExit()
    const timer = setTimeout(() => m.child.kill('SIGKILL'), opts.timeoutMs)
    const { code, signal } = await m.exited
    clearTimeout(timer)
    if (code !== 0) throw new Error(`${name} failed (code ${code}, signal ${signal})\nstdout: ${m.stdout.slice(-2000)}\nstderr: ${m.stderr.slice(-2000)}`)
    return m.stdout
  }

  /** Stops every child still running, in reverse start order. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#all].reverse().filter((m) => m.running).map((m) => m.stop(3000)))
  }

  /** Synchronous last resort (process 'exit'): SIGKILL whatever is left. */
  killAllNow(): void {
    for (const m of this.#all) if (m.running) m.child.kill('SIGKILL')
  }
}
