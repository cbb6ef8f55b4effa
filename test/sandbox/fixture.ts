import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** What the keyvalet run tests share: the upstream's name, the run's identity and grant, its configuration. */
export const HOST = 'api.example.test'
export const RUN = ['--agent', 'triage-bot', '--user', 'alice', '--grant', 'github:read']

/** keyvalet's configuration for these tests, in `base`, with the upstream's CA beside it. */
export function writeConfig(base: string, upstreamPort: number, dnsAddress: string): string {
  const file = join(base, 'keyvalet.yaml')
  writeFileSync(file, `version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
data_dir: ./data
dns: { servers: ["${dnsAddress}"] }
connectors:
  github:
    upstream: https://${HOST}:${upstreamPort}
    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: github-token, inject: bearer }
    placeholder: ghp_placeholder_for_the_sandbox
    rules:
      - { id: read-issues, methods: [GET], path: /repos/acme/app/issues/**, severity: read }
`)
  return file
}

export function collect(child: ChildProcess, stream: 'stdout' | 'stderr'): () => string {
  let text = ''
  child[stream]?.on('data', (c: Buffer) => { text += c.toString() })
  return () => text
}

export function waitFor(child: ChildProcess, stream: 'stdout' | 'stderr', pattern: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let text = ''
    const timer = setTimeout(() => reject(new Error(`no ${pattern} in ${stream}: ${text}`)), 15_000)
    child[stream]?.on('data', (c: Buffer) => {
      text += c.toString()
      const match = pattern.exec(text)
      if (match !== null) {
        clearTimeout(timer)
        resolve(match)
      }
    })
  })
}
