import { userInfo } from 'node:os'
import type { AdminClient } from '../../admin/client.ts'
import { Approvals } from '../../approvals/approvals.ts'
import { approvalView } from '../../approvals/view.ts'
import { safeText } from '../../approvals/summary.ts'
import { loadConfig } from '../../config/load.ts'
import { KeyvaletError, OperatorError } from '../../errors.ts'
import { silentLogger } from '../../log.ts'
import { openRuntime, type Runtime } from '../../runtime.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command } from '../command.ts'
import { remoteClient, SERVER_OPTION } from '../remote.ts'

const help = `usage: keyvalet approvals <list|show|approve|deny> [options]

  list [--json]                     pending approvals, oldest first: who asks, what, the summary, the digest
  show ID [--json]                  one approval, pending or decided
  approve ID [--for MINUTES]        forward the parked request, exactly as it was parked; --for also lets
                                    identical requests of that session (the same digest) through for
                                    MINUTES without asking
  deny ID --reason TEXT             refuse it: the sandbox gets 403 approval_denied with TEXT
--server URL                        do it through the admin API of a running keyvalet (listen.admin)
                                    with the admin token in KEYVALET_ADMIN_TOKEN (role operator or admin):
                                    recorded as that token. Without --server: on the local database,
                                    recorded as local:<your user name>`

type View = ReturnType<typeof approvalView>

export const approvals: Command = {
  name: 'approvals',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, { ...CONFIG_OPTION, ...SERVER_OPTION, json: { type: 'boolean' }, reason: { type: 'string' }, for: { type: 'string' } }, help)
    const [action, id] = positionals
    if (action !== 'list' && action !== 'show' && action !== 'approve' && action !== 'deny') throw new OperatorError(`unknown action ${JSON.stringify(action ?? '')}`, 'use: keyvalet approvals list | show ID | approve ID | deny ID --reason TEXT')
    if (action !== 'list' && id === undefined) throw new OperatorError(`approvals ${action} needs an approval ID`, 'see keyvalet approvals list')
    if (action === 'deny' && (values.reason === undefined || values.reason.trim() === '')) throw new OperatorError('approvals deny needs --reason TEXT', 'the reason is shown to the sandbox and recorded')
    const minutes = values.for === undefined ? undefined : Number(values.for)
    if (minutes !== undefined && (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440)) throw new OperatorError('--for takes whole minutes, 1 to 1440')
    const remote = values.server === undefined ? undefined : remotePlace(remoteClient(values.server, io))
    const runtime = remote === undefined ? await openRuntime(loadConfig(configPath(values.config, io)), { env: io.env, createMasterKey: false }) : undefined
    const here = remote ?? localPlace(runtime as Runtime)
    try {
      if (action === 'list') {
        const list = await here.list()
        if (values.json === true) write(io.stdout, JSON.stringify(list))
        else if (list.length === 0) write(io.stdout, 'no pending approvals')
        else for (const a of list) write(io.stdout, lines(a))
        return 0
      }
      const decided = action === 'show' ? await here.show(id as string) : action === 'approve' ? await here.approve(id as string, minutes) : await here.deny(id as string, values.reason as string)
      write(io.stdout, values.json === true ? JSON.stringify(decided) : lines(decided))
      return 0
    } finally {
      await runtime?.close()
    }
  },
}

/** An approval for a terminal: every value the sandbox chose is already free of control characters (summary.ts). */
function lines(a: View): string {
  const state = a.state === 'pending' ? `pending until ${a.expires_at}` : `${a.state}${a.approver === null ? '' : ` by ${a.approver.name} (${a.approver.id})`}${a.reason === null ? '' : `: ${a.reason}`}`
  return [
    `${a.id}\t${state}`,
    `  who:     agent ${a.agent}, user ${a.user}, workspace ${a.workspace}, task ${a.task} (${a.session})`,
    `  what:    ${a.method} ${a.host}${a.path} (connector ${a.connector}, rule ${a.rule})`,
    `  summary: ${a.summary}`,
    `  digest:  ${a.digest}`,
  ].join('\n')
}

/** What the actions need, here (the local database) or there (an admin API). */
interface ApprovalPlace {
  list(): Promise<View[]>
  show(id: string): Promise<View>
  approve(id: string, minutes: number | undefined): Promise<View>
  deny(id: string, reason: string): Promise<View>
}

function localPlace(runtime: Runtime): ApprovalPlace {
  const service = new Approvals({ repo: runtime.store.approvals, clock: Date.now, log: silentLogger })
  const approver = { id: 'local', name: `local:${userInfo().username}` }
  const decide = async (id: string, verdict: Parameters<Approvals['decide']>[1]): Promise<View> => {
    try {
      return approvalView(await service.decide(id, verdict))
    } catch (err) {
      if (err instanceof KeyvaletError) throw new OperatorError(err.message)
      throw err
    }
  }
  return {
    list: async () => (await runtime.store.approvals.pending(Date.now(), 500)).map(approvalView),
    async show(id) {
      const found = await runtime.store.approvals.get(id)
      if (found === undefined) throw new OperatorError(`no approval ${id}`)
      return approvalView(found)
    },
    approve: (id, minutes) => {
      const at = Date.now()
      return decide(id, { state: 'approved', approver, at, reason: undefined, rememberUntil: minutes === undefined ? undefined : at + minutes * 60_000 })
    },
    deny: (id, reason) => decide(id, { state: 'denied', approver, at: Date.now(), reason: safeText(reason, 500), rememberUntil: undefined }),
  }
}

function remotePlace(admin: AdminClient): ApprovalPlace {
  return {
    list: async () => (await admin.call('approval.list', { query: {} })).approvals,
    show: (id) => admin.call('approval.get', { params: { id } }),
    approve: (id, minutes) => admin.call('approval.approve', { params: { id }, body: minutes === undefined ? {} : { remember_minutes: minutes } }),
    deny: (id, reason) => admin.call('approval.deny', { params: { id }, body: { reason } }),
  }
}
