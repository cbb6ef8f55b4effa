import type { Readable, Writable } from 'node:stream'

/** What a command may touch: passed in, so tests can run commands in-process or as a subprocess. */
export interface Io {
  readonly stdin: Readable & { isTTY?: boolean }
  readonly stdout: Writable
  readonly stderr: Writable
  readonly env: NodeJS.ProcessEnv
  readonly cwd: string
}

/**
 * One CLI command. `run` returns the exit code; OperatorErrors thrown from it are printed by main.
 * Its one-line summary is in main's list of commands, which loads the command's module only to run it.
 */
export interface Command {
  readonly name: string
  /** Full help text, shown by `keyvalet <name> --help`. */
  readonly help: string
  run(args: string[], io: Io): Promise<number>
}
