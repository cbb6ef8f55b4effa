import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { OperatorError } from '../errors.ts'
import { dotenvLines, shellLines, type EnvLine } from './sandbox-env.ts'

describe('environment lines', () => {
  const lines: EnvLine[] = [
    { comment: 'keyvalet session ses_1' },
    { name: 'PLAIN', value: 'http://task:kvt_x@127.0.0.1:8789' },
    { name: 'EMPTY', value: '' },
    { name: 'ODD', value: `it's $HOME; \`id\` "x" \\ * ?` },
  ]

  it('export lines: a shell that evals them gets every value back byte for byte', () => {
    const text = shellLines(lines)
    assert.match(text, /^# keyvalet session ses_1\nexport PLAIN=http:\/\/task:kvt_x@127\.0\.0\.1:8789\nexport EMPTY=''\n/)
    const out = execFileSync('sh', ['-c', `eval "$0"; printf '%s\\n%s\\n%s' "$PLAIN" "$EMPTY" "$ODD"`, text], { env: { PATH: process.env.PATH }, encoding: 'utf8' })
    assert.equal(out, `http://task:kvt_x@127.0.0.1:8789\n\nit's $HOME; \`id\` "x" \\ * ?`)
  })

  it('NAME=value lines, unquoted; a value with a line break is refused', () => {
    assert.equal(dotenvLines(lines), `# keyvalet session ses_1\nPLAIN=http://task:kvt_x@127.0.0.1:8789\nEMPTY=\nODD=it's $HOME; \`id\` "x" \\ * ?`)
    assert.throws(() => dotenvLines([{ name: 'X', value: 'a\nB=b' }]), OperatorError)
  })
})
