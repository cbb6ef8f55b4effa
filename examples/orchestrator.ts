/**
 * An orchestrator's side of one task, over the admin API: mint a task key for the task, start the
 * sandbox's command with the environment keyvalet gives for it, and revoke the key when the
 * command ends, whatever happens. A real orchestrator starts a container or a VM where this starts
 * a process; the environment is the same.
 *
 *   KEYVALET_ADMIN_URL=http://127.0.0.1:8790 KEYVALET_ADMIN_TOKEN=kva_… \
 *     node examples/orchestrator.ts --agent triage-bot --user alice@example.com --workspace acme \
 *       --grant github:read -- sh -c 'curl -sf -H "Authorization: Bearer $GITHUB_TOKEN" "$GITHUB_API_URL/repos/acme/app/issues"'
 *
 * The admin token needs the operator (or admin) role: keyvalet admin token create --name orchestrator --role operator.
 */
import { spawn } from 'node:child_process'
import { parseArgs } from 'node:util'
import { adminClient } from 'keyvalet/admin-client'

const { values, positionals: command } = parseArgs({
  options: {
    agent: { type: 'string' }, user: { type: 'string' }, workspace: { type: 'string' }, task: { type: 'string' },
    grant: { type: 'string', multiple: true }, ttl: { type: 'string', default: '15m' },
  },
  allowPositionals: true,
})
const token = process.env.KEYVALET_ADMIN_TOKEN
if (token === undefined || command.length === 0) {
  process.stderr.write('usage: KEYVALET_ADMIN_TOKEN=kva_… node examples/orchestrator.ts --agent A --user U --workspace W --grant C:S [--task T] [--ttl 15m] -- COMMAND [ARG]...\n')
  process.exit(2)
}
const admin = adminClient({ url: process.env.KEYVALET_ADMIN_URL ?? 'http://127.0.0.1:8790', token })

// 1. Mint: the key is in the answer once; keyvalet keeps only its hash.
const { session, env } = await admin.call('session.create', {
  body: { agent: values.agent, user: values.user, workspace: values.workspace, task: values.task, grant: values.grant, ttl: values.ttl },
})
process.stderr.write(`orchestrator: session ${session.id} for task ${session.task}, expires ${session.expires_at}\n`)

try {
  // 2. Start the sandbox's command with that environment and nothing of ours (no admin token).
  const sandboxEnv: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin' }
  for (const line of env) if ('name' in line) sandboxEnv[line.name] = line.value
  const [program, ...args] = command as [string, ...string[]]
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn(program, args, { env: sandboxEnv, stdio: 'inherit' })
    child.once('error', reject)
    child.once('exit', (exitCode, signal) => resolve(exitCode ?? (signal === null ? 1 : 128)))
  })
  process.exitCode = code
} finally {
  // 3. Revoke at once: the key is worthless from the next request on, even if the sandbox kept it.
  const revoked = await admin.call('session.revoke', { params: { id: session.id } })
  process.stderr.write(`orchestrator: session ${revoked.id} ${revoked.state}\n`)
}
