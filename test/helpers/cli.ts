import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs the real CLI as a subprocess on this Node, with a bounded run time. `wrap` is a command
 * that runs it (e.g. nsenter into another mount namespace).
 */
export function cli(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; wrap?: readonly string[] } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const [command, ...prefix] = [...(opts.wrap ?? []), process.execPath]
    const child = spawn(command ?? process.execPath, [...prefix, MAIN, ...args], {
      cwd: opts.cwd, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
    child.stdin.end(opts.input ?? '')
  })
}
